"""The Method interface: what a family of generative models plugs into the shared training loop.

A Method owns its flax modules and optimizer and provides pure functions of (params, batch, key):
`loss_fn`, `train_step`, `eval_step`, `sample`. The loop jit-compiles them, shards the batch over the
device mesh, checkpoints the TrainState and writes the pictures `visualize` returns.
"""

from __future__ import annotations

import abc
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jgen.data import DataInfo
from jgen.train.optim import ema_update, make_optimizer
from jgen.train.state import TrainState
from jgen.viz import image_grid

Batch = dict[str, jax.Array]  # {"image": [B, H, W, C] float32 in [0, 1], "label": [B] int32}


class Method(abc.ABC):
    """Base class. Subclasses define `init_variables` and `loss_fn` (or override `init_state`/`train_step`)."""

    progress_keys: tuple[str, ...] = ("loss",)  # train metrics the progress bar shows

    def __init__(self, config: ml_collections.ConfigDict, info: DataInfo):
        self.config = config
        self.info = info
        self.tx = make_optimizer(config.optim, config.train.steps) if "name" in config.optim else None

    # -- state -------------------------------------------------------------------------------------
    def init_variables(self, key: jax.Array, batch: Batch) -> tuple[Any, Any]:
        """(params, model_state) for a fresh model; model_state is {} for models without one."""
        raise NotImplementedError(f"{type(self).__name__} must define init_variables or init_state")

    def init_state(self, key: jax.Array, batch: Batch) -> TrainState:
        """A fresh TrainState; `key` becomes the run's base key."""
        init_key, _ = jax.random.split(key)
        params, model_state = self.init_variables(init_key, batch)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=self.tx.init(params),
                          ema_params=jax.tree.map(jnp.copy, params), model_state=model_state, key=key)

    # -- training ----------------------------------------------------------------------------------
    def loss_fn(self, params, model_state, batch: Batch, key: jax.Array):
        """Returns (scalar loss, (metrics dict of scalars, new model_state))."""
        raise NotImplementedError(f"{type(self).__name__} must define loss_fn or train_step")

    def train_step(self, state: TrainState, batch: Batch, key: jax.Array) -> tuple[TrainState, dict]:
        """One optimizer step on the loss; updates the EMA. Pure; the loop jit-compiles it."""
        grad_fn = jax.value_and_grad(self.loss_fn, has_aux=True)
        (loss, (metrics, model_state)), grads = grad_fn(state.params, state.model_state, batch, key)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = ema_update(state.ema_params, params, self.config.train.ema_decay, state.step)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **metrics}
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                                  ema_params=ema, model_state=model_state)
        return new_state, metrics

    def jitted(self, name, fn, **jit_kwargs):
        """`jax.jit(fn, **jit_kwargs)`, compiled once per `name` for this Method instance (the name must say
        everything that changes the program: shapes, static choices)."""
        cache = self.__dict__.setdefault("_jit_cache", {})
        if name not in cache:
            cache[name] = jax.jit(fn, **jit_kwargs)
        return cache[name]

    # -- evaluation and sampling -------------------------------------------------------------------
    @abc.abstractmethod
    def eval_step(self, params, model_state, batch: Batch, key: jax.Array) -> dict[str, jax.Array]:
        """Per-example evaluation values, each [B]; the loop averages them over the test split."""

    def sample(self, params, model_state, key: jax.Array, num: int, labels: jax.Array | None = None) -> jax.Array:
        """Images float32 [num, H, W, C] in [0, 1]."""
        raise NotImplementedError(f"method {self.config.method.name!r} does not generate samples")

    @property
    def num_classes(self) -> int:
        """Classes a conditional method can generate; 0 for an unconditional one."""
        return 0

    def generate(self, params, model_state, key: jax.Array, num: int, labels: jax.Array | None = None,
                 sampler: str | None = None, steps: int | None = None, guidance: float | None = None,
                 eta: float = 0.0) -> tuple[jax.Array, int]:
        """(images [num, H, W, C] in [0, 1], network evaluations per image). Methods with samplers override it."""
        name = self.config.method.name
        if sampler is not None or steps is not None or guidance is not None:
            raise ValueError(f"method {name!r} has a single-pass generator: sampler, steps and guidance do not apply")
        if labels is not None and not self.num_classes:
            raise ValueError(f"method {name!r} is unconditional: it cannot generate given labels")
        return self.sample(params, model_state, key, num, labels), 1

    def visualize(self, state: TrainState, batch: Batch, key: jax.Array) -> dict[str, np.ndarray]:
        """Named uint8 image grids; by default a grid of 64 samples from the EMA parameters."""
        try:
            images = self.sample(state.ema_params, state.model_state, key, 64)
        except NotImplementedError:
            return {}
        return {"samples": image_grid(np.asarray(images), ncol=8)}
