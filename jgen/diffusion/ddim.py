"""Ancestral DDPM and DDIM: the first-order samplers, one network evaluation per step.

One step from t down to s (Song et al. 2021, eq. 12) with (x0_hat, eps_hat) = denoise(x_t):
    x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z,
    c = eta (sigma_s / sigma_t) sqrt(sigma_t^2 - (alpha_t sigma_s / alpha_s)^2),   z ~ N(0, I),
where c at eta = 1 is the std of the DDPM posterior q(x_s | x_t, x_0) of any Gaussian path (on
variance-preserving paths the familiar (sigma_s / sigma_t) sqrt(1 - alpha_t^2 / alpha_s^2)).
eta = 0 is the deterministic DDIM map (Euler's method for the probability-flow ODE in the variables
x / sigma against alpha / sigma); on the rectified-flow path (alpha = 1 - t, sigma = t) the same map is
x_s = x_t + (s - t) u_hat with u_hat = eps_hat - x0_hat: Euler's method in t for dx/dt = u, the usual
rectified-flow sampler. eta = 1 draws from the DDPM posterior (ancestral sampling, Ho et al. 2020).
The last step goes to the clean end point (alpha = 1, sigma = 0), where c = 0 and x_0 = x0_hat(x_{t_min}).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jgen.diffusion.sampler_core import Recorder, SamplingSpec, grid_alpha_sigma, register_sampler


def ddim_loop(denoise, schedule, x: jax.Array, key: jax.Array, times: jax.Array, eta, rec: Recorder, project=None):
    """The DDIM/DDPM loop over the N grid times: x [B, ...] -> (x0 [B, ...], trajectory buffer, NFE = N).
    `project(x, k, alpha_k, sigma_k)` (inpaint.py), if given, is applied to the start and after every step."""
    steps = times.shape[0]
    alphas, sigmas = grid_alpha_sigma(schedule, times)
    if project is not None:
        x = project(x, 0, alphas[0], sigmas[0])
    # eta is a Python number here: at eta = 0 the map is deterministic and no noise is drawn at all.
    stochastic = not (isinstance(eta, (int, float)) and eta == 0)

    def body(carry, i):
        x, buf = carry
        a_t, s_t, a_s, s_s = alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1]
        x0, eps = denoise(x, times[i], a_t, s_t)
        x = a_s * x0
        if stochastic:
            c = eta * (s_s / s_t) * jnp.sqrt(jnp.maximum(s_t**2 - (a_t * s_s / a_s) ** 2, 0.0))
            z = jax.random.normal(jax.random.fold_in(key, i), x.shape, jnp.float32)
            x = x + jnp.sqrt(jnp.maximum(s_s**2 - c**2, 0.0)) * eps + c * z
        else:
            x = x + s_s * eps
        if project is not None:
            x = project(x, i + 1, a_s, s_s)
        return (x, rec.write(buf, i + 1, x)), None

    (x, buf), _ = jax.lax.scan(body, (x, rec.init(x)), jnp.arange(steps))
    return x, buf, steps


@register_sampler("ddpm", steps=1000, spacing="time_uniform", inpaint=True)
def ddpm(denoise, schedule, x, key, times, spec: SamplingSpec, rec, project=None):
    """Ancestral sampling from the DDPM posterior; N = T by default.

    x_s ~ q(x_s | x_t, x0_hat): all T steps of the schedule by default (the original DDPM), or any coarser grid."""
    return ddim_loop(denoise, schedule, x, key, times, 1.0, rec, project)


@register_sampler("ddim", steps=50, spacing="time_uniform", inpaint=True)
def ddim(denoise, schedule, x, key, times, spec: SamplingSpec, rec, project=None):
    """DDIM: eta = 0 deterministic (a first-order ODE solver), eta = 1 ancestral.

    Deterministic for eta = 0 (the default); eta interpolates towards ancestral sampling (eta = 1)."""
    return ddim_loop(denoise, schedule, x, key, times, float(spec.eta), rec, project)
