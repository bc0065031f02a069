"""What the few-step families (meanflow, shortcut, consistency) share as Methods: a backbone by `model.kind`,
pixels in [-1, 1] or a frozen first stage's latents (`method.first_stage_workdir`, jgen/methods/first_stage.py),
class conditioning with label dropout, and sampling in `steps` network evaluations.

Each family (one registered module each) adds its config fields and checks, its per-example loss and its sampler
(jgen/diffusion/meanflow.py, shortcut.py, consistency.py). A request takes one option, `steps` (the CLI's
--steps), checked once into a `FewStepSpec`; NFE = steps. Labels condition a conditional model; without them
(or with the null label num_classes) the model draws unconditionally, which label dropout trains.
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jgen.config import InputError, OptionError, fail, require_int, require_number
from jgen.data import from_model_range, to_model_range
from jgen.diffusion.few_step import FewStepSpec
from jgen.methods import first_stage
from jgen.methods.base import Batch, Method
from jgen.nn.backbones import backbone_defaults, check_backbone, make_backbone
from jgen.nn.unet import init_params
from jgen.viz import image_grid


class FewStep(Method):
    """Base of the few-step families; not registered itself."""

    capabilities = frozenset({"sample"})
    generate_options = ("steps",)
    uses_interval = True  # the backbone takes the second time input (MeanFlow's t - r, a shortcut's d)

    @classmethod
    def defaults(cls) -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(
            {
                "method": {
                    "conditional": True,
                    "label_dropout": 0.1,
                    "sample_steps": 1,  # NFE
                    "first_stage_workdir": "",  # a spatial-latent VAE run: model its latents ("": pixels)
                    "latent_scale": 0.0,  # latents x this; 0: 1 / std of the training latents
                },
                "model": backbone_defaults(),
            }
        )  # model.kind: unet | dit (jgen/nn/backbones.py)

    @classmethod
    def check(cls, config) -> None:
        super().check(config)
        m = config.method
        if not isinstance(m.conditional, bool):
            fail("method.conditional", m.conditional, "must be true or false")
        require_number("method.label_dropout", m.label_dropout, 0.0, 0.99)
        require_int("method.sample_steps", m.sample_steps, 1, "network evaluations per image, e.g. 1, 2 or 4")
        check_backbone(config.model, cls.defaults().model)
        first_stage.check_fields(m, needed=False)

    @classmethod
    def requirements(cls, config) -> dict[str, str]:
        return first_stage.requirements(config.method)

    def __init__(self, config, info, resources=None):
        self.latent = first_stage.FirstStage(config, info, resources) if config.method.first_stage_workdir else None
        info = self.latent.latent_info if self.latent else info  # the space the model runs in
        super().__init__(config, info, resources)
        self._num_classes = info.num_classes if config.method.conditional else 0
        self.net = make_backbone(config.model, self._num_classes, info.shape)
        self.null_label = self._num_classes if self._num_classes else None

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def encode_x0(self, images: jax.Array) -> jax.Array:
        """Data images [B, H, W, C] in [0, 1] -> what the model generates: [-1, 1] pixels, or the first stage's
        scaled latents [B, h, w, c]."""
        return self.latent.encode(images) if self.latent else to_model_range(images)

    def decode_x0(self, x: jax.Array) -> jax.Array:
        """The inverse of `encode_x0`: images [B, H, W, C] in [0, 1]."""
        return self.latent.decode(x) if self.latent else from_model_range(x)

    def init_variables(self, key, batch):
        x = self.encode_x0(batch["image"])
        b = x.shape[0]
        labels = batch["label"].astype(jnp.int32) if self._num_classes else None
        interval = jnp.zeros((b,)) if self.uses_interval else None
        return init_params(self.net, key, x, jnp.full((b,), 0.5), labels, interval), {}

    # -- pure pieces -------------------------------------------------------------------------------------
    def network(self, params, labels: jax.Array | None, train: bool = False, key: jax.Array | None = None):
        """The backbone as (x [B, H, W, C], t [B], interval [B] | None) -> [B, H, W, C] for fixed labels."""
        rngs = {"dropout": key} if key is not None else None

        def fn(x, t, interval=None):
            kwargs = {"interval": interval} if self.uses_interval else {}
            return self.net.apply({"params": params}, x, t, labels, train=train, rngs=rngs, **kwargs)

        return fn

    def train_labels(self, batch: Batch, key: jax.Array, train: bool) -> tuple[jax.Array | None, jax.Array]:
        """(labels [B] with the null label where dropped, dropped [B] bool); (None, all False) if unconditional."""
        b = batch["image"].shape[0]
        if not self._num_classes:
            return None, jnp.zeros((b,), bool)
        labels = batch["label"].astype(jnp.int32)
        drop = jax.random.bernoulli(key, self.config.method.label_dropout, (b,)) if train else jnp.zeros((b,), bool)
        return jnp.where(drop, self.null_label, labels), drop

    @abc.abstractmethod
    def per_example_losses(self, params, batch: Batch, key: jax.Array, train: bool) -> dict[str, jax.Array]:
        """{"loss": [B], other metrics: [B]} at random noise, times and labels dropped when `train`."""

    @abc.abstractmethod
    def draw(self, params, key: jax.Array, noise: jax.Array, labels: jax.Array | None, steps: int) -> jax.Array:
        """Samples in the model's space (`encode_x0`'s: [-1, 1] pixels or scaled latents) [B, H, W, C] from unit
        Gaussian noise of that shape in `steps` network evaluations (pure; `steps` static)."""

    def loss_fn(self, params, model_state, batch: Batch, key):
        out = self.per_example_losses(params, batch, key, train=True)
        return jnp.mean(out["loss"]), ({k: jnp.mean(v) for k, v in out.items() if k != "loss"}, model_state)

    def eval_step(self, params, model_state, batch: Batch, key):
        return self.per_example_losses(params, batch, key, train=False)

    # -- sampling ----------------------------------------------------------------------------------------
    def sampling_spec(self, **options) -> FewStepSpec:
        """A request's `steps` (None: the configured method.sample_steps) as a checked FewStepSpec."""
        self.refuse_unknown_options(options)
        steps = options.get("steps")
        try:
            return FewStepSpec(self.config.method.sample_steps if steps is None else steps)
        except OptionError as e:
            raise InputError(f"{e} (e.g. --steps=1, 2 or 4)") from None

    def spec_for_nfe(self, nfe: int) -> FewStepSpec:
        """`nfe` jumps: one network evaluation each."""
        return self.sampling_spec(steps=nfe)

    def generate(self, params, model_state, key, num, labels=None, spec: FewStepSpec | None = None):
        """(images [num, H, W, C] in [0, 1], NFE = spec.steps); labels None draws unconditionally."""
        if labels is not None and not self._num_classes:
            raise InputError(f"this {self.name!r} model is unconditional (method.conditional=False): omit labels")
        spec = self.sampling_spec() if spec is None else spec
        k_noise, k_draw = jax.random.split(key)
        noise = jax.random.normal(k_noise, (num, *self.info.shape), jnp.float32)
        return self.decode_x0(self.draw(params, k_draw, noise, labels, spec.steps)), spec.steps

    def visualize(self, state, batch, key):
        """One grid per NFE in (1, configured): a column per class for a conditional model."""
        ncol = self._num_classes or 8
        labels = jnp.tile(jnp.arange(self._num_classes, dtype=jnp.int32), 8) if self._num_classes else None
        draw = self.jitted("generate", self.generate, static_argnames=("num", "spec"))
        out = {}
        for steps in sorted({1, int(self.config.method.sample_steps)}):
            images, _ = draw(
                state.ema_params, state.model_state, key, num=8 * ncol, labels=labels, spec=FewStepSpec(steps)
            )
            out[f"samples_{steps}step"] = image_grid(np.asarray(images), ncol=ncol)
        return out
