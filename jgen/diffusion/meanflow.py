"""MeanFlow (Geng et al. 2025): a network for the average velocity of the flow over any interval [r, t].

On the straight path x_t = (1 - t) x0 + t eps (few_step.py) the flow's ODE dz/dt = v(z, t) carries noise (t = 1)
to data (t = 0). The average velocity over [r, t], r <= t, is
    u(z_t, r, t) = (z_t - z_r) / (t - r) = 1 / (t - r) int_r^t v(z_s, s) ds,
so one evaluation jumps z_r = z_t - (t - r) u(z_t, r, t), and u(z, t, t) = v(z, t). Differentiating
(t - r) u = int_r^t v ds in t along the trajectory (r fixed) gives the MeanFlow identity
    u(z_t, r, t) = v(z_t, t) - (t - r) du/dt,     du/dt = v . grad_z u + d_t u,
whose right side is the regression target. The total derivative is one forward-mode product, `jax.jvp` of the
network along the tangent (v, 0, 1) of (z, r, t); the target is held fixed (stop-gradient), and the conditional
velocity eps - x0 stands in for v (its expectation given z_t is v). A fraction of the examples has r = t, where the
target is v itself: flow matching.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jgen.diffusion.few_step import per_example

UFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]  # (z [B, ...], r [B], t [B]) -> u [B, ...]


def sample_interval(
    key: jax.Array, num: int, fraction: float, logit_mean: float, logit_std: float
) -> tuple[jax.Array, jax.Array]:
    """(r, t) float32 [num] each with r <= t: two logit-normal times sorted; each pair kept with probability
    `fraction`, otherwise r = t (the paper's ratio of r != t)."""
    k1, k2, k3 = jax.random.split(key, 3)
    a, b = (jax.nn.sigmoid(logit_mean + logit_std * jax.random.normal(k, (num,), jnp.float32)) for k in (k1, k2))
    t, r = jnp.maximum(a, b), jnp.minimum(a, b)
    return jnp.where(jax.random.bernoulli(k3, fraction, (num,)), r, t), t


def meanflow_target(u_fn: UFn, z: jax.Array, r: jax.Array, t: jax.Array, v: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(u(z, r, t), the stop-gradient target v - (t - r) du/dt) [B, ...] each, du/dt by `jax.jvp` along (v, 0, 1).
    The prediction u carries gradients to the network; the target none."""
    u, dudt = jax.jvp(u_fn, (z, r, t), (v, jnp.zeros_like(r), jnp.ones_like(t)))
    return u, jax.lax.stop_gradient(v - per_example(t - r, z) * dudt)


def adaptive_weight(sq_error: jax.Array, power: float, eps: float) -> jax.Array:
    """The paper's adaptive loss weight w = 1 / (||u - u_tgt||^2 + eps)^power, stop-gradient: sq_error [B] -> [B].
    power 0 is the squared error; 0.5 a (robust) L2 norm; 1 a log-like loss."""
    return jax.lax.stop_gradient(1.0 / (sq_error + eps) ** power)


def meanflow_sample(u_fn: UFn, z: jax.Array, steps: int) -> jax.Array:
    """`steps` jumps z_r = z_t - (t - r) u(z_t, r, t) on the uniform grid 1 = t_0 > ... > t_steps = 0, from the
    noise z [B, ...]: the sample at t = 0, with NFE = steps."""
    times = jnp.linspace(1.0, 0.0, steps + 1, dtype=jnp.float32)
    b = z.shape[0]

    def body(x, i):
        t, r = times[i], times[i + 1]
        return x - (t - r) * u_fn(x, jnp.full((b,), r), jnp.full((b,), t)), None

    return jax.lax.scan(body, z, jnp.arange(steps))[0]
