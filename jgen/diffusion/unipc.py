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


def _weights(p: int, corrector: bool, hist, lam_t, a_t, s_t, s_s0) -> jax.Array:
    """One UniP-p (corrector=False) or UniC-p step from s0 to t as weights of (x_s0, m0, m1, m2, m_t), for every
    step of a grid at once: `hist` [3, N] holds the lambdas of m0, m1, m2, the others are [N]. -> [N, 5]."""
    h = lam_t - hist[0]
    hh = -h
    b_h = jnp.expm1(hh)
    rks = [(hist[k] - hist[0]) / h for k in range(1, p)] + [jnp.ones_like(h)]
    g, b = b_h / hh - 1.0, []
    for n in range(1, p + 1):
        b.append(g * math.factorial(n) / b_h)
        g = g / hh - 1.0 / math.factorial(n + 1)
    w = [-a_t * b_h, jnp.zeros_like(h), jnp.zeros_like(h), jnp.zeros_like(h)]  # on m0, m1, m2, m_t
    used = p if corrector else p - 1  # the D_k (and, for the corrector, m_t - m0) terms with a weight rho_k
    if used == 1:
        rho = [jnp.full_like(h, 0.5)]
    elif used > 1:
        rmat = jnp.stack([jnp.stack([r**n for r in rks[:used]], -1) for n in range(used)], -2)  # [N, used, used]
        rho = list(jnp.moveaxis(jnp.linalg.solve(rmat, jnp.stack(b[:used], -1)[..., None])[..., 0], -1, 0))
    else:
        rho = []
    for k, r in enumerate(rho):  # term k: D_{k+1} = (m_{k+1} - m0) / r_{k+1}, or (m_t - m0) for the corrector's last
        wk = -a_t * b_h * r / rks[k]
        target = k + 1 if k < p - 1 else 3
        w[target] = w[target] + wk
        w[0] = w[0] - wk
    return jnp.stack([s_t / s_s0, *w], -1)


def _by_order(orders: jax.Array, weights: list[jax.Array]) -> jax.Array:
    """Row i of weights[orders[i] - 1]: [N, 5] (rows of orders not used may be non-finite; they are never read)."""
    return jnp.stack(weights)[orders - 1, jnp.arange(orders.shape[0])]


@register_sampler("unipc", steps=20, spacing="logsnr_uniform")
def unipc(denoise, schedule, x, key, times, spec: SamplingSpec, rec):
    """UniPC-p bh2 predictor-corrector (p = `order`, 1..3): one network evaluation per step.

    The weights of every predictor and corrector step depend on the grid alone, so they are computed for all
    steps before the loop, which is then one network call and two weighted sums per step (no branch in the loop:
    a branch on the step's order would cost an accelerator a round trip to the host at every step)."""
    order = int(spec.order)
    steps = times.shape[0]
    alphas, sigmas = grid_alpha_sigma(schedule, times)
    lams = grid_log_snr(alphas, sigmas)
    orders = step_orders(steps, order, spec.lower_order_final, starts_at_infinite_noise(spec.spacing, steps, schedule))
    i = jnp.arange(steps)
    lam = jnp.concatenate([lams[0] - jnp.arange(3.0, 0.0, -1.0), lams])  # lam[k + 3] = lambda_k (k < 0: padding)
    # predictor i: t_i -> t_{i+1} from m_i, m_{i-1}, m_{i-2} (the last step returns m_i: its weights are unused)
    nxt = jnp.minimum(i + 1, steps - 1)
    lam_next = jnp.where(i == steps - 1, lams[-1] + 1.0, lams[nxt])
    hist = jnp.stack([lam[i + 3], lam[i + 2], lam[i + 1]])
    pred = _by_order(
        orders, [_weights(p, False, hist, lam_next, alphas[nxt], sigmas[nxt], sigmas[i]) for p in range(1, order + 1)]
    )
    # corrector i: the step t_{i-1} -> t_i redone with m_i (not at i = 0, nor into the final time t_min)
    prev = jnp.maximum(i - 1, 0)
    hist = jnp.stack([lam[i + 2], lam[i + 1], lam[i]])
    corr = _by_order(
        orders[prev], [_weights(p, True, hist, lams, alphas[i], sigmas[i], sigmas[prev]) for p in range(1, order + 1)]
    )
    correct = (i >= 1) & (i < steps - 1)

    def body(carry, step):
        x, x_prev, ms, buf = carry  # x: the (predicted) state at t_i; x_prev: corrected state at t_{i-1}
        i, wp, wc, corrects = step
        m_i, _ = denoise(x, times[i], alphas[i], sigmas[i])
        x_c = wc[0] * x_prev + wc[1] * ms[0] + wc[2] * ms[1] + wc[3] * ms[2] + wc[4] * m_i
        x = jnp.where(corrects, x_c, x)
        ms = jnp.concatenate([m_i[None], ms[:-1]])  # m_i, m_{i-1}, m_{i-2}
        x_next = wp[0] * x + wp[1] * ms[0] + wp[2] * ms[1] + wp[3] * ms[2]
        x_next = jnp.where(i == steps - 1, m_i, x_next)
        return (x_next, x, ms, rec.write(buf, i + 1, x_next)), None

    hist = jnp.zeros((3, *x.shape), jnp.float32)
    (x, _, _, buf), _ = jax.lax.scan(body, (x, x, hist, rec.init(x)), (i, pred, corr, correct))
    return x, buf, steps
