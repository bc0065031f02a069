"""Noise schedules: the forward process x_t = alpha_t x_0 + sigma_t eps (eps ~ N(0, I)) in continuous time.

Two kinds of path (`Schedule.path`):
  variance_preserving  alpha_t^2 + sigma_t^2 = 1 (`linear`, `cosine`). The schedule holds the T discrete steps of
                       a DDPM-style schedule (betas and their cumulative product alpha_bar = alpha^2); discrete step
                       i (0-based, i = 0..T-1) sits at t = (i + 1) / T, and between the steps the log
                       signal-to-noise ratio log SNR(t) = log(alpha_bar / (1 - alpha_bar)) is interpolated linearly.
  rectified_flow       the straight line alpha_t = 1 - t, sigma_t = t (`rectified_flow`: Lipman et al. 2023's
                       conditional optimal-transport path, Liu et al. 2023's rectified flow), exact in continuous
                       t; log SNR(t) = 2 log((1 - t) / t). At t = 1 it is pure noise (alpha = 0, x_1 = eps exactly).
                       T only sets t_min = 1/T and the discrete steps of the leading/trailing grids.
Every sampler works in continuous time t in [t_min, 1] = [1/T, 1]. Clean data (t = 0, SNR = infinity) is the
end point of sampling and is never fed to the network. Training draws t with `sample_times`.
"""

from __future__ import annotations

import math

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np

SCHEDULES = ("linear", "cosine", "rectified_flow")
VARIANCE_PRESERVING, RECTIFIED_FLOW = "variance_preserving", "rectified_flow"
TIME_SAMPLINGS = ("uniform", "logit_normal", "log_normal")


@flax.struct.dataclass
class Schedule:
    """A schedule of T steps; a pytree, so it can be passed through jit."""

    betas: jax.Array | None  # float32 [T] (variance-preserving; None on the rectified-flow path, which has no betas)
    alpha_bars: jax.Array  # float32 [T], decreasing: alpha^2 at the step times (prod_{j<=i} (1 - beta_j) for VP)
    log_snrs: jax.Array  # float32 [T], decreasing: log(alpha^2 / sigma^2) at the step times, computed in float64
    path: str = flax.struct.field(pytree_node=False, default=VARIANCE_PRESERVING)  # or RECTIFIED_FLOW (static)

    @property
    def num_steps(self) -> int:
        return int(self.log_snrs.shape[0])


def _from_betas(betas: np.ndarray) -> Schedule:
    betas = np.asarray(betas, np.float64)
    alpha_bars = np.cumprod(1.0 - betas)
    log_snrs = np.log(alpha_bars) - np.log1p(-alpha_bars)
    return Schedule(
        betas=jnp.asarray(betas, jnp.float32),
        alpha_bars=jnp.asarray(alpha_bars, jnp.float32),
        log_snrs=jnp.asarray(log_snrs, jnp.float32),
    )


def linear_schedule(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """DDPM (Ho et al. 2020): betas linear from beta_start to beta_end over `num_steps` steps."""
    if num_steps < 1 or not 0.0 < beta_start <= beta_end < 1.0:
        raise ValueError(
            f"linear schedule needs num_steps >= 1 and 0 < beta_start <= beta_end < 1; "
            f"got num_steps={num_steps}, beta_start={beta_start}, beta_end={beta_end}"
        )
    return _from_betas(np.linspace(beta_start, beta_end, num_steps, dtype=np.float64))


def cosine_schedule(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Improved DDPM (Nichol & Dhariwal 2021): alpha_bar(t) = f(t) / f(0), f(t) = cos^2(pi/2 (t/T + s) / (1 + s)),
    with betas = 1 - alpha_bar_i / alpha_bar_{i-1} clipped at `max_beta`."""
    if num_steps < 1 or s < 0 or not 0.0 < max_beta < 1.0:
        raise ValueError(
            f"cosine schedule needs num_steps >= 1, s >= 0, 0 < max_beta < 1; "
            f"got num_steps={num_steps}, s={s}, max_beta={max_beta}"
        )
    steps = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    f = np.cos((steps + s) / (1.0 + s) * math.pi / 2.0) ** 2
    betas = np.minimum(1.0 - f[1:] / f[:-1], max_beta)
    return _from_betas(betas)


def rectified_flow_schedule(num_steps: int = 1000) -> Schedule:
    """The straight path alpha_t = 1 - t, sigma_t = t on t in [1/num_steps, 1]; the arrays hold its values at the
    step times t = (i + 1) / num_steps (log SNR = -inf at t = 1), the continuous functions use the closed form."""
    if num_steps < 2:
        raise ValueError(f"rectified_flow schedule needs num_steps >= 2 (t_min = 1/num_steps); got {num_steps}")
    t = np.arange(1, num_steps + 1, dtype=np.float64) / num_steps
    with np.errstate(divide="ignore"):
        log_snrs = 2.0 * (np.log1p(-t) - np.log(t))
    return Schedule(
        betas=None,
        alpha_bars=jnp.asarray((1.0 - t) ** 2, jnp.float32),
        log_snrs=jnp.asarray(log_snrs, jnp.float32),
        path=RECTIFIED_FLOW,
    )


def schedule_path(name: str) -> str:
    """The path of a schedule by config name: RECTIFIED_FLOW for 'rectified_flow', else VARIANCE_PRESERVING."""
    return RECTIFIED_FLOW if name == "rectified_flow" else VARIANCE_PRESERVING


def make_schedule(name: str, num_steps: int = 1000) -> Schedule:
    """A schedule by config name ('linear' | 'cosine' | 'rectified_flow') with the published defaults."""
    if name == "linear":
        return linear_schedule(num_steps)
    if name == "cosine":
        return cosine_schedule(num_steps)
    if name == "rectified_flow":
        return rectified_flow_schedule(num_steps)
    raise ValueError(f"schedule {name!r} is unknown; choose one of {SCHEDULES}")


# -- continuous time ---------------------------------------------------------------------------------------


def step_times(schedule: Schedule) -> jax.Array:
    """Continuous times of the discrete steps: (i + 1) / T for i = 0..T-1, float32 [T]."""
    t_count = schedule.num_steps
    return jnp.arange(1, t_count + 1, dtype=jnp.float32) / t_count


def step_to_time(schedule: Schedule, step: jax.Array) -> jax.Array:
    """Discrete step index i (0-based, int) -> continuous time (i + 1) / T."""
    return (jnp.asarray(step).astype(jnp.float32) + 1.0) / schedule.num_steps


def _clamp_time(schedule: Schedule, t: jax.Array) -> jax.Array:
    return jnp.clip(jnp.asarray(t, jnp.float32), 1.0 / schedule.num_steps, 1.0)


def log_snr(schedule: Schedule, t: jax.Array) -> jax.Array:
    """log SNR = log(alpha^2 / sigma^2) at continuous time t (any shape), t clamped to [1/T, 1]: linear between
    the steps (variance-preserving), 2 log((1 - t) / t) on the rectified-flow path (-inf at t = 1)."""
    if schedule.path == RECTIFIED_FLOW:
        t = _clamp_time(schedule, t)
        return 2.0 * (jnp.log1p(-t) - jnp.log(t))
    return jnp.interp(t, step_times(schedule), schedule.log_snrs)


def time_from_log_snr(schedule: Schedule, lam: jax.Array) -> jax.Array:
    """Inverse of `log_snr` (log SNR decreases in t); values outside the schedule's range are clamped."""
    if schedule.path == RECTIFIED_FLOW:
        return _clamp_time(schedule, jax.nn.sigmoid(-0.5 * lam))  # (1 - t) / t = e^(lam / 2)
    return jnp.interp(-lam, -schedule.log_snrs, step_times(schedule))


def alpha_sigma_from_log_snr(lam: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(alpha, sigma) with alpha^2 = sigmoid(lam), sigma^2 = sigmoid(-lam): the variance-preserving pair."""
    return jnp.sqrt(jax.nn.sigmoid(lam)), jnp.sqrt(jax.nn.sigmoid(-lam))


def alpha_sigma_at_log_snr(schedule: Schedule, lam: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(alpha, sigma) of the schedule's path where log SNR = lam, off the time grid: the variance-preserving pair
    (`alpha_sigma_from_log_snr`), or on the rectified-flow path alpha = sigmoid(lam / 2), sigma = sigmoid(-lam / 2)
    (alpha / sigma = e^(lam / 2), alpha + sigma = 1; alpha = 0 at lam = -inf)."""
    if schedule.path == RECTIFIED_FLOW:
        return jax.nn.sigmoid(0.5 * lam), jax.nn.sigmoid(-0.5 * lam)
    return alpha_sigma_from_log_snr(lam)


def alpha_sigma(schedule: Schedule, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(alpha_t, sigma_t) at continuous time t (any shape, clamped to [1/T, 1])."""
    if schedule.path == RECTIFIED_FLOW:
        t = _clamp_time(schedule, t)
        return 1.0 - t, t
    return alpha_sigma_from_log_snr(log_snr(schedule, t))


def alpha_sigma_at_level(schedule: Schedule, s: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(alpha, sigma) at the noise level s = sigma / alpha (EDM's variable): alpha = 1 / sqrt(1 + s^2) on
    variance-preserving paths, 1 / (1 + s) on the rectified-flow path (alpha + sigma = 1); sigma = s alpha."""
    a = 1.0 / (1.0 + s) if schedule.path == RECTIFIED_FLOW else jax.lax.rsqrt(1.0 + s**2)
    return a, s * a


def start_std(schedule: Schedule, t: jax.Array) -> jax.Array | float:
    """Std of x_t for data of unit second moment, sqrt(alpha_t^2 + sigma_t^2): the scale of the N(0, I) draw that
    starts sampling at time t. It is 1 on variance-preserving paths (returned as the number 1.0, so that their
    samples stay bitwise what they were) and on the rectified-flow path at t = 1; at the noise-level grids' first
    time (s = 80, t = 80/81) it is 0.988, which a unit start would overshoot by 1.3%."""
    if schedule.path != RECTIFIED_FLOW:
        return 1.0
    a, s = alpha_sigma(schedule, t)
    return jnp.sqrt(a**2 + s**2)


def sample_times(
    schedule: Schedule,
    key: jax.Array,
    num: int,
    distribution: str = "uniform",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    p_mean: float = -1.2,
    p_std: float = 1.2,
) -> jax.Array:
    """Training times, float32 [num]. `uniform`: a discrete step i ~ U{0..T-1} at t = (i + 1) / T
    (variance-preserving: the steps the schedule defines) or t ~ U[1/T, 1] (rectified flow: continuous).
    `logit_normal` (Esser et al. 2024, SD3): u = sigmoid(logit_mean + logit_std n), n ~ N(0, 1), mapped to the
    step i = floor(u T) (variance-preserving) or to t = 1/T + (1 - 1/T) u; it puts more weight mid-path.
    `log_normal` (EDM, Karras et al. 2022): the noise level s = sigma / alpha with ln s ~ N(p_mean, p_std^2)
    (EDM's P_mean = -1.2, P_std = 1.2), at its continuous time on the schedule (log SNR = -2 ln s), clamped to
    [1/T, 1] (on the linear DDPM schedule s spans 0.01..157: 0.2% of EDM's draws fall below 0.01)."""
    t_count = schedule.num_steps
    if distribution == "log_normal":
        ln_s = p_mean + p_std * jax.random.normal(key, (num,), jnp.float32)
        return time_from_log_snr(schedule, -2.0 * ln_s)  # clamped to the schedule's times
    if distribution == "uniform":
        if schedule.path == RECTIFIED_FLOW:
            return jax.random.uniform(key, (num,), jnp.float32, 1.0 / t_count, 1.0)
        return step_to_time(schedule, jax.random.randint(key, (num,), 0, t_count))
    if distribution != "logit_normal":
        raise ValueError(f"time distribution {distribution!r} is unknown; choose one of {TIME_SAMPLINGS}")
    u = jax.nn.sigmoid(logit_mean + logit_std * jax.random.normal(key, (num,), jnp.float32))
    if schedule.path == RECTIFIED_FLOW:
        return 1.0 / t_count + (1.0 - 1.0 / t_count) * u
    return step_to_time(schedule, jnp.clip(jnp.floor(u * t_count), 0, t_count - 1).astype(jnp.int32))


def q_sample(schedule: Schedule, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
    """Draw x_t ~ q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I) given the noise: x0, noise [B, ...], t [B]."""
    chex.assert_equal_shape([x0, noise])
    chex.assert_shape(t, (x0.shape[0],))
    alpha, sigma = alpha_sigma(schedule, t)
    expand = (slice(None),) + (None,) * (x0.ndim - 1)
    return alpha[expand] * x0 + sigma[expand] * noise
