"""UniPC (Zhao et al. 2023), the B(h) = expm1(h) ("bh2") variant in data prediction: a multistep predictor
(UniP-p) and a corrector (UniC-p) that reuses the network evaluation the next step needs anyway.

With lambda = log(alpha / sigma), h = lambda_t - lambda_s0, m0 = x0_hat at s0 and the earlier predictions
m_k at lambda_k, let r_k = (lambda_k - lambda_s0) / h and D_k = (m_k - m0) / r_k (k = 1..p-1). With
hh = -h, B = expm1(hh) and the phi recursion g_1 = expm1(hh) / hh - 1, g_{n+1} = g_n / hh - 1 / (n+1)!:
    b_n = g_n n! / B,   R_{nk} = r_k^(n-1)   (r_p = 1 for the new point)
    predictor:  x_t = (sigma_t / sigma_s0) x_s0 - alpha_t expm1(hh) m0 - alpha_t B sum_k rho_k D_k,
                rho = R[:p-1, :p-1]^-1 b[:p-1]  (rho = 1/2 for p = 2)
    corrector:  the same with the new prediction m_t = x0_hat(x_t^pred, t) as D_p = m_t - m0 and
                rho = R^-1 b (rho = 1/2 for p = 1), which raises the order by one at no extra evaluation.
m_t (at the predicted, uncorrected point) is kept as the history for the next step, as in the reference.
The grid's last evaluation (at t_min) is the data prediction that ends sampling, so the step into t_min
is not corrected (that would need one more evaluation). A grid that starts at t = 1 of the rectified-flow path
(lambda = -inf) makes the first step the exact first-order one and keeps its prediction out of the later
steps' divided differences (`step_orders(..., infinite_start=True)`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jgen.diffusion.sampler_core import SamplingSpec, grid_alpha_sigma, grid_log_snr, register_sampler, step_orders
from jgen.diffusion.timegrid import starts_at_infinite_noise


def _update(p: int, corrector: bool, x, ms, lams, lam_t, a_t, s_t, s_s0, m_t):
    """One UniP-p (corrector=False) or UniC-p step from s0 to t; ms/lams hold m0, m1, m2 and their lambdas."""
    h = lam_t - lams[0]
    hh = -h
    b_h = jnp.expm1(hh)
    rks = [(lams[k] - lams[0]) / h for k in range(1, p)] + [jnp.ones_like(h)]
    d1s = [(ms[k] - ms[0]) / rks[k - 1] for k in range(1, p)]
    g, b = jnp.expm1(hh) / hh - 1.0, []
    for n in range(1, p + 1):
        b.append(g * math.factorial(n) / b_h)
        g = g / hh - 1.0 / math.factorial(n + 1)
    x_t = (s_t / s_s0) * x - a_t * jnp.expm1(hh) * ms[0]
    if not corrector:
        if p == 1:
            return x_t
        if p == 2:
            rho = [0.5]
        else:
            rmat = jnp.stack([jnp.stack([r**n for r in rks[:-1]]) for n in range(p - 1)])
            rho = list(jnp.linalg.solve(rmat, jnp.stack(b[: p - 1])))
        return x_t - a_t * b_h * sum(r * d for r, d in zip(rho, d1s))
    if p == 1:
        rho = [0.5]
    else:
        rmat = jnp.stack([jnp.stack([r**n for r in rks]) for n in range(p)])
        rho = list(jnp.linalg.solve(rmat, jnp.stack(b[:p])))
    res = sum((r * d for r, d in zip(rho[:-1], d1s)), jnp.zeros_like(x))
    return x_t - a_t * b_h * (res + rho[-1] * (m_t - ms[0]))


@register_sampler("unipc", steps=20, spacing="logsnr_uniform")
def unipc(denoise, schedule, x, key, times, spec: SamplingSpec, rec):
    """UniPC-p bh2 predictor-corrector (p = `order`, 1..3): one network evaluation per step."""
    order = int(spec.order)
    steps = times.shape[0]
    alphas, sigmas = grid_alpha_sigma(schedule, times)
    lams = grid_log_snr(alphas, sigmas)
    orders = step_orders(steps, order, spec.lower_order_final, starts_at_infinite_noise(spec.spacing, steps, schedule))
    branches = [lambda args, p=p, c=c: _update(p, c, *args) for c in (False, True) for p in range(1, order + 1)]

    def body(carry, i):
        x, x_prev, ms, lam_hist, buf = carry  # x: the (predicted) state at t_i; x_prev: corrected state at t_{i-1}
        a_i, s_i = alphas[i], sigmas[i]
        m_i, _ = denoise(x, times[i], a_i, s_i)
        last = i == steps - 1
        # correct the step t_{i-1} -> t_i with the new evaluation (not at i = 0, nor at the final time t_min)
        p_c = orders[jnp.maximum(i - 1, 0)]
        lam_i = lams[i]
        args_c = (x_prev, ms, lam_hist, lam_i, a_i, s_i, sigmas[jnp.maximum(i - 1, 0)], m_i)
        x_c = jax.lax.switch(order + p_c - 1, branches, args_c)
        x = jnp.where((i >= 1) & ~last, x_c, x)
        ms = jnp.concatenate([m_i[None], ms[:-1]])
        lam_hist = jnp.concatenate([lam_i[None], lam_hist[:-1]])
        j = jnp.minimum(i + 1, steps - 1)
        lam_next = jnp.where(last, lam_i + 1.0, lams[j])  # any finite value: the last step returns m_i
        args_p = (x, ms, lam_hist, lam_next, alphas[j], sigmas[j], s_i, m_i)
        x_next = jnp.where(last, m_i, jax.lax.switch(orders[i] - 1, branches, args_p))
        return (x_next, x, ms, lam_hist, rec.write(buf, i + 1, x_next)), None

    hist = jnp.zeros((3, *x.shape), jnp.float32)
    lam_hist = lams[0] - jnp.arange(1.0, 4.0)
    (x, _, _, _, buf), _ = jax.lax.scan(body, (x, x, hist, lam_hist, rec.init(x)), jnp.arange(steps))
    return x, buf, steps
