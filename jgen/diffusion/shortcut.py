"""Shortcut models (Frans et al. 2024): one network conditioned on the step size d, for any number of steps.

On the straight path x_t = (1 - t) x0 + t eps (few_step.py), s(z_t, t, d) is the direction of a step of size d:
    z_{t - d} = z_t - d s(z_t, t, d).
At d = 0 it is the flow's velocity, trained by flow matching (target eps - x0). For d > 0 the self-consistency
target says that one step of size 2d lands where two steps of size d do:
    s(z_t, t, 2d) <- (s(z_t, t, d) + s(z_t - d s(z_t, t, d), t - d, d)) / 2     (stop-gradient),
so the exact flow's jump (z_t - z_{t - d}) / d satisfies it at every d. The two steps of the smallest size ask the
network at d = 0 (Frans et al.): the targets are then anchored to flow matching, not to a constant that satisfies
self-consistency alone. Step sizes are powers of two,
d = 2^-k, k = 1..K (2d from 2^(1-K) to 1), at times t = j d, j = 2..1/d, the times a 1/d-step sampler visits.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jgen.diffusion.few_step import per_example

SFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]  # (z [B, ...], t [B], d [B]) -> s [B, ...]


def sample_step_sizes(key: jax.Array, num: int, max_doublings: int) -> tuple[jax.Array, jax.Array]:
    """(d, t) float32 [num] each: d = 2^-k, k uniform in 1..max_doublings, and t = j d, j uniform in 2..1/d, so
    that the two d-steps from t end at t - 2d >= 0."""
    k_d, k_t = jax.random.split(key)
    k = jax.random.randint(k_d, (num,), 1, max_doublings + 1)
    j = jax.random.randint(k_t, (num,), 2, 2**k + 1)
    d = 2.0 ** -k.astype(jnp.float32)
    return d, j.astype(jnp.float32) * d


def shortcut_target(s_fn: SFn, z: jax.Array, t: jax.Array, d: jax.Array, d_min: float = 0.0) -> jax.Array:
    """The stop-gradient target of s(z, t, 2d): the mean direction of two steps of size d from (z, t): [B, ...].
    Steps of the smallest trained size `d_min` ask the network at d = 0, the flow-matching velocity: that grounds
    the chain of targets in the data (s = 0 at every d > 0 would otherwise satisfy every one of them)."""
    d_in = jnp.where(d <= d_min, 0.0, d)
    s1 = s_fn(z, t, d_in)
    s2 = s_fn(z - per_example(d, z) * s1, t - d, d_in)
    return jax.lax.stop_gradient(0.5 * (s1 + s2))


def shortcut_sample(s_fn: SFn, z: jax.Array, steps: int) -> jax.Array:
    """`steps` steps of size d = 1 / steps from the noise z [B, ...] at t = 1 to t = 0: the sample, NFE = steps."""
    b, d = z.shape[0], 1.0 / steps

    def body(x, i):
        t = 1.0 - i.astype(jnp.float32) * d
        return x - d * s_fn(x, jnp.full((b,), t), jnp.full((b,), d, jnp.float32)), None

    return jax.lax.scan(body, z, jnp.arange(steps))[0]
