"""Pictures of the diffusion: the forward process (image -> noise) and a sampler's path (noise -> image)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion.schedules import Schedule, alpha_sigma


def forward_trajectory(schedule: Schedule, x0: jax.Array, key: jax.Array, times: jax.Array) -> jax.Array:
    """x_t = alpha_t x0 + sigma_t eps at each time, with ONE noise draw shared by all times (so a row shows one
    path from the image into noise): x0 [B, ...], times [K] -> [K, B, ...]. Time 0 returns x0 itself."""
    eps = jax.random.normal(key, x0.shape, x0.dtype)
    alpha, sigma = alpha_sigma(schedule, times)
    alpha = jnp.where(times <= 0.0, 1.0, alpha)
    sigma = jnp.where(times <= 0.0, 0.0, sigma)
    expand = (slice(None),) + (None,) * x0.ndim
    return alpha[expand] * x0[None] + sigma[expand] * eps[None]


def trajectory_steps(steps: int, num_points: int) -> tuple[int, ...]:
    """`num_points` state indices evenly spread over 0 (x_T) .. steps (the sample), distinct and increasing."""
    if num_points < 2:
        raise ValueError(f"num_points={num_points}: a trajectory needs at least its two ends")
    return tuple(sorted(set(np.round(np.linspace(0, steps, min(num_points, steps + 1))).astype(int).tolist())))


def strip(trajectory: jax.Array | np.ndarray) -> np.ndarray:
    """[K, B, H, W, C] -> [B * K, H, W, C], row-major per example, for `image_grid(..., ncol=K)`."""
    traj = np.asarray(trajectory)
    return np.swapaxes(traj, 0, 1).reshape(-1, *traj.shape[2:])


def forward_strip(schedule: Schedule, x0: jax.Array, key: jax.Array, num_points: int = 10) -> np.ndarray:
    """Images (model range) -> [B * num_points, H, W, C] strips from t = 0 (the image) to t = 1 (noise)."""
    times = jnp.linspace(0.0, 1.0, num_points)
    return strip(forward_trajectory(schedule, x0, key, times))


__all__: Sequence[str] = ("forward_trajectory", "trajectory_steps", "strip", "forward_strip")
