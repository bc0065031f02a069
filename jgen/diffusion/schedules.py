"""Noise schedules of the variance-preserving forward process, in discrete steps and in continuous time.

The forward process is x_t = alpha_t * x_0 + sigma_t * eps with alpha_t^2 + sigma_t^2 = 1 and eps ~ N(0, I).
A `Schedule` holds the T discrete steps of a DDPM-style schedule (betas and their cumulative product
alpha_bar = alpha^2). Every sampler works in continuous time t in [1/T, 1]: discrete step i (0-based,
i = 0..T-1) sits at t = (i + 1) / T, and between the steps the log signal-to-noise ratio
log SNR(t) = log(alpha_bar / (1 - alpha_bar)) is interpolated linearly. Clean data (t = 0, SNR = infinity)
is the end point of sampling and is never fed to the network.
"""

from __future__ import annotations

import math

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np

SCHEDULES = ("linear", "cosine")


@flax.struct.dataclass
class Schedule:
    """Discrete schedule of T steps; a pytree, so it can be passed through jit."""
    betas: jax.Array       # float32 [T]
    alpha_bars: jax.Array  # float32 [T], decreasing: prod_{j<=i} (1 - beta_j)
    log_snrs: jax.Array    # float32 [T], decreasing: log(alpha_bar / (1 - alpha_bar)), computed in float64

    @property
    def num_steps(self) -> int:
        return int(self.betas.shape[0])


def _from_betas(betas: np.ndarray) -> Schedule:
    betas = np.asarray(betas, np.float64)
    alpha_bars = np.cumprod(1.0 - betas)
    log_snrs = np.log(alpha_bars) - np.log1p(-alpha_bars)
    return Schedule(betas=jnp.asarray(betas, jnp.float32), alpha_bars=jnp.asarray(alpha_bars, jnp.float32),
                    log_snrs=jnp.asarray(log_snrs, jnp.float32))


def linear_schedule(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """DDPM (Ho et al. 2020): betas linear from beta_start to beta_end over `num_steps` steps."""
    if num_steps < 1 or not 0.0 < beta_start <= beta_end < 1.0:
        raise ValueError(f"linear schedule needs num_steps >= 1 and 0 < beta_start <= beta_end < 1; "
                         f"got num_steps={num_steps}, beta_start={beta_start}, beta_end={beta_end}")
    return _from_betas(np.linspace(beta_start, beta_end, num_steps, dtype=np.float64))


def cosine_schedule(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Improved DDPM (Nichol & Dhariwal 2021): alpha_bar(t) = f(t) / f(0), f(t) = cos^2(pi/2 (t/T + s) / (1 + s)),
    with betas = 1 - alpha_bar_i / alpha_bar_{i-1} clipped at `max_beta`."""
    if num_steps < 1 or s < 0 or not 0.0 < max_beta < 1.0:
        raise ValueError(f"cosine schedule needs num_steps >= 1, s >= 0, 0 < max_beta < 1; "
                         f"got num_steps={num_steps}, s={s}, max_beta={max_beta}")
    steps = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    f = np.cos((steps + s) / (1.0 + s) * math.pi / 2.0) ** 2
    betas = np.minimum(1.0 - f[1:] / f[:-1], max_beta)
    return _from_betas(betas)


def make_schedule(name: str, num_steps: int = 1000) -> Schedule:
    """A schedule by config name ('linear' | 'cosine') with the published defaults."""
    if name == "linear":
        return linear_schedule(num_steps)
    if name == "cosine":
        return cosine_schedule(num_steps)
    raise ValueError(f"schedule {name!r} is unknown; choose one of {SCHEDULES}")


# -- continuous time ---------------------------------------------------------------------------------------

def step_times(schedule: Schedule) -> jax.Array:
    """Continuous times of the discrete steps: (i + 1) / T for i = 0..T-1, float32 [T]."""
    t_count = schedule.num_steps
    return jnp.arange(1, t_count + 1, dtype=jnp.float32) / t_count


def step_to_time(schedule: Schedule, step: jax.Array) -> jax.Array:
    """Discrete step index i (0-based, int) -> continuous time (i + 1) / T."""
    return (jnp.asarray(step).astype(jnp.float32) + 1.0) / schedule.num_steps


def log_snr(schedule: Schedule, t: jax.Array) -> jax.Array:
    """log SNR at continuous time t (any shape), linear between the steps; t is clamped to [1/T, 1]."""
    return jnp.interp(t, step_times(schedule), schedule.log_snrs)


def time_from_log_snr(schedule: Schedule, lam: jax.Array) -> jax.Array:
    """Inverse of `log_snr` (log SNR decreases in t); values outside the schedule's range are clamped."""
    return jnp.interp(-lam, -schedule.log_snrs, step_times(schedule))


def alpha_sigma_from_log_snr(lam: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(alpha, sigma) with alpha^2 = sigmoid(lam), sigma^2 = sigmoid(-lam): the variance-preserving pair."""
    return jnp.sqrt(jax.nn.sigmoid(lam)), jnp.sqrt(jax.nn.sigmoid(-lam))


def alpha_sigma(schedule: Schedule, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(alpha_t, sigma_t) at continuous time t (any shape)."""
    return alpha_sigma_from_log_snr(log_snr(schedule, t))


def q_sample(schedule: Schedule, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
    """Draw x_t ~ q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I) given the noise: x0, noise [B, ...], t [B]."""
    chex.assert_equal_shape([x0, noise])
    chex.assert_shape(t, (x0.shape[0],))
    alpha, sigma = alpha_sigma(schedule, t)
    expand = (slice(None),) + (None,) * (x0.ndim - 1)
    return alpha[expand] * x0 + sigma[expand] * noise
