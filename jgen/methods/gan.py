"""Generative adversarial networks on the shared loop: both players, both optimizers, one jit-compiled step.

TrainState layout: params / opt_state = {"generator": ..., "discriminator": ...}; ema_params holds the EMA of
the generator and the current discriminator (sampling, evaluation and the Pipeline read ema_params).

One train step = `method.n_critic` discriminator updates on the same real batch (each with fresh latents),
then one generator update against the updated discriminator. The losses are chosen by `method.loss`
(see jgen/gan/losses.py); `method.gp_weight` scales the WGAN gradient penalty (wgan_gp only) and
`method.r1_gamma` the R1 penalty on real data (any loss; 0 = off).

Logged per step (means over the batch): d_loss and g_loss (penalties included in d_loss), d_real = D(x) and
d_fake = D(G(z)) as probabilities, i.e. sigmoid of the logits, measured before the discriminator's update
(for hinge and wgan_gp the logits are not log-odds: read those two as "how real D finds them"), and the
global gradient norms of both players, d_grad_norm and g_grad_norm.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jgen.config import fail, optim_config, require_choice, require_int, require_int_tuple
from jgen.data import from_model_range, to_model_range
from jgen.gan.losses import LOSSES, discriminator_loss, generator_loss
from jgen.gan.step import Players, adversarial_update
from jgen.methods.base import Batch, Method
from jgen.methods.registry import register
from jgen.nn.gan import Discriminator, Generator
from jgen.nn.precision import check_precision, compute_dtype, param_dtype, precision_defaults
from jgen.train.optim import check_optim, ema_update, make_optimizer
from jgen.train.state import TrainState
from jgen.viz import image_grid

PLAYERS = ("generator", "discriminator")


@register("gan")
class GAN(Method):
    progress_keys = ("d_loss", "g_loss", "d_real", "d_fake")
    capabilities = frozenset({"sample"})

    @classmethod
    def defaults(cls) -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(
            {
                "method": {
                    "loss": "non_saturating",
                    "n_critic": 1,
                    "gp_weight": 10.0,
                    "r1_gamma": 0.0,
                    "latent_dim": 64,
                    "conditional": False,
                },
                "model": {"g_features": (32, 16), "d_features": (16, 32), **precision_defaults()},
                # one optimizer block per player replaces the shared one
                "optim": {p: optim_config(5e-4, b1=0.5, b2=0.999).to_dict() for p in PLAYERS},
            }
        )

    @classmethod
    def check(cls, config) -> None:
        m = config.method
        require_choice("method.loss", m.loss, LOSSES)
        require_int("method.n_critic", m.n_critic)
        for k in ("gp_weight", "r1_gamma"):
            if not m[k] >= 0:
                fail(f"method.{k}", m[k], "must be >= 0 (0: off)")
        require_int("method.latent_dim", m.latent_dim, 1, "--config.method.latent_dim=64")
        require_int_tuple("model.g_features", config.model.g_features, 2)
        require_int_tuple("model.d_features", config.model.d_features, 1)
        check_precision(config.model)
        missing = [p for p in PLAYERS if p not in config.optim]
        if missing:
            fail(
                "optim",
                sorted(config.optim.keys()),
                "a GAN needs one optimizer block per player: "
                "config.optim.generator and config.optim.discriminator (see experiments/configs/gan_mnist.py)",
            )
        for p in PLAYERS:
            check_optim(f"optim.{p}", config.optim[p])

    def __init__(self, config, info, resources=None):
        super().__init__(config, info, resources)
        m = config.method
        self._num_classes = info.num_classes if m.conditional else 0
        precision = dict(dtype=compute_dtype(config.model), param_dtype=param_dtype(config.model))
        self.generator = Generator(
            out_shape=info.shape, features=tuple(config.model.g_features), num_classes=self._num_classes, **precision
        )
        self.discriminator = Discriminator(
            features=tuple(config.model.d_features), num_classes=self._num_classes, **precision
        )
        # The discriminator takes n_critic optimizer steps per train step; its schedule counts them.
        self.tx_g = make_optimizer(config.optim.generator, config.train.steps)
        self.tx_d = make_optimizer(config.optim.discriminator, config.train.steps * m.n_critic)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    # -- pure pieces -------------------------------------------------------------------------------------
    def _labels(self, labels):
        return labels if self._num_classes else None

    def latents(self, key: jax.Array, num: int) -> jax.Array:
        return self.players().latents(key, num)  # [num, latent]

    def generate_model_range(self, g_params, z: jax.Array, labels=None) -> jax.Array:
        """G(z) in [-1, 1]: [B, H, W, C]."""
        return self.generator.apply({"params": g_params}, z, self._labels(labels))

    def d_logits(self, d_params, x: jax.Array, labels=None) -> jax.Array:
        """D's logits [B] for images x in [-1, 1]."""
        return self.discriminator.apply({"params": d_params}, x, self._labels(labels))

    def init_state(self, key, batch):
        k_g, k_d = jax.random.split(jax.random.split(key)[0])
        x = to_model_range(batch["image"])
        labels = self._labels(batch["label"])
        g = self.generator.init(k_g, self.latents(k_g, x.shape[0]), labels)["params"]
        d = self.discriminator.init(k_d, x, labels)["params"]
        params = {"generator": g, "discriminator": d}
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state={"generator": self.tx_g.init(g), "discriminator": self.tx_d.init(d)},
            ema_params=jax.tree.map(jnp.copy, params),
            model_state={},
            key=key,
        )

    def players(self, labels=None) -> Players:
        """Both networks as functions of (params, input), conditioned on `labels` (used for the generated batch too)."""
        m = self.config.method
        return Players(
            generate=lambda g, z: self.generate_model_range(g, z, labels),
            discriminate=lambda d, x: self.d_logits(d, x, labels),
            tx_g=self.tx_g,
            tx_d=self.tx_d,
            loss=m.loss,
            latent_dim=m.latent_dim,
            n_critic=m.n_critic,
            gp_weight=m.gp_weight,
            r1_gamma=m.r1_gamma,
        )

    def train_step(self, state: TrainState, batch: Batch, key: jax.Array):
        real = to_model_range(batch["image"])  # [B, H, W, C]
        players = self.players(self._labels(batch["label"]))  # generated samples take the real batch's labels
        params, opt_state, metrics = adversarial_update(players, state.params, state.opt_state, real, key)
        ema = {
            "generator": ema_update(
                state.ema_params["generator"], params["generator"], self.config.train.ema_decay, state.step
            ),
            "discriminator": params["discriminator"],
        }
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema), metrics

    # -- evaluation and sampling -------------------------------------------------------------------------
    def eval_step(self, params, model_state, batch, key):
        """Per test example: D(x), D(G(z)) (probabilities) and both players' losses without penalties."""
        kind = self.config.method.loss
        real = to_model_range(batch["image"])
        labels = self._labels(batch["label"])
        fake = self.generate_model_range(params["generator"], self.latents(key, real.shape[0]), labels)
        r, f = (
            self.d_logits(params["discriminator"], real, labels),
            self.d_logits(params["discriminator"], fake, labels),
        )
        return {
            "d_real": jax.nn.sigmoid(r),
            "d_fake": jax.nn.sigmoid(f),
            "d_loss": discriminator_loss(kind, r, f),
            "g_loss": generator_loss(kind, f),
        }

    def generate(self, params, model_state, key, num, labels=None, spec=None):
        """Images [num, H, W, C] in [0, 1]; a conditional GAN draws uniform labels when none are given."""
        k_z, k_y = jax.random.split(key)
        if self._num_classes and labels is None:
            labels = jax.random.randint(k_y, (num,), 0, self._num_classes)
        images = from_model_range(self.generate_model_range(params["generator"], self.latents(k_z, num), labels))
        return images, 1

    def visualize(self, state, batch, key):
        """The same latents at every call (the loop passes a fixed key): EMA and raw generator side by side."""
        if self._num_classes:
            labels, ncol = jnp.tile(jnp.arange(self._num_classes, dtype=jnp.int32), 8), self._num_classes
        else:
            labels, ncol = None, 8
        draw = self.jitted("generate", self.generate, static_argnames=("num", "spec"))
        grids = {}
        for name, params in (("samples", state.ema_params), ("samples_raw", state.params)):
            images, _ = draw(params, state.model_state, key, num=8 * ncol, labels=labels)
            grids[name] = image_grid(np.asarray(images), ncol=ncol)
        return grids
