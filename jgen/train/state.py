"""The train-state pytree every method uses."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

_FIELDS = ("step", "params", "opt_state", "ema_params", "model_state", "key")


@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything a run needs to continue exactly; checkpointed as one pytree.

    `key` is the run's base key. It is never split or consumed: the key for step s is
    `jax.random.fold_in(key, s)`, so a resumed run draws exactly the same randomness.

    `power_ema` holds the post-hoc EMA's power-function profiles (`jgen.train.posthoc_ema`): one tree like
    `params` per `train.posthoc_ema.sigma_rels` entry, or () when post-hoc EMA is off. Empty, it is no part of the
    pytree, so a run without post-hoc EMA has the same pytree (and checkpoints) as before the field existed.
    """

    step: jax.Array  # int32 []
    params: Any  # trainable parameters (a GAN: {"generator": ..., "discriminator": ...})
    opt_state: Any  # optax state, same nesting as the optimizers
    ema_params: Any  # exponential moving average of params; used for sampling and evaluation
    model_state: Any  # non-trainable collections such as {"batch_stats": ...}; {} when none
    key: jax.Array  # uint32 [2]
    power_ema: tuple = ()  # post-hoc EMA profiles, one params-like tree per sigma_rel; () when off

    def replace(self, **changes: Any) -> TrainState:
        """A copy with `changes` applied (as flax.struct's `replace`)."""
        return dataclasses.replace(self, **changes)


def _flatten_with_keys(state: TrainState):
    names = _FIELDS + (("power_ema",) if state.power_ema else ())
    return [(jax.tree_util.GetAttrKey(n), getattr(state, n)) for n in names], bool(state.power_ema)


def _flatten(state: TrainState):
    children, has_power = _flatten_with_keys(state)
    return [c for _, c in children], has_power


def _unflatten(has_power: bool, children) -> TrainState:
    children = list(children)
    fields = dict(zip(_FIELDS, children))
    return TrainState(**fields, power_ema=children[len(_FIELDS)] if has_power else ())


jax.tree_util.register_pytree_with_keys(TrainState, _flatten_with_keys, _unflatten, _flatten)
