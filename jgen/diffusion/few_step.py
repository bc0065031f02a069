"""What the few-step families share: their sampling request and the straight flow path they are trained on.

MeanFlow, shortcut models and consistency models generate in a handful of network evaluations with a sampler that is
part of the model (a jump z_r = z_t - (t - r) u, a step of size d, a denoise-and-renoise), not one of the diffusion
samplers of `SAMPLERS`. A request says only how many evaluations to spend: `FewStepSpec(steps)`, the `--steps` of
`jgen sample` / `jgen eval`, checked once where it is made. NFE = steps for all three.

The path of MeanFlow and shortcut models is rectified flow's: x_t = (1 - t) x0 + t eps, t in [0, 1] (t = 1 noise),
with the conditional velocity v = dx_t/dt = eps - x0.
"""

from __future__ import annotations

import dataclasses

import jax

from jgen.config import check_int


@dataclasses.dataclass(frozen=True)
class FewStepSpec:
    """A few-step sampling request: `steps` network evaluations per image (>= 1). Hashable: the static argument of
    the compiled generation program."""

    steps: int = 1

    def __post_init__(self):
        object.__setattr__(self, "steps", check_int("steps", self.steps, 1, " (network evaluations per image)"))


def per_example(a: jax.Array, like: jax.Array) -> jax.Array:
    """[B] -> [B, 1, ..., 1] broadcasting against `like` [B, ...]."""
    return a.reshape(a.shape[0], *([1] * (like.ndim - 1)))


def flow_path(x0: jax.Array, eps: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(x_t = (1 - t) x0 + t eps, v = eps - x0) for x0, eps [B, ...] and t [B]."""
    tb = per_example(t, x0)
    return (1.0 - tb) * x0 + tb * eps, eps - x0
