"""DPM-Solver++ multistep samplers (Lu et al. 2022), data prediction: 2M, 3M and the stochastic 2M SDE variant.

With lambda = log(alpha / sigma), the probability-flow ODE in data prediction integrates exactly as
    x_s = (sigma_s / sigma_t) x_t + sigma_s int_{lambda_t}^{lambda_s} e^lambda x0_hat(lambda) dlambda,
and a multistep solver replaces x0_hat(lambda) by the polynomial through the last `order` predictions. With
h = lambda_s - lambda_t, phi_1 = expm1(-h), the step from t to s is
    order 1:  x_s = (sigma_s / sigma_t) x_t - alpha_s phi_1 m0                     (= DDIM)
    order 2:  ... - 0.5 alpha_s phi_1 D1,  D1 = (m0 - m1) / r0,  r0 = h0 / h          (DPM-Solver++(2M))
    order 3:  ... + alpha_s phi_2 D1 + alpha_s (1 - 2 phi_2 / h) D2,  phi_2 = phi_1 / h + 1,
              D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1) ~ h x0', D2 = (D1_0 - D1_1) / (r0 + r1) ~ h^2 x0'' / 2
with m0, m1, m2 the data predictions at the current and the two previous times and h0, h1 their lambda gaps.
(The D2 weight is the exact integral of the quadratic term, int_0^h e^(u-h) u^2 / 2 du = h^2 (1 - 2 phi_2 / h)
/ 2, for which tests/diffusion measure third-order convergence.) The last step goes to sigma = 0 (lambda = inf)
and returns m0, the data prediction at t_min.

The SDE variant (DPM-Solver++(2M) SDE, midpoint form) discretises the reverse SDE instead:
    x_s = (sigma_s / sigma_t) e^-h x_t + alpha_s (1 - e^-2h) (m0 + 0.5 D1) + sigma_s sqrt(1 - e^-2h) z;
its first-order step is the DDPM posterior (ancestral sampling).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jgen.diffusion.sampler_core import (SamplerOptions, grid_alpha_sigma, grid_log_snr, register_sampler,
                                         step_orders)


def _multistep(denoise, schedule, x, key, times, order: int, lower_order_final: bool, rec, sde: bool = False):
    steps = times.shape[0]
    alphas, sigmas = grid_alpha_sigma(schedule, times)
    lams = grid_log_snr(alphas, sigmas)  # [N]
    orders = step_orders(steps, order, lower_order_final)

    def body(carry, i):
        x, m1, m2, lam1, lam2, buf = carry
        a_t, s_t, a_s, s_s = alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1]
        m0, _ = denoise(x, times[i], a_t, s_t)
        last = i == steps - 1
        lam0 = lams[i]
        h = jnp.where(last, 1.0, lams[jnp.minimum(i + 1, steps - 1)] - lam0)
        r0, r1 = (lam0 - lam1) / h, (lam1 - lam2) / h
        d1_0 = (m0 - m1) / r0
        if sde:
            decay = -jnp.expm1(-2.0 * h)  # 1 - e^-2h
            z = jax.random.normal(jax.random.fold_in(key, i), x.shape, jnp.float32)
            base = (s_s / s_t) * jnp.exp(-h) * x + a_s * decay * m0 + s_s * jnp.sqrt(decay) * z
            x2 = base + 0.5 * a_s * decay * d1_0
            x3 = x2
        else:
            phi_1 = jnp.expm1(-h)
            base = (s_s / s_t) * x - a_s * phi_1 * m0
            x2 = base - 0.5 * a_s * phi_1 * d1_0
            d1_1 = (m1 - m2) / r1
            d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            phi_2 = phi_1 / h + 1.0
            x3 = base + a_s * phi_2 * d1 + a_s * (1.0 - 2.0 * phi_2 / h) * d2
        k = orders[i]
        x = jnp.where(last, m0, jnp.where(k == 1, base, jnp.where(k == 2, x2, x3)))
        return (x, m0, m1, lam0, lam1, rec.write(buf, i + 1, x)), None

    lam_init = lams[0]
    init = (x, jnp.zeros_like(x), jnp.zeros_like(x), lam_init - 1.0, lam_init - 2.0, rec.init(x))
    (x, _, _, _, _, buf), _ = jax.lax.scan(body, init, jnp.arange(steps))
    return x, buf, steps


@register_sampler("dpm_solver", steps=20, spacing="logsnr_uniform")
def dpm_solver(denoise, schedule, x, key, times, opts: SamplerOptions, rec):
    """DPM-Solver++(2M): second-order multistep, one network evaluation per step."""
    return _multistep(denoise, schedule, x, key, times, 2, opts.lower_order_final, rec)


@register_sampler("dpm_solver_3m", steps=20, spacing="logsnr_uniform")
def dpm_solver_3m(denoise, schedule, x, key, times, opts: SamplerOptions, rec):
    """DPM-Solver++(3M): third-order multistep, one network evaluation per step."""
    return _multistep(denoise, schedule, x, key, times, 3, opts.lower_order_final, rec)


@register_sampler("dpm_solver_sde", steps=20, spacing="logsnr_uniform")
def dpm_solver_sde(denoise, schedule, x, key, times, opts: SamplerOptions, rec):
    """DPM-Solver++(2M) SDE: the stochastic second-order multistep sampler (fresh noise every step)."""
    return _multistep(denoise, schedule, x, key, times, 2, opts.lower_order_final, rec, sde=True)
