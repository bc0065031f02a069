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

from jgen.diffusion.guidance import ModelFn
from jgen.diffusion.schedules import Schedule, alpha_sigma


def _component_terms(x: jax.Array, alpha, sigma, mean: jax.Array, cov: jax.Array):
    """Posterior mean [B, d] and log N(x; alpha m, C) [B] for one Gaussian component."""
    d = mean.shape[0]
    c = alpha ** 2 * cov + sigma ** 2 * jnp.eye(d, dtype=cov.dtype)  # [d, d], small: invert it once
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


def mixture_posterior_mean(x: jax.Array, alpha, sigma, weights: jax.Array, means: jax.Array,
                           covs: jax.Array) -> jax.Array:
    """E[x0 | x_t = x] for x0 ~ sum_k weights_k N(means_k, covs_k): x [B, d], means [K, d], covs [K, d, d]."""
    post, logp = jax.vmap(lambda m, s: _component_terms(x, alpha, sigma, m, s))(means, covs)  # [K,B,d], [K,B]
    resp = jax.nn.softmax(logp + jnp.log(weights)[:, None], axis=0)  # [K, B]
    return jnp.einsum("kb,kbd->bd", resp, post)


def mixture_model_fn(schedule: Schedule, weights: jax.Array, means: jax.Array, covs: jax.Array) -> ModelFn:
    """An exact x0-predicting, class-conditional 'network' for mixture data.

    Label k in [0, K) means component k; label K (the null label) or labels=None means the whole mixture.
    """
    num = weights.shape[0]

    def model_fn(x, t, labels):
        alpha, sigma = alpha_sigma(schedule, t[0])  # samplers call with one time per batch
        marginal = mixture_posterior_mean(x, alpha, sigma, weights, means, covs)
        if labels is None:
            return marginal
        per_class = jax.vmap(lambda m, s: gaussian_posterior_mean(x, alpha, sigma, m, s))(means, covs)  # [K,B,d]
        chosen = jnp.take_along_axis(per_class, jnp.clip(labels, 0, num - 1)[None, :, None], axis=0)[0]
        return jnp.where((labels == num)[:, None], marginal, chosen)

    return model_fn
