"""Samplers of the reverse process, by name, and `sample`, the one entry point that runs them.

Every sampler evaluates the denoiser on a time grid (timegrid.py) that ends at the schedule's t_min, runs its
whole loop inside one `lax.scan` (so `jax.jit` of a call compiles one program whatever the number of steps),
keeps its state in float32 whatever the network computes in, and ends with the data prediction at t_min.

  name            NFE     default grid      what
  ddpm            N       time_uniform      ancestral sampling (DDPM posterior); N = T by default
  ddim            N       time_uniform      DDIM, eta = 0 deterministic (first-order ODE), eta = 1 = ddpm
  dpm_solver      N       logsnr_uniform    DPM-Solver++(2M), data prediction, multistep
  dpm_solver_3m   N       logsnr_uniform    DPM-Solver++(3M)
  dpm_solver_sde  N       logsnr_uniform    DPM-Solver++(2M) SDE (stochastic)
  dpm_solver_2s   2N - 1  logsnr_uniform    single-step DPM-Solver-2 (r1 = 1/2), data prediction
  dpm_solver_3s   3N - 2  logsnr_uniform    single-step DPM-Solver-3 (r1 = 1/3, r2 = 2/3), data prediction
  unipc           N       logsnr_uniform    UniPC-p bh2 predictor-corrector (p = order, default 3)
  euler           N       karras            EDM Euler (first order; = DDIM on the same grid), optional churn
  heun            2N - 1  karras            EDM Heun (second order), optional churn
  midpoint        2N - 1  time_uniform      explicit midpoint rule in t (second order)

NFE counts network evaluations per sample (`sampler_nfe(name, N)`; `steps_for_nfe` inverts it); a guided call on
a doubled batch counts once. The multi-stage samplers' N counts grid times, between which each step spends its
stages; the last evaluation, at t_min, is the data prediction.
`trajectory_steps` picks states to keep: 0 is x_T, k the state after k steps, N the final sample.
All of them work on every path of schedules.py, variance-preserving or rectified flow (`check_start` names the
one combination that cannot: euler/heun from t = 1 of the rectified-flow path, where s = sigma / alpha is
infinite). On the rectified-flow path `ddim` is Euler's method in t for dx/dt = u and `midpoint` the midpoint
rule in t, the two textbook flow-matching samplers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion import ddim, dpm_solver, edm, midpoint, unipc
from jgen.diffusion.guidance import ModelFn, make_denoiser
from jgen.diffusion.inpaint import check_inpaint_sampler, make_projector
from jgen.diffusion.parameterization import check_path
from jgen.diffusion.sampler_core import (
    DEFAULT_SPACING,
    DEFAULT_STEPS,
    INPAINT_SAMPLERS,
    NOISE_LEVEL_SAMPLERS,
    SAMPLERS,
    Recorder,
    SamplerOptions,
    SamplerOutput,
    register_sampler,
    sampler_names,
    sampler_nfe,
    steps_for_nfe,
)
from jgen.diffusion.schedules import Schedule, start_std
from jgen.diffusion.timegrid import SPACINGS, check_spacing, starts_at_infinite_noise, time_grid

# The sampler modules: importing each runs its @register_sampler, so SAMPLERS holds every sampler once this module
# is imported. A new sampler is one module and one entry here.
SAMPLER_MODULES = (ddim, dpm_solver, edm, midpoint, unipc)


def sampler_options(
    sampler: str,
    steps: int | None = None,
    *,
    spacing: str | None = None,
    eta: float = 0.0,
    rho: float = 7.0,
    order: int = 3,
    lower_order_final: bool = True,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
) -> tuple[int, SamplerOptions]:
    """Check a sampler's settings on the host; (steps, options) with the sampler's defaults filled in."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler {sampler!r} is unknown; choose one of {sampler_names()}")
    steps = DEFAULT_STEPS[sampler] if steps is None else steps
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps={steps!r}: must be an integer >= 1")
    spacing = DEFAULT_SPACING[sampler] if spacing in (None, "default") else spacing
    if spacing not in SPACINGS:
        raise ValueError(f"spacing {spacing!r} is unknown; choose one of {SPACINGS} (or 'default')")
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta={eta!r}: must be in [0, 1] (0: deterministic DDIM, 1: ancestral)")
    if not rho > 0:
        raise ValueError(f"rho={rho!r}: must be > 0 (EDM uses 7)")
    if order not in (1, 2, 3):
        raise ValueError(f"order={order!r}: UniPC's predictor order must be 1, 2 or 3")
    if not (s_churn >= 0 and s_noise >= 0 and 0 <= s_tmin <= s_tmax):
        raise ValueError(
            f"churn settings s_churn={s_churn}, s_tmin={s_tmin}, s_tmax={s_tmax}, s_noise={s_noise}: "
            "need s_churn >= 0, s_noise >= 0 and 0 <= s_tmin <= s_tmax"
        )
    return int(steps), SamplerOptions(
        spacing=spacing,
        eta=float(eta),
        rho=float(rho),
        order=int(order),
        lower_order_final=bool(lower_order_final),
        s_churn=float(s_churn),
        s_tmin=float(s_tmin),
        s_tmax=float(s_tmax),
        s_noise=float(s_noise),
    )


def check_start(sampler: str, spacing: str, steps: int, schedule: Schedule) -> None:
    """Raise ValueError for a sampler that works in s = sigma / alpha (euler, heun) on a grid that starts at t = 1
    of the rectified-flow path, where alpha = 0 and s is infinite."""
    if sampler in NOISE_LEVEL_SAMPLERS and starts_at_infinite_noise(spacing, steps, schedule):
        raise ValueError(
            f"sampler {sampler!r} works in the noise level s = sigma / alpha, which is infinite at t = 1 "
            f"of the rectified_flow path, where the {spacing!r} grid starts; use it with spacing "
            f"'karras' (its default) or 'logsnr_uniform', or sample on {spacing!r} with 'ddim' (Euler "
            f"in t) or 'midpoint'"
        )


def sample(
    model_fn: ModelFn,
    schedule: Schedule,
    key: jax.Array,
    shape: Sequence[int],
    *,
    sampler: str = "dpm_solver",
    steps: int | None = None,
    spacing: str | None = None,
    labels: jax.Array | None = None,
    guidance: float = 1.0,
    null_label: int | None = None,
    parameterization: str = "eps",
    eta: float = 0.0,
    clip_denoised: bool = False,
    noise: jax.Array | None = None,
    trajectory_steps: Sequence[int] = (),
    rho: float = 7.0,
    order: int = 3,
    lower_order_final: bool = True,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
    inpaint: tuple[jax.Array, jax.Array] | None = None,
) -> SamplerOutput:
    """Draw samples [shape] (float32) by running `sampler` on the network `model_fn(x, t, labels) -> prediction`.

    Pure and traceable: wrap the call in `jax.jit` (everything but key/labels/noise static) to compile the
    whole loop. `steps` None and `spacing` None take the sampler's defaults (see the module docstring).
    The start is x_T ~ N(0, I) times `schedules.start_std` (1 except at the first time of the noise-level grids on
    the rectified-flow path); `noise` replaces it, as the state itself (e.g. from `ddim_invert`). `labels` [B]
    with `null_label` enable classifier-free guidance with scale `guidance` (0: unconditional, 1: conditional).
    `eta` is DDIM's noise, `order` UniPC's, `rho` the karras spacing's exponent, `s_*` EDM's churn (euler, heun).
    `inpaint` = (x_known [shape], mask [shape], 1 = known) fills in the unknown region: after every step the known
    region is replaced by x_known noised to the current level (inpaint.py; ddpm, ddim and the multistep
    DPM-Solvers), and the result holds x_known exactly there.
    """
    steps, opts = sampler_options(
        sampler,
        steps,
        spacing=spacing,
        eta=eta,
        rho=rho,
        order=order,
        lower_order_final=lower_order_final,
        s_churn=s_churn,
        s_tmin=s_tmin,
        s_tmax=s_tmax,
        s_noise=s_noise,
    )
    check_spacing(opts.spacing, steps, schedule)
    check_start(sampler, opts.spacing, steps, schedule)
    check_path(parameterization, schedule.path)
    if inpaint is not None:
        check_inpaint_sampler(sampler)
    if not (np.isfinite(float(guidance)) and float(guidance) >= 0):
        raise ValueError(f"guidance={guidance!r}: must be a finite number >= 0 (0: unconditional, 1: conditional)")
    if labels is not None and not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise ValueError(f"labels must be integer class indices; got dtype {jnp.result_type(labels)}")
    shape = tuple(int(s) for s in shape)
    if labels is not None and labels.shape != (shape[0],):
        raise ValueError(f"labels have shape {labels.shape}; expected ({shape[0]},), one label per sample")
    denoise = make_denoiser(model_fn, parameterization, labels, guidance, null_label, clip_denoised)
    k_noise, k_loop = jax.random.split(key)
    times = time_grid(schedule, steps, opts.spacing, rho=opts.rho)
    if noise is None:
        noise = start_std(schedule, times[0]) * jax.random.normal(k_noise, shape, jnp.float32)
    elif noise.shape != shape:
        raise ValueError(f"noise has shape {noise.shape}; expected {shape}")
    rec = Recorder(trajectory_steps, steps + 1)
    extra = {}
    if inpaint is not None:
        known, mask = inpaint
        if known.shape != shape or mask.shape != shape:
            raise ValueError(
                f"inpaint: known {known.shape} and mask {mask.shape} must both have the samples' shape {shape}"
            )
        k_loop, k_fill = jax.random.split(k_loop)  # only here: plain sampling keeps its keys
        extra["project"] = make_projector(known, mask, k_fill)
    x, buf, nfe = SAMPLERS[sampler](denoise, schedule, noise.astype(jnp.float32), k_loop, times, opts, rec, **extra)
    return SamplerOutput(x, nfe, rec.result(buf))


__all__ = [
    "sample",
    "sampler_options",
    "check_start",
    "SamplerOutput",
    "SamplerOptions",
    "SAMPLERS",
    "DEFAULT_STEPS",
    "DEFAULT_SPACING",
    "register_sampler",
    "sampler_names",
    "sampler_nfe",
    "steps_for_nfe",
    "INPAINT_SAMPLERS",
]
