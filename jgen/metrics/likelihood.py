"""Likelihood summaries: bits per dimension, perplexity and the importance-weighted bound.

Conventions (all negative log-likelihoods are in nats):

- `bits_per_dim(nll, D)` = nll / (D log 2). Use it when `nll` is already the negative log-probability of the
  *discrete* data (e.g. a categorical or discretised-logistic model over the 256 pixel levels, or a
  Bernoulli model of binary pixels), or a continuous density over pixel values on the [0, 256) scale
  (x = k + u, u ~ U[0, 1) dequantisation), which upper-bounds the discrete NLL.
- `dequantized_bits_per_dim(nll, D, data_width=1.0, num_levels=256)` = (nll + D log(num_levels / data_width))
  / (D log 2). Use it when `nll` is minus a continuous log-density over data rescaled to an interval of width
  `data_width`: [0, 1] (width 1, offset D log 256) or [-1, 1] (width 2, offset D log 128). Each of the
  `num_levels` pixel levels is a bin of width data_width / num_levels, so -log P(bin) ~ -log p(x) -
  D log(data_width / num_levels); with uniform dequantisation the result is an upper bound on the discrete
  model's bits/dim. Example: data in [0, 1], bpd = (nll + D log 256) / (D log 2) = nll / (D log 2) + 8.
- `uniform_dequantize(images, key)`: 8-bit images in [0, 1] (k / 255) -> y = (k + u) / 256, u ~ U[0, 1): the
  continuous variable those densities are over (data_width 1; a model of [-1, 1] data takes 2 y - 1, width 2).
- `perplexity(token_nll)` = exp(mean NLL per token), the NLL in nats of each token.
- `iwae_bound(log_weights [K, B])` = logsumexp_k log w_k - log K, a lower bound on log p(x) that tightens
  as K grows (Burda et al. 2016); log w_k = log p(x, z_k) - log q(z_k | x) with z_k ~ q(z | x).

`iwae_bound` is written with jax.numpy and can be used inside jit; the others accept arrays or floats.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jgen.config import check_int


def _check_dims(num_dims: int) -> None:
    check_int("num_dims", num_dims, 1, " (e.g. H * W * C of an image)")


def bits_per_dim(nll_nats_per_example, num_dims: int):
    """Discrete NLL in nats per example (or a density on the [0, 256) pixel scale) -> bits per dimension."""
    _check_dims(num_dims)
    return nll_nats_per_example / (num_dims * math.log(2.0))


def dequantized_bits_per_dim(nll_nats_per_example, num_dims: int, data_width: float = 1.0, num_levels: int = 256):
    """Minus a continuous log-density (nats per example) of data rescaled to an interval of width `data_width`
    ([0, 1]: 1.0, [-1, 1]: 2.0) with `num_levels` levels per dimension -> bits per dimension."""
    _check_dims(num_dims)
    if not data_width > 0:
        raise ValueError(f"data_width={data_width!r}: must be > 0 (1.0 for data in [0, 1], 2.0 for [-1, 1])")
    check_int("num_levels", num_levels, 2, " (256 for 8-bit images)")
    offset = num_dims * math.log(num_levels / data_width)
    return (nll_nats_per_example + offset) / (num_dims * math.log(2.0))


def uniform_dequantize(images: jax.Array, key: jax.Array) -> jax.Array:
    """Images [B, ...] in [0, 1] holding 8-bit values k / 255 -> (k + u) / 256 in [0, 1), u ~ U[0, 1) per entry."""
    return (jnp.round(images * 255.0) + jax.random.uniform(key, images.shape, images.dtype)) / 256.0


def perplexity(token_nll, mask=None) -> float:
    """exp(mean NLL per token) over all entries of token_nll (nats), or over those where `mask` is true."""
    nll = np.asarray(token_nll, np.float64)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != nll.shape:
            raise ValueError(f"mask shape {mask.shape} must equal token_nll shape {nll.shape}")
        nll = nll[mask]
    if nll.size == 0:
        raise ValueError("perplexity of zero tokens is undefined")
    return float(np.exp(np.mean(nll)))


def iwae_bound(log_weights: jax.Array) -> jax.Array:
    """log (1/K) sum_k w_k for log_weights [K, B] -> [B]."""
    log_weights = jnp.asarray(log_weights)
    if log_weights.ndim != 2:
        raise ValueError(f"log_weights must be [K, B]; got shape {log_weights.shape}")
    return jax.nn.logsumexp(log_weights, axis=0) - jnp.log(log_weights.shape[0])
