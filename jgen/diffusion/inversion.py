"""DDIM inversion: run the deterministic DDIM map backwards, data x_0 -> noise x_T.

Decoding with `sample(..., SamplingSpec(sampler="ddim", steps=N), Given(noise=x_T))` on the same grid returns
(close to) x_0, which makes x_T a latent code for interpolation and editing. One DDIM step from t down to s is
    x_s = alpha_s x0_hat(x_t) + sigma_s eps_hat(x_t),   x0_hat = (x_t - sigma_t eps_hat) / alpha_t,
so its inverse solves x_t = (alpha_t / alpha_s)(x_s - sigma_s eps) + sigma_t eps with eps = eps_hat(x_t, t).
The usual inversion takes eps = eps_hat(x_s, t) (first order in the step size); `fixed_point_iters` more
evaluations per step iterate the equation towards its exact solution, so that decoding reproduces x_0
to the solver's precision rather than to O(step).
On the rectified-flow path the same inverse is written in the velocity u = eps - x0, which is what varies
slowly there: x_t = x_s + (t - s) u_hat(x_t, t), i.e. x_s + (alpha_t - alpha_s) x0_hat + (sigma_t - sigma_s)
eps_hat (Euler's step in t run backwards). The eps form degenerates on the last step into t = 1, where
alpha_t = 0 and it no longer involves x_s. Both forms have the DDIM step's exact inverse as their fixed point.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jgen.diffusion.guidance import ModelFn, make_denoiser
from jgen.diffusion.parameterization import Parameterization
from jgen.diffusion.schedules import RECTIFIED_FLOW, Schedule, alpha_sigma
from jgen.diffusion.timegrid import time_grid


def ddim_invert(
    model_fn: ModelFn,
    schedule: Schedule,
    x0: jax.Array,
    *,
    steps: int = 50,
    labels: jax.Array | None = None,
    guidance: float = 1.0,
    null_label: int | None = None,
    parameterization: str | Parameterization = "eps",
    clip_denoised: bool = False,
    fixed_point_iters: int = 0,
    spacing: str = "time_uniform",
) -> tuple[jax.Array, int]:
    """(x_T [B, ...], NFE per sample) with x_T the DDIM(eta=0) code of the data x0 on the `steps`-step grid of
    `spacing` (decode with the same steps and spacing; time_uniform is DDIM's default)."""
    if fixed_point_iters < 0:
        raise ValueError(f"fixed_point_iters={fixed_point_iters}: must be >= 0")
    denoise = make_denoiser(model_fn, schedule, parameterization, labels, guidance, null_label, clip_denoised)
    velocity_form = schedule.path == RECTIFIED_FLOW
    times = time_grid(schedule, steps, spacing)[::-1]  # increasing: t_min .. t_max = 1
    alphas, sigmas = alpha_sigma(schedule, times)
    prev_a = jnp.concatenate([jnp.ones((1,)), alphas[:-1]])  # the clean start has alpha = 1, sigma = 0
    prev_s = jnp.concatenate([jnp.zeros((1,)), sigmas[:-1]])

    def body(x_s, j):
        a_t, s_t, a_s, s_s = alphas[j], sigmas[j], prev_a[j], prev_s[j]

        def solve(x_t):
            x0, eps = denoise(x_t, times[j], a_t, s_t)
            if velocity_form:
                return x_s + (a_t - a_s) * x0 + (s_t - s_s) * eps
            return (a_t / a_s) * (x_s - s_s * eps) + s_t * eps

        x_t = solve(x_s)
        x_t = jax.lax.fori_loop(0, fixed_point_iters, lambda _, x: solve(x), x_t)
        return x_t, None

    x_T, _ = jax.lax.scan(body, x0, jnp.arange(steps))
    return x_T, steps * (1 + fixed_point_iters)
