"""The Method interface: what a family of generative models plugs into the shared training loop.

A Method owns its config section (`defaults()`), its validation (`check(config)`), its flax modules and optimizer,
and pure functions of (params, batch, key): `loss_fn` / `train_step`, `eval_step`, `generate`. The loop jit-compiles
them, shards the batch over the device mesh, checkpoints the TrainState and writes the pictures `visualize` returns.
A family whose update is not an optax step (EM, two players) overrides `init_state` and `train_step`; the loop never
asks which family it runs. Methods never read files: what one needs from another run (latent diffusion's first
stage) or from the training split is handed in by the run layer as `Resources`.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jgen.config import InputError
from jgen.data import DataInfo
from jgen.train.optim import check_optim, ema_update, make_optimizer
from jgen.train.state import TrainState
from jgen.viz import image_grid

Batch = dict[str, jax.Array]  # {"image": [B, H, W, C] float32 in [0, 1], "label": [B] int32}

# Capabilities a method may declare (never probed with hasattr):
#   "sample"       generate(params, model_state, key, num, labels=None, **options) draws new images
#   "interpolate"  interpolate(params, a, b, num, **kwargs) walks between two images through a latent space
#   "text"         generate_text(params, key, prompt, ...) continues a prompt (a language model)
#   "likelihood"   likelihood_step(params, model_state, batch, key) computes the likelihood_metric() on demand: a
#                  likelihood too costly for every evaluation (diffusion's probability-flow ODE)
#   "inpaint"      inpaint(params, key, images, mask, labels=None, **options) fills in images where mask = 0
#                  (pixel-space diffusion: the known pixels replaced after every sampler step)
CAPABILITIES = frozenset({"sample", "interpolate", "text", "likelihood", "inpaint"})


def slerp(z0: jax.Array, z1: jax.Array, num: int) -> jax.Array:
    """`num` points from z0 to z1 (same shape) on the great circle through them, ends included: [num, *z0.shape].
    Gaussian latents keep their typical norm along it, where a straight line passes through low-norm codes."""
    a, b = z0.ravel(), z1.ravel()
    theta = jnp.arccos(jnp.clip(jnp.dot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b)), -1.0, 1.0))
    w = jnp.linspace(0.0, 1.0, num)[:, None]
    sin = jnp.maximum(jnp.sin(theta), 1e-6)
    return ((jnp.sin((1 - w) * theta) * a + jnp.sin(w * theta) * b) / sin).reshape(num, *z0.shape)


@dataclasses.dataclass(frozen=True)
class Resources:
    """What the run layer hands a method beyond its config and data shape.

    runs: the loaded runs named by `Method.requirements(config)` (name -> jgen.run.Run).
    train_source: random access to the training split (examples {"image", "label"}), for statistics of the data.
    """

    runs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    train_source: Any = None


class Method(abc.ABC):
    """Base class. Subclasses define `init_variables` and `loss_fn` (or override `init_state`/`train_step`)."""

    name: str = ""  # set by @register
    progress_keys: tuple[str, ...] = ("loss",)  # train metrics the progress bar shows
    capabilities: frozenset[str] = frozenset()  # subset of CAPABILITIES
    generate_options: tuple[str, ...] = ()  # the options a request may set (`sampling_spec`)

    def __init__(self, config: ml_collections.ConfigDict, info: DataInfo, resources: Resources | None = None):
        self.config = config
        self.info = info
        self.resources = resources or Resources()

    # -- the config section this method owns -------------------------------------------------------------
    @classmethod
    def defaults(cls) -> ml_collections.ConfigDict:
        """Working values for every field of `config.method` / `config.model` this method reads."""
        return ml_collections.ConfigDict({"method": {}, "model": {}})

    @classmethod
    def check(cls, config: ml_collections.ConfigDict) -> None:
        """Raise ConfigError (jgen.config.fail) for the first invalid field this method reads."""
        check_optim("optim", config.optim)

    @classmethod
    def requirements(cls, config: ml_collections.ConfigDict) -> dict[str, str]:
        """Other runs this method is built on: {name: workdir}. The run layer loads them into `Resources.runs`."""
        return {}

    @functools.cached_property
    def tx(self) -> optax.GradientTransformation:
        return make_optimizer(self.config.optim, self.config.train.steps)

    # -- state -------------------------------------------------------------------------------------------
    def init_variables(self, key: jax.Array, batch: Batch) -> tuple[Any, Any]:
        """(params, model_state) for a fresh model; model_state is {} for models without one."""
        raise NotImplementedError(f"{type(self).__name__} must define init_variables or init_state")

    def init_state(self, key: jax.Array, batch: Batch) -> TrainState:
        """A fresh TrainState; `key` becomes the run's base key."""
        init_key, _ = jax.random.split(key)
        params, model_state = self.init_variables(init_key, batch)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=self.tx.init(params),
            ema_params=jax.tree.map(jnp.copy, params),
            model_state=model_state,
            key=key,
        )

    # -- training ----------------------------------------------------------------------------------------
    def loss_fn(self, params, model_state, batch: Batch, key: jax.Array):
        """Returns (scalar loss, (metrics dict of scalars, new model_state))."""
        raise NotImplementedError(f"{type(self).__name__} must define loss_fn or train_step")

    def loss_at(self, step: jax.Array) -> Callable:
        """The loss the optimizer step number `step` (int32 []) minimises: `loss_fn`, unless the objective follows
        a curriculum over training (consistency training's discretisation), when it is the loss for that step."""
        return self.loss_fn

    def train_step(self, state: TrainState, batch: Batch, key: jax.Array) -> tuple[TrainState, dict]:
        """One optimizer step on the loss; updates the EMA. Pure; the loop jit-compiles it."""
        grad_fn = jax.value_and_grad(self.loss_at(state.step), has_aux=True)
        (loss, (metrics, model_state)), grads = grad_fn(state.params, state.model_state, batch, key)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = ema_update(state.ema_params, params, self.config.train.ema_decay, state.step)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **metrics}
        new_state = state.replace(
            step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema, model_state=model_state
        )
        return new_state, metrics

    def jitted(self, name: str, fn: Callable, **jit_kwargs) -> Callable:
        """`jax.jit(fn, **jit_kwargs)`, made once per `name` for this Method instance. `name` names the function
        (one constant per call site), never a setting: what changes the program is an argument of `fn`, a static
        one (`static_argnames`: a SamplingSpec, a count) for a Python value, so that JAX compiles one program per
        value and a setting left out of the name cannot reuse another's program."""
        cache = self.__dict__.setdefault("_jit_cache", {})
        if name not in cache:
            cache[name] = jax.jit(fn, **jit_kwargs)
        return cache[name]

    # -- evaluation and generation -----------------------------------------------------------------------
    @abc.abstractmethod
    def eval_step(self, params, model_state, batch: Batch, key: jax.Array) -> dict[str, jax.Array]:
        """Per-example evaluation values, each [B]; the loop averages them over the test split."""

    def derived_eval_metrics(self, averaged: dict[str, float]) -> dict[str, float]:
        """Metrics that are functions of the split averages of `eval_step` (e.g. perplexity = exp(mean nats per
        token)); the loop adds them to each evaluation row."""
        return {}

    @property
    def num_classes(self) -> int:
        """Classes a conditional method can generate; 0 for an unconditional one."""
        return 0

    def likelihood_metric(self) -> tuple[str, str] | None:
        """(eval metric holding bits/dim, its kind: "exact", "bound", "exact (ODE)") for methods with a likelihood;
        None otherwise."""
        return None

    def likelihood_step(self, params, model_state, batch: Batch, key: jax.Array) -> dict[str, jax.Array]:
        """Per-example values [B] including the `likelihood_metric()` one, for a method with the "likelihood"
        capability: `jgen.run.evaluate_likelihood` runs it on test images when asked, never every evaluation."""
        raise NotImplementedError(f"{type(self).__name__} declares no 'likelihood' capability")

    def sampling_spec(self, **options) -> Hashable:
        """A generation request's options (`generate_options`; None: not given, the configured value) as this
        method's typed sampling settings, checked here once and trusted by `generate` (InputError names a value it
        cannot use). Hashable: the static argument of the compiled generation program. A single-pass generator
        takes no options: None."""
        self.refuse_unknown_options(options)
        return None

    def spec_for_nfe(self, nfe: int) -> Hashable | None:
        """The sampling settings that spend at most `nfe` network evaluations per image with the configured sampler
        (the FID-against-NFE comparisons); None for a method whose cost per image is fixed (one pass, or one per
        token)."""
        return None

    def refuse_unknown_options(self, options: dict) -> None:
        """InputError naming the given (not None) options that are not among `generate_options`."""
        unknown = sorted(k for k, v in options.items() if v is not None and k not in self.generate_options)
        if unknown:
            allowed = ", ".join(self.generate_options) or "none: it is a single-pass generator"
            raise InputError(
                f"method {self.name!r} does not take the sampling option(s) {unknown}; options it takes: {allowed}"
            )

    def generate(
        self, params, model_state, key: jax.Array, num: int, labels: jax.Array | None = None, spec: Hashable = None
    ) -> tuple[jax.Array, int]:
        """(images float32 [num, H, W, C] in [0, 1], network evaluations per image). Pure; the one place a family
        samples. `labels`: [num] int32 for conditional methods or None; `spec`: `sampling_spec(...)`'s."""
        raise NotImplementedError(f"method {self.name!r} is not a generative model: it cannot generate images")

    def visualize(self, state: TrainState, batch: Batch, key: jax.Array) -> dict[str, np.ndarray]:
        """Named uint8 image grids; by default a grid of 64 samples from the EMA parameters."""
        if "sample" not in self.capabilities:
            return {}
        draw = self.jitted("generate", self.generate, static_argnames=("num", "spec"))
        images, _ = draw(state.ema_params, state.model_state, key, num=64, spec=self.sampling_spec())
        return {"samples": image_grid(np.asarray(images), ncol=8)}
