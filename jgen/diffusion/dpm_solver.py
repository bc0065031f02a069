"""DPM-Solver samplers (Lu et al. 2022), data prediction: multistep 2M, 3M and the stochastic 2M SDE variant, and
single-step DPM-Solver-2 and -3.

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

The single-step solvers (DPM-Solver, Algorithms 1 and 2, in the data-prediction form of DPM-Solver++) spend
`order` evaluations on each step from t to s: m0 at t and predictions at intermediate points lambda_t + r h. They
keep no history (no warm-up, no lower-order steps near the end). With phi_1 = expm1(-h), phi_2 = phi_1 / h + 1,
    base = (sigma_s / sigma_t) x_t - alpha_s phi_1 m0                                  (the DDIM step)
    order 2, r1 = 1/2:  u1 = DDIM step to lambda_t + r1 h,  m1 = x0_hat(u1)
                        x_s = base - (1 / (2 r1)) alpha_s phi_1 (m1 - m0)               (with r1 = 1/2: midpoint)
    order 3, r1 = 1/3, r2 = 2/3:  u1, m1 as above;
                        u2 = DDIM step to lambda_t + r2 h + (r2 / r1) alpha_u2 phi_22 (m1 - m0),  m2 = x0_hat(u2)
                        (phi_22 = expm1(-r2 h) / (r2 h) + 1: r2 h phi_22 weighs the linear term exactly)
                        x_s = base + (1 / r2) alpha_s phi_2 (m2 - m0)
The grid's N times bound N - 1 such steps; the last evaluation, at t_min, is the data prediction that ends
sampling: NFE = order (N - 1) + 1 (2N - 1 and 3N - 2), `steps` counting grid times as for Heun.
The stage points are states of the schedule's own path (alpha, sigma at lambda from `alpha_sigma_at_log_snr`).
A grid that starts at t = 1 of the rectified-flow path (alpha = 0, lambda = -inf: the time spacings) leaves the
first step's h and lambda_t + r h undefined, and x0_hat there is no polynomial in lambda (it tends to E[x0] like
e^lambda). That step integrates in rho = alpha / sigma = e^lambda instead, where the exact solution reads
x_s / sigma_s = x_t / sigma_t + int_0^{rho_s} x0_hat drho: the stage points sit at rho = r rho_s (lambda_s +
log r), phi_1 = -1 (the DDIM step from pure noise, x_s = sigma_s x_t + alpha_s m0) and phi_2 = phi_22 = 1/2 weigh
the linear term exactly, so order 2 is the midpoint rule and order 3 Heun's third-order rule in (x / sigma, rho).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jgen.diffusion.sampler_core import SamplingSpec, grid_alpha_sigma, grid_log_snr, register_sampler, step_orders
from jgen.diffusion.schedules import alpha_sigma_at_log_snr, time_from_log_snr


def _multistep(
    denoise, schedule, x, key, times, order: int, lower_order_final: bool, rec, sde: bool = False, project=None
):
    steps = times.shape[0]
    alphas, sigmas = grid_alpha_sigma(schedule, times)
    if project is not None:  # inpainting (inpaint.py): the known region put back at every state
        x = project(x, 0, alphas[0], sigmas[0])
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
        if project is not None:
            x = project(x, i + 1, a_s, s_s)
        return (x, m0, m1, lam0, lam1, rec.write(buf, i + 1, x)), None

    lam_init = lams[0]
    init = (x, jnp.zeros_like(x), jnp.zeros_like(x), lam_init - 1.0, lam_init - 2.0, rec.init(x))
    (x, _, _, _, _, buf), _ = jax.lax.scan(body, init, jnp.arange(steps))
    return x, buf, steps


@register_sampler("dpm_solver", steps=20, spacing="logsnr_uniform", inpaint=True)
def dpm_solver(denoise, schedule, x, key, times, spec: SamplingSpec, rec, project=None):
    """DPM-Solver++(2M): second-order multistep, one network evaluation per step."""
    return _multistep(denoise, schedule, x, key, times, 2, spec.lower_order_final, rec, project=project)


@register_sampler("dpm_solver_3m", steps=20, spacing="logsnr_uniform", inpaint=True)
def dpm_solver_3m(denoise, schedule, x, key, times, spec: SamplingSpec, rec, project=None):
    """DPM-Solver++(3M): third-order multistep, one network evaluation per step."""
    return _multistep(denoise, schedule, x, key, times, 3, spec.lower_order_final, rec, project=project)


@register_sampler("dpm_solver_sde", steps=20, spacing="logsnr_uniform", inpaint=True)
def dpm_solver_sde(denoise, schedule, x, key, times, spec: SamplingSpec, rec, project=None):
    """DPM-Solver++(2M) SDE: the stochastic second-order multistep sampler (fresh noise every step)."""
    return _multistep(denoise, schedule, x, key, times, 2, spec.lower_order_final, rec, sde=True, project=project)


def _singlestep(denoise, schedule, x, times, order: int, rec):
    """Single-step DPM-Solver-`order` (2 or 3) over the grid: `order` evaluations per step, then the data
    prediction at t_min (see the module docstring)."""
    steps = times.shape[0]
    alphas, sigmas = grid_alpha_sigma(schedule, times)
    lams = grid_log_snr(alphas, sigmas)  # [N]

    def predict_at(x_u, lam_u, a_u, s_u):  # the data prediction at half log-SNR lam_u, off the grid
        return denoise(x_u, time_from_log_snr(schedule, 2.0 * lam_u), a_u, s_u)[0]

    def body(carry, i):
        x, buf = carry
        a_t, s_t, a_s, s_s = alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1]
        lam_t, lam_s = lams[i], lams[i + 1]
        h = lam_s - lam_t
        pure_noise = jnp.isneginf(lam_t)  # t = 1 of the rectified-flow path: alpha_t = 0, h infinite
        m0, _ = denoise(x, times[i], a_t, s_t)
        phi_1 = jnp.expm1(-h)
        base = (s_s / s_t) * x - a_s * phi_1 * m0

        def ddim_to(r):  # the first-order step from t to the stage point r: (state, lambda, alpha, sigma)
            lam_u = jnp.where(pure_noise, lam_s + jnp.log(r), lam_t + r * h)
            a_u, s_u = alpha_sigma_at_log_snr(schedule, 2.0 * lam_u)
            return (s_u / s_t) * x - a_u * jnp.expm1(-jnp.where(pure_noise, jnp.inf, r * h)) * m0, lam_u, a_u, s_u

        if order == 2:
            r1 = 0.5
            u1, lam_1, a_1, s_1 = ddim_to(r1)
            x = base - (0.5 / r1) * a_s * phi_1 * (predict_at(u1, lam_1, a_1, s_1) - m0)
        else:
            r1, r2 = 1.0 / 3.0, 2.0 / 3.0
            u1, lam_1, a_1, s_1 = ddim_to(r1)
            m1 = predict_at(u1, lam_1, a_1, s_1)
            u2, lam_2, a_2, s_2 = ddim_to(r2)
            phi_22 = jnp.where(pure_noise, 0.5, jnp.expm1(-r2 * h) / (r2 * h) + 1.0)
            u2 = u2 + (r2 / r1) * a_2 * phi_22 * (m1 - m0)
            phi_2 = jnp.where(pure_noise, 0.5, phi_1 / h + 1.0)
            x = base + (1.0 / r2) * a_s * phi_2 * (predict_at(u2, lam_2, a_2, s_2) - m0)
        return (x, rec.write(buf, i + 1, x)), None

    (x, buf), _ = jax.lax.scan(body, (x, rec.init(x)), jnp.arange(steps - 1))
    x0, _ = denoise(x, times[-1], alphas[steps - 1], sigmas[steps - 1])  # the data prediction at t_min
    return x0, rec.write(buf, steps, x0), order * (steps - 1) + 1


@register_sampler("dpm_solver_2s", steps=10, spacing="logsnr_uniform", stages=2)
def dpm_solver_2s(denoise, schedule, x, key, times, spec: SamplingSpec, rec):
    """Single-step DPM-Solver-2 (midpoint, r1 = 1/2): second order, 2N - 1 evaluations for N grid times."""
    return _singlestep(denoise, schedule, x, times, 2, rec)


@register_sampler("dpm_solver_3s", steps=7, spacing="logsnr_uniform", stages=3)
def dpm_solver_3s(denoise, schedule, x, key, times, spec: SamplingSpec, rec):
    """Single-step DPM-Solver-3 (r1 = 1/3, r2 = 2/3): third order, 3N - 2 evaluations for N grid times."""
    return _singlestep(denoise, schedule, x, times, 3, rec)
