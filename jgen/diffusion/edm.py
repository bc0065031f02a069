"""EDM samplers (Karras et al. 2022, Algorithm 2): Euler and Heun on the noise level, with optional churn.

In the variables y = x / alpha and s = sigma / alpha the probability-flow ODE is dy/ds = (y - D(y; s)) / s,
with D the data prediction. For each grid level s_i (s_N = 0):
    churn:  gamma = min(S_churn / N, sqrt(2) - 1) if S_tmin <= s_i <= S_tmax else 0,  s_hat = (1 + gamma) s_i,
            y_hat = y + sqrt(s_hat^2 - s_i^2) S_noise z                       (z ~ N(0, I); none for gamma = 0)
    Euler:  d = (y_hat - D(y_hat; s_hat)) / s_hat,  y' = y_hat + (s_{i+1} - s_hat) d
    Heun:   + d' = (y' - D(y'; s_{i+1})) / s_{i+1},  y' = y_hat + (s_{i+1} - s_hat) (d + d') / 2   (not into s = 0)
Euler costs N evaluations and equals DDIM on the same grid when there is no churn; Heun costs 2N - 1.
`steps` counts the noise levels N, EDM's convention (18 levels = 35 evaluations for Heun).
Any path works (y and s are EDM's variables for every alpha, sigma), but s must be finite at the grid's first
time: not at t = 1 of the rectified-flow path (alpha = 0), where the time grids start (samplers.check_start).
On that path Euler in (y, s) is Euler in t (the DDIM map); Heun in (y, s) is a second-order method, but not
Heun's in (x, t) (the `midpoint` sampler is the explicit midpoint rule in t).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jgen.diffusion.sampler_core import SamplingSpec, register_sampler
from jgen.diffusion.schedules import alpha_sigma, alpha_sigma_at_level, time_from_log_snr


def _edm(denoise, schedule, x, key, times, spec: SamplingSpec, rec, heun: bool):
    steps = times.shape[0]
    alphas, sigmas = alpha_sigma(schedule, times)
    levels = jnp.append(sigmas / alphas, 0.0).astype(jnp.float32)  # s_0 > ... > s_{N-1} > s_N = 0
    gamma_max = min(float(spec.s_churn) / steps, math.sqrt(2.0) - 1.0)

    def data_pred(y, s, t):  # D(y; s): the denoiser at x = alpha y
        a, sigma = alpha_sigma_at_level(schedule, s)
        return denoise(a * y, t, a, sigma)[0]

    def churn(y, i):
        s_i = levels[i]
        gamma = jnp.where((s_i >= spec.s_tmin) & (s_i <= spec.s_tmax), gamma_max, 0.0)
        s_hat = s_i * (1.0 + gamma)
        z = jax.random.normal(jax.random.fold_in(key, i), y.shape, jnp.float32)
        y_hat = y + jnp.sqrt(jnp.maximum(s_hat**2 - s_i**2, 0.0)) * spec.s_noise * z  # fused ops can round below 0
        t_hat = jnp.where(gamma > 0, time_from_log_snr(schedule, -2.0 * jnp.log(s_hat)), times[i])
        return y_hat, s_hat, t_hat

    def euler(y, i):
        y_hat, s_hat, t_hat = churn(y, i) if gamma_max > 0 else (y, levels[i], times[i])
        d = (y_hat - data_pred(y_hat, s_hat, t_hat)) / s_hat
        return y_hat, s_hat, d, y_hat + (levels[i + 1] - s_hat) * d

    def to_x(y, i):  # state after step i, in x space (alpha = 1 at the clean end point)
        return jnp.where(i + 1 < steps, alphas[jnp.minimum(i + 1, steps - 1)], 1.0) * y

    def euler_body(carry, i):
        y, buf = carry
        y = euler(y, i)[3]
        return (y, rec.write(buf, i + 1, to_x(y, i))), None

    def heun_body(carry, i):
        y, buf = carry
        y_hat, s_hat, d, y_next = euler(y, i)
        s_n = levels[i + 1]
        d2 = (y_next - data_pred(y_next, s_n, times[i + 1])) / s_n
        y = y_hat + (s_n - s_hat) * 0.5 * (d + d2)
        return (y, rec.write(buf, i + 1, to_x(y, i))), None

    y = x / alphas[0]
    if heun:
        (y, buf), _ = jax.lax.scan(heun_body, (y, rec.init(x)), jnp.arange(steps - 1))
        x0 = euler(y, steps - 1)[3]  # the last step, to s = 0, is Euler's: it lands on the data prediction
        return x0, rec.write(buf, steps, x0), 2 * steps - 1
    (y, buf), _ = jax.lax.scan(euler_body, (y, rec.init(x)), jnp.arange(steps))
    return y, buf, steps


@register_sampler("euler", steps=50, spacing="karras", noise_level=True)
def euler(denoise, schedule, x, key, times, spec: SamplingSpec, rec):
    """EDM Euler: first order, N evaluations; with S_churn > 0 the stochastic EDM sampler's Euler form."""
    return _edm(denoise, schedule, x, key, times, spec, rec, heun=False)


@register_sampler("heun", steps=18, spacing="karras", stages=2, noise_level=True)
def heun(denoise, schedule, x, key, times, spec: SamplingSpec, rec):
    """EDM Heun: second order, 2N - 1 evaluations; deterministic unless S_churn > 0 (EDM's stochastic sampler)."""
    return _edm(denoise, schedule, x, key, times, spec, rec, heun=True)
