"""Inception Score (Salimans et al. 2016) from class probabilities of any classifier.

IS = exp( E_x KL(p(y|x) || p(y)) ), with p(y) the mean prediction over the chunk. As in the reference
code (openai/improved-gan, torch-fidelity), the N predictions are cut into `splits` consecutive chunks
(chunk i holds rows i*N//splits .. (i+1)*N//splits), a score is computed per chunk, and the mean and the
(population) standard deviation of the chunk scores are returned. The score lies in [1, K]: 1 when every
prediction is the same, K when predictions are confident and spread evenly over the K classes.
Rows ordered by class (a label-sorted test split, class-conditional samples) would make every chunk
nearly one class: pass `shuffle_seed` to permute the rows first with np.random.RandomState(shuffle_seed),
as torch-fidelity does (its default seed is 2020).
"""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from jgen.config import is_integer


def inception_score(probs, splits: int = 10, shuffle_seed: int | None = None) -> tuple[float, float]:
    """(mean, std) of the Inception Score over `splits` chunks of probs [N, K] (rows sum to 1), in row order
    or after a seeded permutation of the rows."""
    p = np.asarray(probs, np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be [N, K]; got shape {p.shape}")
    n = p.shape[0]
    if not (is_integer(splits, 1) and splits <= n):
        raise ValueError(f"splits={splits!r}: must be an integer in [1, N={n}]")
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("probs must be non-negative with rows summing to 1 (pass softmax outputs, not logits)")
    if shuffle_seed is not None:
        p = p[np.random.RandomState(shuffle_seed).permutation(n)]
    scores = []
    for i in range(splits):
        chunk = p[i * n // splits : (i + 1) * n // splits]  # [n_i, K]
        marginal = chunk.mean(axis=0, keepdims=True)  # [1, K]
        # KL(p || q) with 0 log 0 = 0; q > 0 wherever p > 0, since q is the mean of rows including p.
        kl = np.sum(xlogy(chunk, chunk) - xlogy(chunk, marginal), axis=1)  # [n_i]
        scores.append(np.exp(np.mean(kl)))
    return float(np.mean(scores)), float(np.std(scores))
