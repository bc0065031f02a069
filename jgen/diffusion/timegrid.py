"""Time grids for sampling: where a sampler evaluates the network, from the start of the reverse process to t_min.

A grid of N steps is N decreasing times t_0 > t_1 > ... > t_{N-1}; the sampler evaluates the denoiser at each
of them and its last update is the data prediction x0_hat(x_{t_{N-1}}, t_{N-1}) (the jump to sigma = 0).
Every spacing except DDIM's `trailing` ends at the schedule's t_min (discrete schedules: t = 1/T, the first
step the network was trained on), so the higher-order solvers run all the way down and only the last, tiny
step is first order. `trailing` ends at t = 1/N and exists to reproduce the DDIM convention that does not.

  time_uniform     evenly spaced in t from t_max to t_min (DDIM/DDPM; DPM-Solver's choice with guidance)
  time_quadratic   evenly spaced in sqrt(t) (DDIM's "quadratic"; denser near the data)
  logsnr_uniform   evenly spaced in lambda = log(alpha / sigma) (DPM-Solver's choice for pixel models)
  karras           evenly spaced in s^(1/rho), s = sigma / alpha (EDM, Karras et al. 2022, eq. 5), rho = 7
  leading          DDIM's discrete steps 0, T/N, 2T/N, ... (Lin et al. 2023, Table 2): ends at t_min, but
                   starts at t = 1 - 1/N + 1/T instead of t = 1
  trailing         discrete steps T - 1, T - 1 - T/N, ... (Lin et al. 2023): starts at t = 1 but ends at 1/N

The noise-level spacings (logsnr_uniform, karras) start at the largest noise level s_max = min(s(t_max),
`max_noise`): EDM's cap s <= 80 keeps the cosine schedule (s(1) ~ 2e4) from spending a third of a small step
budget where the data have no influence (alpha < 0.0125). The time spacings always start at t_max = 1, which on
the rectified-flow path is pure noise (alpha = 0, s infinite: `starts_at_infinite_noise`).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from jgen.config import OptionError, check_int
from jgen.diffusion.schedules import RECTIFIED_FLOW, Schedule, log_snr, time_from_log_snr

SPACINGS = ("time_uniform", "time_quadratic", "logsnr_uniform", "karras", "leading", "trailing")
NOISE_LEVEL_SPACINGS = ("logsnr_uniform", "karras")  # those that start at the noise level s = max_noise
MAX_NOISE = 80.0  # EDM's sigma_max, in s = sigma / alpha


def time_bounds(schedule: Schedule) -> tuple[float, float]:
    """(t_min, t_max) of a discrete schedule: (1/T, 1), its first and last trained steps."""
    return 1.0 / schedule.num_steps, 1.0


def check_spacing(spacing: str, steps: int, schedule: Schedule) -> None:
    """OptionError (a ValueError) naming the value and what is allowed, for a spacing/step count this schedule
    can't do."""
    if spacing not in SPACINGS:
        raise OptionError("spacing", spacing, "", choices=SPACINGS)
    check_int("steps", steps)
    if spacing in ("leading", "trailing") and steps > schedule.num_steps:
        raise OptionError(
            "steps",
            steps,
            f"the {spacing!r} spacing picks discrete steps, so at most the schedule's T={schedule.num_steps}",
        )


def starts_at_infinite_noise(spacing: str, steps: int, schedule: Schedule) -> bool:
    """Whether the grid's first time is t = 1 of the rectified-flow path, where alpha = 0 (log SNR = -inf, noise
    level s = sigma / alpha = inf): the time spacings start there; the noise-level spacings at s = `max_noise`."""
    if schedule.path != RECTIFIED_FLOW:
        return False
    if spacing in ("time_uniform", "time_quadratic", "trailing"):
        return True
    if spacing == "leading":
        return (steps - 1) * (schedule.num_steps // steps) + 1 == schedule.num_steps
    return False


def _ramp(steps: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, steps) if steps > 1 else np.zeros((1,))


def time_grid(
    schedule: Schedule, steps: int, spacing: str = "time_uniform", *, rho: float = 7.0, max_noise: float = MAX_NOISE
) -> jnp.ndarray:
    """`steps` strictly decreasing evaluation times, float32 [steps] (see the module docstring).

    With steps = 1 the grid is the starting time alone (one data prediction from pure noise).
    """
    check_spacing(spacing, steps, schedule)
    t_min, t_max = time_bounds(schedule)
    t_count = schedule.num_steps
    u = _ramp(steps)
    if spacing == "time_uniform":
        return jnp.asarray(t_max + u * (t_min - t_max), jnp.float32)
    if spacing == "time_quadratic":
        return jnp.asarray((math.sqrt(t_max) + u * (math.sqrt(t_min) - math.sqrt(t_max))) ** 2, jnp.float32)
    if spacing == "leading":
        idx = (np.arange(steps) * (t_count // steps))[::-1]  # 0-based steps, ends at step 0 (t = 1/T)
        return jnp.asarray((idx + 1) / t_count, jnp.float32)
    if spacing == "trailing":
        idx = np.round(t_count - np.arange(steps) * (t_count / steps)).astype(np.int64) - 1  # from step T - 1
        return jnp.asarray((idx + 1) / t_count, jnp.float32)
    lam_hi = log_snr(schedule, jnp.asarray(t_min, jnp.float32))  # data end: largest log SNR
    lam_lo = jnp.maximum(log_snr(schedule, jnp.asarray(t_max, jnp.float32)), -2.0 * math.log(max_noise))
    if spacing == "logsnr_uniform":
        lam = lam_lo + jnp.asarray(u, jnp.float32) * (lam_hi - lam_lo)
    else:  # karras: s = exp(-lambda / 2), evenly spaced in s^(1/rho)
        if not rho > 0:
            raise ValueError(f"rho={rho!r}: must be > 0")
        s_max, s_min = jnp.exp(-0.5 * lam_lo), jnp.exp(-0.5 * lam_hi)
        s = (s_max ** (1.0 / rho) + jnp.asarray(u, jnp.float32) * (s_min ** (1.0 / rho) - s_max ** (1.0 / rho))) ** rho
        lam = -2.0 * jnp.log(s)
    times = time_from_log_snr(schedule, lam)
    # pin the data end exactly (the inverse interpolation is exact there only up to float32 rounding)
    return times.at[-1].set(t_min) if steps > 1 else times
