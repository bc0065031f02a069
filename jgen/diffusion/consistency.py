"""Consistency training (Song et al. 2023; improved, iCT: Song & Dhariwal 2023): a network that maps any point of a
probability-flow ODE trajectory to the trajectory's origin, trained without a teacher.

Data x0 in [-1, 1] are noised as x = x0 + sigma eps (EDM's variance-exploding path), sigma in [sigma_min, sigma_max].
The consistency function is parameterised so that f(x, sigma_min) = x exactly:
    f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma)),
    c_skip = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2),
    c_out = (sigma - sigma_min) sigma_data / sqrt(sigma^2 + sigma_data^2),    c_in = 1 / sqrt(sigma^2 + sigma_data^2),
and c_noise = 1000 * 0.25 ln sigma (the backbone's time input is 0.25 ln sigma: it embeds 1000 t).
Training draws adjacent levels sigma_i < sigma_{i+1} of the Karras grid of N(k) levels and regresses
f(x0 + sigma_{i+1} eps, sigma_{i+1}) on the stop-gradient f(x0 + sigma_i eps, sigma_i) (one eps for both) with the
pseudo-Huber distance sqrt(||a - b||^2 + c^2) - c and weight 1 / (sigma_{i+1} - sigma_i). N(k) doubles from s0 to
s1 over training; the index i is drawn with probability proportional to the lognormal(P_mean, P_std) mass between
sigma_i and sigma_{i+1}.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jgen.diffusion.few_step import per_example

FFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x [B, ...], sigma [B]) -> f(x, sigma) [B, ...]


def scalings(sigma: jax.Array, sigma_data: float, sigma_min: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(c_skip, c_out, c_in) at noise levels sigma (any shape); c_skip(sigma_min) = 1 and c_out(sigma_min) = 0."""
    c_skip = sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)
    c_out = (sigma - sigma_min) * sigma_data / jnp.sqrt(sigma**2 + sigma_data**2)
    c_in = 1.0 / jnp.sqrt(sigma**2 + sigma_data**2)
    return c_skip, c_out, c_in


def noise_input(sigma: jax.Array) -> jax.Array:
    """The backbone's time input for level sigma [B]: 0.25 ln sigma (iCT's c_noise = 1000 * 0.25 ln sigma)."""
    return 0.25 * jnp.log(sigma)


def karras_sigmas(num: jax.Array | int, size: int, sigma_min: float, sigma_max: float, rho: float) -> jax.Array:
    """The first `num` of `size` entries are the Karras grid of `num` levels from sigma_min up to sigma_max,
    (sigma_min^(1/rho) + i / (num - 1) (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho; the rest repeat sigma_max.
    A fixed `size` lets `num` be traced (it grows during training): float32 [size]."""
    i = jnp.minimum(jnp.arange(size, dtype=jnp.float32), num - 1.0)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return (lo + i / (num - 1.0) * (hi - lo)) ** rho


def num_scales(step: jax.Array, total_steps: int, s0: int, s1: int) -> jax.Array:
    """iCT's discretisation curriculum N(k) = min(s0 2^floor(k / K'), s1) + 1, K' = floor(K / (log2(s1 / s0) + 1)),
    for step k [] of K = total_steps: int32 []."""
    stage = max(1, math.floor(total_steps / (math.log2(s1 / s0) + 1)))
    doublings = jnp.minimum(step // stage, 30).astype(jnp.int32)
    return (jnp.minimum(s0 * 2**doublings, s1) + 1).astype(jnp.int32)


def sample_sigma_index(
    key: jax.Array, sigmas: jax.Array, num_levels: jax.Array, count: int, p_mean: float, p_std: float
) -> jax.Array:
    """Indices i in 0..num_levels - 2, int32 [count], with P(i) proportional to
    erf((ln sigma_{i+1} - P_mean) / (sqrt 2 P_std)) - erf((ln sigma_i - P_mean) / (sqrt 2 P_std))."""
    cdf = jax.scipy.special.erf((jnp.log(sigmas) - p_mean) / (math.sqrt(2.0) * p_std))  # [size]
    mass = cdf[1:] - cdf[:-1]  # [size - 1]
    valid = jnp.arange(mass.shape[0]) < num_levels - 1
    logits = jnp.where(valid, jnp.log(jnp.maximum(mass, 1e-30)), -jnp.inf)
    return jax.random.categorical(key, logits, shape=(count,)).astype(jnp.int32)


def pseudo_huber(a: jax.Array, b: jax.Array, c: float) -> jax.Array:
    """sqrt(||a - b||^2 + c^2) - c per example: [B, ...] -> [B]."""
    sq = jnp.sum((a - b) ** 2, axis=tuple(range(1, a.ndim)))
    return jnp.sqrt(sq + c**2) - c


def consistency_loss(
    f_fn: FFn, x0: jax.Array, eps: jax.Array, sigma_lo: jax.Array, sigma_hi: jax.Array, c: float
) -> jax.Array:
    """Per-example loss [B]: pseudo-Huber(f(x0 + sigma_hi eps, sigma_hi), stop-gradient f(x0 + sigma_lo eps,
    sigma_lo)) / (sigma_hi - sigma_lo)."""
    pred = f_fn(x0 + per_example(sigma_hi, x0) * eps, sigma_hi)
    target = jax.lax.stop_gradient(f_fn(x0 + per_example(sigma_lo, x0) * eps, sigma_lo))
    return pseudo_huber(pred, target, c) / (sigma_hi - sigma_lo)


def sampling_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> jax.Array:
    """The levels a `steps`-evaluation sampler denoises at, from sigma_max down: the Karras grid of steps + 1
    levels without sigma_min, float32 [steps]."""
    return karras_sigmas(steps + 1, steps + 1, sigma_min, sigma_max, rho)[::-1][:steps]


def consistency_sample(f_fn: FFn, key: jax.Array, noise: jax.Array, sigmas: jax.Array, sigma_min: float) -> jax.Array:
    """Multistep consistency sampling (Song et al. 2023, Alg. 1) from unit noise [B, ...] at the levels `sigmas`
    [K] (descending, sigmas[0] = sigma_max): x = f(sigma_0 noise, sigma_0); then for each later level, renoise
    x + sqrt(sigma_k^2 - sigma_min^2) eps_k and denoise. NFE = K."""
    b = noise.shape[0]
    x = f_fn(sigmas[0] * noise, jnp.full((b,), sigmas[0]))

    def body(x, inputs):
        sigma, k = inputs
        y = x + jnp.sqrt(sigma**2 - sigma_min**2) * jax.random.normal(k, x.shape, x.dtype)
        return f_fn(y, jnp.full((b,), sigma)), None

    keys = jax.random.split(key, sigmas.shape[0])
    return jax.lax.scan(body, x, (sigmas[1:], keys[1:]))[0]
