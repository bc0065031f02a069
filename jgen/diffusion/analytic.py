"""Exact denoisers for Gaussian and Gaussian-mixture data: references that test samplers without training.

For x0 ~ N(m, S) and x_t = alpha x0 + sigma eps, x_t ~ N(alpha m, C) with C = alpha^2 S + sigma^2 I and
    E[x0 | x_t] = m + alpha S C^{-1} (x_t - alpha m).
For a mixture sum_k pi_k N(m_k, S_k) the posterior mean is the responsibility-weighted sum of the component
posterior means, with responsibilities proportional to pi_k N(x_t; alpha m_k, C_k). Sampling with the exact
denoiser must reproduce the data distribution up to the sampler's discretisation error.
Data are flat vectors [B, d].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion.guidance import ModelFn
from jgen.diffusion.parameterization import Parameterization, resolve, x0_to_eps
from jgen.diffusion.schedules import Schedule


def _component_terms(x: jax.Array, alpha, sigma, mean: jax.Array, cov: jax.Array):
    """Posterior mean [B, d] and log N(x; alpha m, C) [B] for one Gaussian component."""
    d = mean.shape[0]
    c = alpha**2 * cov + sigma**2 * jnp.eye(d, dtype=cov.dtype)  # [d, d], small: invert it once
    c_inv = jnp.linalg.inv(c)
    r = x - alpha * mean  # [B, d]
    sol = r @ c_inv  # C^{-1} r per row (C symmetric), [B, d]
    post_mean = mean + alpha * sol @ cov
    log_det = jnp.linalg.slogdet(c)[1]
    log_prob = -0.5 * (jnp.sum(r * sol, axis=-1) + log_det + d * jnp.log(2.0 * jnp.pi))
    return post_mean, log_prob


def gaussian_posterior_mean(x: jax.Array, alpha, sigma, mean: jax.Array, cov: jax.Array) -> jax.Array:
    """E[x0 | x_t = x] for x0 ~ N(mean, cov): x [B, d] -> [B, d]."""
    return _component_terms(x, alpha, sigma, mean, cov)[0]


def mixture_posterior_mean(
    x: jax.Array, alpha, sigma, weights: jax.Array, means: jax.Array, covs: jax.Array
) -> jax.Array:
    """E[x0 | x_t = x] for x0 ~ sum_k weights_k N(means_k, covs_k): x [B, d], means [K, d], covs [K, d, d]."""
    post, logp = jax.vmap(lambda m, s: _component_terms(x, alpha, sigma, m, s))(means, covs)  # [K,B,d], [K,B]
    resp = jax.nn.softmax(logp + jnp.log(weights)[:, None], axis=0)  # [K, B]
    return jnp.einsum("kb,kbd->bd", resp, post)


def mixture_log_prob(x: jax.Array, alpha, sigma, weights: jax.Array, means: jax.Array, covs: jax.Array) -> jax.Array:
    """log q_t(x) of x_t = alpha x0 + sigma eps for x0 ~ sum_k weights_k N(means_k, covs_k): x [B, d] -> [B]."""
    logp = jax.vmap(lambda m, s: _component_terms(x, alpha, sigma, m, s)[1])(means, covs)  # [K, B]
    return jax.nn.logsumexp(logp + jnp.log(weights)[:, None], axis=0)


def mixture_model_fn(
    schedule: Schedule,
    weights: jax.Array,
    means: jax.Array,
    covs: jax.Array,
    parameterization: str | Parameterization = "x0",
) -> ModelFn:
    """An exact, class-conditional 'network' for mixture data, predicting in `parameterization`: E[x0 | x_t]
    itself (x0), or that posterior mean converted to the record's target (eps = (x_t - alpha x0) / sigma; on the
    rectified-flow path the exact velocity u = eps - x0 = (x_t - E[x0 | x_t]) / t for `flow`; EDM's
    F* = (E[x0 | x_t] - c_skip y) / c_out for `edm`, whose inputs c_in y and c_noise it decodes first).

    Label k in [0, K) means component k; label K (the null label) or labels=None means the whole mixture.
    """
    num = weights.shape[0]
    record = resolve(parameterization)

    def model_fn(x, t, labels):
        x, alpha, sigma = record.undo_net_input(x, t[0], schedule)  # samplers call with one time per batch
        x0 = mixture_posterior_mean(x, alpha, sigma, weights, means, covs)
        if labels is not None:
            per_class = jax.vmap(lambda m, s: gaussian_posterior_mean(x, alpha, sigma, m, s))(means, covs)  # [K,B,d]
            chosen = jnp.take_along_axis(per_class, jnp.clip(labels, 0, num - 1)[None, :, None], axis=0)[0]
            x0 = jnp.where((labels == num)[:, None], x0, chosen)
        return record.target(x0, x0_to_eps(x, x0, alpha, sigma), alpha, sigma)

    return model_fn


# -- measuring samples against a known mixture (host-side numpy) ---------------------------------------------


def mixture_draw(rng: np.random.Generator, num: int, weights, means, covs) -> np.ndarray:
    """`num` exact draws [num, d] from sum_k weights_k N(means_k, covs_k)."""
    weights, means, covs = (np.asarray(a, np.float64) for a in (weights, means, covs))
    comp = rng.choice(len(weights), size=num, p=weights / weights.sum())
    out = np.empty((num, means.shape[1]))
    for k in range(len(weights)):
        idx = np.flatnonzero(comp == k)
        out[idx] = rng.multivariate_normal(means[k], covs[k], size=len(idx))
    return out


def mixture_assign(x: np.ndarray, weights, means, covs) -> np.ndarray:
    """The most probable component of each sample under the mixture (the Bayes classifier): x [n, d] -> int [n]."""
    x = np.asarray(x, np.float64)
    logp = []
    for w, m, c in zip(np.asarray(weights, np.float64), np.asarray(means, np.float64), np.asarray(covs, np.float64)):
        r = x - m
        sol = np.linalg.solve(c, r.T).T
        logp.append(np.log(w) - 0.5 * (np.sum(r * sol, axis=1) + np.linalg.slogdet(c)[1]))
    return np.argmax(np.stack(logp), axis=0)


def mode_stats(x: np.ndarray, weights, means, covs) -> tuple[np.ndarray, np.ndarray]:
    """(weight [K], per-axis std [K, d]) of each component's share of the samples x [n, d] (nan if empty)."""
    comp = mixture_assign(x, weights, means, covs)
    k = len(np.asarray(weights))
    frac = np.array([np.mean(comp == j) for j in range(k)])
    std = np.stack([x[comp == j].std(axis=0) if np.any(comp == j) else np.full(x.shape[1], np.nan) for j in range(k)])
    return frac, std


def wasserstein1(a: np.ndarray, b: np.ndarray, num_projections: int = 64, seed: int = 0) -> float:
    """W1 between two samples [n, d] and [k n, d] (one size a multiple of the other): exact for d = 1 (the
    mean distance between matching quantiles); for d > 1 the sliced W1, the mean over `num_projections`
    random unit directions of the 1-D W1 of the projections."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) > len(b):
        a, b = b, a
    if a.shape[1] != b.shape[1] or len(b) % len(a):
        raise ValueError(f"samples must have the same dimension and sizes n and k n; got {a.shape} and {b.shape}")
    if a.shape[1] == 1:
        proj_a, proj_b = a, b
    else:
        dirs = np.random.default_rng(seed).normal(size=(a.shape[1], num_projections))
        dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
        proj_a, proj_b = a @ dirs, b @ dirs
    sorted_a = np.repeat(np.sort(proj_a, axis=0), len(b) // len(a), axis=0)
    return float(np.mean(np.abs(sorted_a - np.sort(proj_b, axis=0))))


def mixture_flow_map_1d(z: np.ndarray, alpha: float, sigma: float, weights, means, stds) -> np.ndarray:
    """The exact probability-flow ODE map from time t (alpha, sigma) to the data, for 1-D mixture data.

    In one dimension the ODE's flow is monotone and carries the marginal at t onto the data distribution, so it
    is the transport F_data^-1(F_t(z)), with F_t the CDF of sum_k w_k N(alpha m_k, alpha^2 s_k^2 + sigma^2).
    A deterministic sampler started from x_t = z should land on it: the difference is its discretisation error
    alone, with no Monte Carlo noise. z [n] -> [n] (float64; bisection to ~1e-12).
    """
    from scipy.special import log_ndtr, ndtr  # local: scipy only for the exact flow map (tests, benchmarks)

    w, m, s = (np.asarray(a, np.float64).ravel() for a in (weights, means, stds))
    z = np.asarray(z, np.float64).ravel()
    scale_t = np.sqrt(alpha**2 * s**2 + sigma**2)
    # log F_t(z) (in logs, so that quantiles in the far tails stay resolved)
    log_u = np.logaddexp.reduce(np.log(w) + log_ndtr((z[:, None] - alpha * m) / scale_t), axis=1)
    lo = np.full_like(z, (m - 40 * s).min())
    hi = np.full_like(z, (m + 40 * s).max())
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        below = np.log(np.sum(w * ndtr((mid[:, None] - m) / s), axis=1) + 1e-300) < log_u
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def mixture_marginal_1d(alpha: float, sigma: float, weights, means, stds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The forward marginal q(x_t) of 1-D mixture data sum_k w_k N(m_k, s_k^2): the mixture
    sum_k w_k N(alpha m_k, alpha^2 s_k^2 + sigma^2), as (weights [K], means [K], stds [K])."""
    w, m, s = (np.asarray(a, np.float64).ravel() for a in (weights, means, stds))
    return w / w.sum(), alpha * m, np.sqrt(alpha**2 * s**2 + sigma**2)


def mixture_density_1d(x: np.ndarray, weights, means, stds) -> np.ndarray:
    """The density of sum_k w_k N(m_k, s_k^2) at the points x (any shape), float64."""
    w, m, s = (np.asarray(a, np.float64).ravel() for a in (weights, means, stds))
    x = np.asarray(x, np.float64)
    z = (x[..., None] - m) / s
    return np.sum(w / w.sum() * np.exp(-0.5 * z**2) / (s * np.sqrt(2 * np.pi)), axis=-1)


def pf_ode_path_1d(z: np.ndarray, alpha: float, sigma: float, alphas, sigmas, weights, means, stds) -> np.ndarray:
    """Exact probability-flow ODE trajectories of 1-D mixture data: the points z [n] at time t (alpha, sigma) carried
    to each earlier time s (alphas [S], sigmas [S]; alpha_s >= alpha): [S, n] (float64).

    In one dimension the flow is the monotone transport x_s = F_s^-1(F_t(z)) between the marginals. The marginal at
    t is the marginal at s pushed through the forward kernel q(x_t | x_s) = N(a x_s, sigma^2 - a^2 sigma_s^2) with
    a = alpha / alpha_s, so each row is `mixture_flow_map_1d` with the marginal at s as the "data".
    """
    rows = []
    for a_s, s_s in zip(np.asarray(alphas, np.float64).ravel(), np.asarray(sigmas, np.float64).ravel()):
        w_s, m_s, sd_s = mixture_marginal_1d(a_s, s_s, weights, means, stds)
        a = alpha / a_s
        rows.append(mixture_flow_map_1d(z, a, np.sqrt(max(sigma**2 - a**2 * s_s**2, 0.0)), w_s, m_s, sd_s))
    return np.stack(rows)
