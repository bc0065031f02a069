"""What every sampler shares: the request (`SamplingSpec`), the registry (one `SamplerSpec` per sampler), the grid
with its clean end point, the trajectory buffer.

A sampler is a pure function
    fn(denoise, schedule, x, key, times, spec, rec) -> (x0 [B, ...], trajectory buffer, NFE per sample)
with `denoise(x, t, alpha, sigma) -> (x0_hat, eps_hat)` (guidance.py), the starting noise x [B, ...] float32,
`times` float32 [N] the evaluation grid (timegrid.py) and `spec` the `SamplingSpec`. It runs one `lax.scan`
over the grid, keeps its state in float32 and ends with the data prediction at the last time of the grid.
A sampler registered with `stages` S evaluates the network S times on each of the N - 1 steps between grid
times and once more at t_min: NFE = S (N - 1) + 1 (N for the one-stage samplers, 2N - 1 for Heun).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.config import InputError, OptionError, check_int, is_integer, is_number
from jgen.diffusion.schedules import Schedule, alpha_sigma
from jgen.diffusion.timegrid import SPACINGS


@dataclasses.dataclass(frozen=True)
class SamplingSpec:
    """One sampling request, checked once, when it is made, and trusted everywhere below: `sample` and the samplers
    read it as it is. Hashable, so it is the static argument (and the cache key) of a compiled sampling program.

    steps None and spacing "default" take the sampler's own (`SAMPLERS[sampler]`); the spec holds the resolved
    values. A value that cannot be used raises `OptionError` naming it. What depends on the schedule (a grid of
    discrete steps longer than T, a noise-level sampler on a grid starting at alpha = 0) is `samplers.check_fits`.
    """

    sampler: str = "dpm_solver"  # a name in SAMPLERS
    steps: int | None = None  # grid times N (None: the sampler's default)
    spacing: str = "default"  # the time grid (timegrid.SPACINGS); "default": the sampler's own
    guidance: float = 1.0  # classifier-free guidance scale: 0 unconditional, 1 conditional, > 1 guided (guidance.py)
    eta: float = 0.0  # ddim: std of the fresh noise relative to the DDPM posterior's (0: ODE, 1: ancestral)
    clip_denoised: bool = False  # clip x0_hat to [-1, 1] (data in the model range; guidance.py)
    rho: float = 7.0  # karras spacing exponent
    order: int = 3  # unipc: order of the predictor (the corrector adds one)
    lower_order_final: bool = True  # multistep solvers: order <= 2 on the step into t_min
    s_churn: float = 0.0  # EDM churn (Karras et al. 2022, Alg. 2): total noise added, 0 = the ODE
    s_tmin: float = 0.0  # churn only at noise levels s = sigma / alpha in [s_tmin, s_tmax]
    s_tmax: float = math.inf
    s_noise: float = 1.0  # std multiplier of the churn noise
    guidance_interval: tuple[float, float] | None = None  # guide only at noise levels s in (lo, hi] (None: at all)
    guide: str | None = None  # autoguidance: the guiding model's name (Diffusion.attach_guide); None: CFG
    trajectory_steps: tuple[int, ...] = ()  # states to keep: 0 = x_T, k = after k steps, steps = the sample
    inpaint: bool = False  # replace known pixels after every step (inpaint.py): the sampler must take `project`

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        if self.sampler not in SAMPLERS:
            raise OptionError("sampler", self.sampler, "", choices=sampler_names())
        record = SAMPLERS[self.sampler]
        set_("steps", check_int("steps", record.steps if self.steps is None else self.steps))
        spacing = record.spacing if self.spacing in (None, "default") else self.spacing
        if spacing not in SPACINGS:
            raise OptionError("spacing", spacing, "", choices=[*SPACINGS, "default"])
        set_("spacing", spacing)
        if not is_number(self.guidance, 0.0):
            raise OptionError(
                "guidance", self.guidance, "must be a finite number >= 0 (0: unconditional, 1: conditional, >1: guided)"
            )
        if not is_number(self.eta, 0.0, 1.0):
            raise OptionError("eta", self.eta, "must be in [0, 1] (0: deterministic DDIM, 1: ancestral)")
        if not is_number(self.rho) or self.rho <= 0:
            raise OptionError("rho", self.rho, "must be > 0 (EDM uses 7)")
        if self.order not in (1, 2, 3) or isinstance(self.order, bool):
            raise OptionError("order", self.order, "UniPC's predictor order must be 1, 2 or 3")
        churn = (self.s_churn, self.s_tmin, self.s_tmax, self.s_noise)
        if not (all(isinstance(v, (int, float)) for v in churn) and min(churn) >= 0 and self.s_tmin <= self.s_tmax):
            raise InputError(
                f"churn settings s_churn={self.s_churn}, s_tmin={self.s_tmin}, s_tmax={self.s_tmax}, "
                f"s_noise={self.s_noise}: need s_churn >= 0, s_noise >= 0 and 0 <= s_tmin <= s_tmax"
            )
        for name in ("clip_denoised", "lower_order_final", "inpaint"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise OptionError(name, getattr(self, name), "must be true or false")
        if self.inpaint and not record.inpaint:
            able = sorted(n for n, r in SAMPLERS.items() if r.inpaint)
            raise OptionError(
                "sampler",
                self.sampler,
                "it cannot inpaint: replacing the known pixels needs a sampler whose state between steps is the noisy "
                f"image x_t; use one of {able}",
            )
        if self.guidance_interval is not None:
            set_("guidance_interval", check_interval(self.guidance_interval))
        if self.guide is not None and not (isinstance(self.guide, str) and self.guide):
            raise OptionError("guide", self.guide, "must be the name of an attached guiding model, or None")
        keep = tuple(self.trajectory_steps)
        bad = [k for k in keep if not is_integer(k, 0) or k > self.steps]
        if bad:
            raise InputError(
                f"trajectory_steps {bad} out of range: allowed 0..{self.steps} (0 = the starting noise, "
                f"{self.steps} = the final sample)"
            )
        for name in ("guidance", "eta", "rho", "s_churn", "s_tmin", "s_tmax", "s_noise"):  # 2 and 2.0: one program
            set_(name, float(getattr(self, name)))
        for name in ("clip_denoised", "lower_order_final", "inpaint"):
            set_(name, bool(getattr(self, name)))
        set_("order", int(self.order))
        set_("trajectory_steps", tuple(int(k) for k in keep))


def check_interval(interval) -> tuple[float, float]:
    """A guidance interval (lo, hi] of noise levels s = sigma / alpha as two floats, 0 <= lo < hi (hi may be inf);
    OptionError otherwise."""
    pair = tuple(interval) if isinstance(interval, (tuple, list)) else ()
    if len(pair) != 2 or not all(is_number(v, 0.0) or v == math.inf for v in pair) or not pair[0] < pair[1]:
        raise OptionError(
            "guidance_interval",
            interval,
            "must be two noise levels lo < hi, s = sigma / alpha in (lo, hi], e.g. (0.28, 2.9) (EDM2's)",
        )
    return float(pair[0]), float(pair[1])


class SamplerOutput(NamedTuple):
    samples: jax.Array  # [B, ...] in the model's data space, float32
    nfe: int  # network evaluations per sample
    trajectory: jax.Array | None  # [K, B, ...] states at the requested trajectory_steps, or None


class Recorder:
    """Keeps the states x_k (k = 0..num_states-1) named in `steps` in a buffer carried through a scan (`steps` come
    from a SamplingSpec, which holds them in range)."""

    def __init__(self, steps: Sequence[int], num_states: int):
        self.k = len(steps)
        table = np.full((num_states,), self.k, np.int32)  # slot k is a scratch slot for states not kept
        table[list(steps)] = np.arange(self.k)
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


@dataclasses.dataclass(frozen=True)
class SamplerSpec:
    """Everything jgen knows about one sampler: one record in `SAMPLERS`, read by the samplers' defaults, the checks
    at the door, the CLI help and the docs' tables."""

    name: str
    fn: SamplerFn
    steps: int  # grid times when a request names none
    spacing: str  # the time grid its paper recommends (timegrid.SPACINGS), used for spacing "default"
    stages: int = 1  # network evaluations per step between grid times: NFE = stages (N - 1) + 1
    noise_level: bool = False  # works in s = sigma / alpha: cannot start where alpha = 0 (t = 1 of rectified flow)
    inpaint: bool = False  # takes `project=` (inpaint.py): its state between steps is x_t

    @property
    def about(self) -> str:
        """What it is, in a line: the first line of its function's docstring."""
        return self.fn.__doc__.strip().splitlines()[0]

    def nfe(self, steps: int) -> int:
        """Network evaluations per sample on a grid of `steps` times: S (steps - 1) + 1."""
        return self.stages * (steps - 1) + 1

    def steps_for_nfe(self, nfe: int) -> int:
        """The largest grid (>= 1 time) on which this sampler spends at most `nfe` evaluations."""
        return max(1, (nfe - 1) // self.stages + 1)


SAMPLERS: dict[str, SamplerSpec] = {}  # by name; filled by @register_sampler in the sampler modules (samplers.py)


def register_sampler(
    name: str,
    steps: int,
    spacing: str,
    stages: int = 1,
    noise_level: bool = False,
    inpaint: bool = False,
) -> Callable[[SamplerFn], SamplerFn]:
    """Register `fn` as `SAMPLERS[name]`, a `SamplerSpec` with these fields; the first line of `fn`'s docstring says
    what it is (tables, help). `inpaint`: `fn` takes a keyword
    `project(x, k, alpha_k, sigma_k) -> x` that it applies to the start (k = 0) and to the state after each step k
    (inpaint.py), the final sample included."""

    def deco(fn: SamplerFn) -> SamplerFn:
        if name in SAMPLERS:
            raise ValueError(f"sampler {name!r} is registered twice")
        SAMPLERS[name] = SamplerSpec(name, fn, steps, spacing, stages, noise_level, inpaint)
        return fn

    return deco


def sampler_names() -> list[str]:
    return sorted(SAMPLERS)


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
