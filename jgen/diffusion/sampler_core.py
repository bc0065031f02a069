"""What every sampler shares: its options, the registry, the grid with its clean end point, the trajectory buffer.

A sampler is a pure function
    fn(denoise, schedule, x, key, times, opts, rec) -> (x0 [B, ...], trajectory buffer, NFE per sample)
with `denoise(x, t, alpha, sigma) -> (x0_hat, eps_hat)` (guidance.py), the starting noise x [B, ...] float32,
`times` float32 [N] the evaluation grid (timegrid.py) and `opts` a `SamplerOptions`. It runs one `lax.scan`
over the grid, keeps its state in float32 and ends with the data prediction at the last time of the grid.
A sampler registered with `stages` S evaluates the network S times on each of the N - 1 steps between grid
times and once more at t_min: NFE = S (N - 1) + 1 (N for the one-stage samplers, 2N - 1 for Heun).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion.schedules import Schedule, alpha_sigma


class SamplerOptions(NamedTuple):
    """Static sampler settings (hashable, so a jitted sampling program is cached per setting)."""

    spacing: str = "time_uniform"  # the time grid (timegrid.SPACINGS)
    eta: float = 0.0  # ddim: std of the fresh noise relative to the DDPM posterior's (0: ODE)
    rho: float = 7.0  # karras spacing exponent
    order: int = 3  # unipc: order of the predictor (the corrector adds one)
    lower_order_final: bool = True  # multistep solvers: order <= 2 on the step into t_min
    s_churn: float = 0.0  # EDM churn (Karras et al. 2022, Alg. 2): total noise added, 0 = the ODE
    s_tmin: float = 0.0  # churn only at noise levels s = sigma / alpha in [s_tmin, s_tmax]
    s_tmax: float = math.inf
    s_noise: float = 1.0  # std multiplier of the churn noise


class SamplerOutput(NamedTuple):
    samples: jax.Array  # [B, ...] in the model's data space, float32
    nfe: int  # network evaluations per sample
    trajectory: jax.Array | None  # [K, B, ...] states at the requested trajectory_steps, or None


class Recorder:
    """Keeps the states x_k (k = 0..num_states-1) named in `steps` in a buffer carried through a scan."""

    def __init__(self, steps: Sequence[int], num_states: int):
        steps = [int(s) for s in steps]
        bad = [s for s in steps if not 0 <= s < num_states]
        if bad:
            raise ValueError(
                f"trajectory_steps {bad} out of range: allowed 0..{num_states - 1} "
                f"(0 = the starting noise, {num_states - 1} = the final sample)"
            )
        self.k = len(steps)
        table = np.full((num_states,), self.k, np.int32)  # slot k is a scratch slot for states not kept
        table[steps] = np.arange(self.k)
        self.table = jnp.asarray(table)

    def init(self, x: jax.Array) -> jax.Array:
        return self.write(jnp.zeros((self.k + 1, *x.shape), x.dtype), 0, x)

    def write(self, buf: jax.Array, index, x: jax.Array) -> jax.Array:
        if self.k == 0:
            return buf
        return jax.lax.dynamic_update_index_in_dim(buf, x, self.table[index], 0)

    def result(self, buf: jax.Array) -> jax.Array | None:
        return buf[: self.k] if self.k else None


SamplerFn = Callable[..., tuple[jax.Array, jax.Array, int]]
SAMPLERS: dict[str, SamplerFn] = {}
DEFAULT_STEPS: dict[str, int] = {}
DEFAULT_SPACING: dict[str, str] = {}
STAGES: dict[str, int] = {}
NOISE_LEVEL_SAMPLERS: set[str] = set()  # samplers whose state is x / alpha: they need alpha > 0 where they start
INPAINT_SAMPLERS: set[str] = set()  # samplers that take `project=` (inpaint.py): their state between steps is x_t


def register_sampler(
    name: str, steps: int, spacing: str, stages: int = 1, noise_level: bool = False, inpaint: bool = False
) -> Callable[[SamplerFn], SamplerFn]:
    """Register `fn` under `name` with its default step count, the spacing its paper recommends and its network
    evaluations per step (see the module docstring). `noise_level`: the sampler works in s = sigma / alpha and
    cannot start where alpha = 0. `inpaint`: `fn` takes a keyword `project(x, k, alpha_k, sigma_k) -> x` that it
    applies to the start (k = 0) and to the state after each step k (inpaint.py), the final sample included."""

    def deco(fn: SamplerFn) -> SamplerFn:
        if name in SAMPLERS:
            raise ValueError(f"sampler {name!r} is registered twice")
        SAMPLERS[name], DEFAULT_STEPS[name], DEFAULT_SPACING[name], STAGES[name] = fn, steps, spacing, stages
        if noise_level:
            NOISE_LEVEL_SAMPLERS.add(name)
        if inpaint:
            INPAINT_SAMPLERS.add(name)
        return fn

    return deco


def sampler_names() -> list[str]:
    return sorted(SAMPLERS)


def sampler_nfe(name: str, steps: int) -> int:
    """Network evaluations per sample of `name` on a grid of `steps` times: S (steps - 1) + 1."""
    return STAGES[name] * (steps - 1) + 1


def steps_for_nfe(name: str, nfe: int) -> int:
    """The largest grid (>= 1 time) on which `name` spends at most `nfe` evaluations."""
    return max(1, (nfe - 1) // STAGES[name] + 1)


def grid_alpha_sigma(schedule: Schedule, times: jax.Array) -> tuple[jax.Array, jax.Array]:
    """alpha, sigma at the grid's times with the clean end point (1, 0) appended: float32 [N + 1] each."""
    alpha, sigma = alpha_sigma(schedule, times)
    return jnp.append(alpha, 1.0).astype(jnp.float32), jnp.append(sigma, 0.0).astype(jnp.float32)


def grid_log_snr(alphas: jax.Array, sigmas: jax.Array) -> jax.Array:
    """lambda = log(alpha / sigma) of the N grid times (the clean end point, lambda = inf, left out): [N]."""
    return jnp.log(alphas[:-1]) - jnp.log(sigmas[:-1])


def step_orders(steps: int, order: int, lower_order_final: bool, infinite_start: bool = False) -> jax.Array:
    """Order of each of the N steps of a multistep solver, int32 [N]: step i uses the i + 1 predictions it has
    (warm-up), the last step (into sigma = 0) is the data prediction itself (order 1), and with
    `lower_order_final` step i is at most N - i, so the step into t_min is at most second order (the
    reference implementation's rule for few steps). With `infinite_start` (the grid starts at log SNR = -inf,
    timegrid.starts_at_infinite_noise) the first prediction is no point to extrapolate from: step i >= 1 uses
    at most i."""
    i = np.arange(steps)
    orders = np.minimum(order, np.maximum(i, 1) if infinite_start else i + 1)
    if lower_order_final:
        orders = np.minimum(orders, steps - i)
    orders[-1] = 1
    return jnp.asarray(orders, jnp.int32)
