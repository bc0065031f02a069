"""The explicit midpoint rule in t: second order, and on the rectified-flow path the textbook flow sampler.

The probability-flow ODE in t is dx/dt = alpha'(t) x0_hat(x, t) + sigma'(t) eps_hat(x, t); on the rectified-flow
path (alpha = 1 - t, sigma = t) that is dx/dt = eps_hat - x0_hat = u_hat, the learned velocity. One step from t
down to s, with m = (t + s) / 2 and (x0_hat, eps_hat) = denoise(x, t):
    x_m = alpha_m x0_hat(x_t) + sigma_m eps_hat(x_t)                         (the DDIM map to m)
    x_s = x_t + (alpha_s - alpha_t) x0_hat(x_m) + (sigma_s - sigma_t) eps_hat(x_m)
On the rectified-flow path this is x_m = x_t + (m - t) u_hat(x_t, t), x_s = x_t + (s - t) u_hat(x_m, m): the
midpoint method for dx/dt = u. Elsewhere the increments alpha_s - alpha_t and sigma_s - sigma_t equal
(s - t) alpha'(m) and (s - t) sigma'(m) up to O((s - t)^3) where alpha and sigma are smooth in t, so it is second
order on any path on a grid that resolves them: not the DDPM schedules on a time_uniform grid, whose
sigma ~ sqrt(t) near the data makes it order 1.35-1.57 there (time_quadratic or logsnr_uniform restore 2).
Nothing divides by alpha, so it starts at t = 1 of the rectified-flow path (alpha = 0) like `ddim`.
The last grid time's update is the data prediction, as in every sampler: N grid times cost 2N - 1 evaluations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jgen.diffusion.sampler_core import SamplingSpec, grid_alpha_sigma, register_sampler
from jgen.diffusion.schedules import alpha_sigma


@register_sampler("midpoint", steps=10, spacing="time_uniform", stages=2)
def midpoint(denoise, schedule, x, key, times, spec: SamplingSpec, rec):
    """Explicit midpoint rule in t: two network evaluations per step, 2N - 1 for N grid times."""
    steps = times.shape[0]
    alphas, sigmas = grid_alpha_sigma(schedule, times)  # [N + 1], with the clean end point
    mids = 0.5 * (times[:-1] + times[1:])  # [N - 1]
    a_mid, s_mid = alpha_sigma(schedule, mids)

    def body(carry, i):
        x, buf = carry
        a_t, s_t, a_s, s_s = alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1]
        x0, eps = denoise(x, times[i], a_t, s_t)
        x_mid = a_mid[i] * x0 + s_mid[i] * eps
        x0_mid, eps_mid = denoise(x_mid, mids[i], a_mid[i], s_mid[i])
        x = x + (a_s - a_t) * x0_mid + (s_s - s_t) * eps_mid
        return (x, rec.write(buf, i + 1, x)), None

    (x, buf), _ = jax.lax.scan(body, (x, rec.init(x)), jnp.arange(steps - 1))
    x0, _ = denoise(x, times[steps - 1], alphas[steps - 1], sigmas[steps - 1])  # the jump to sigma = 0
    return x0, rec.write(buf, steps, x0), 2 * steps - 1
