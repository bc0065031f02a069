"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2 with a cubic polynomial kernel.

k(x, y) = (x.y / D + 1)^3. For each of `num_subsets` random subsets of m = `subset_size` rows drawn without
replacement from each feature set,

    MMD^2 = [sum_{i!=j} k(x_i, x_j) + sum_{i!=j} k(y_i, y_j)] / (m (m - 1)) - 2 sum_{i,j} k(x_i, y_j) / m^2

(the estimator of the KID paper's code and torch-fidelity, whose cross term keeps its diagonal), and the mean
and (population) standard deviation over subsets are returned. Subsets are drawn with
`np.random.RandomState(seed).choice(n, m, replace=False)`, first from set 1 then from set 2, as torch-fidelity
does, so the same seed picks the same subsets.
"""

from __future__ import annotations

import numpy as np

from jgen.config import check_int
from jgen.metrics.inputs import finite_array


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """(x @ y.T / D + coef0) ** degree for x [N, D], y [M, D] -> [N, M]."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The subset estimator above for two sets of m feature vectors each, x and y [m, D]."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx)) + (k_yy.sum() - np.trace(k_yy))
    return float(within / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kid(feats1, feats2, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the subset MMD^2 between feature sets [N1, D] and [N2, D] (float64).

    `subset_size` is lowered to min(N1, N2) when either set is smaller (then every subset of the smaller
    set is the whole set); at least 2 samples per set are needed.
    """
    x, y = finite_array("feats1", feats1), finite_array("feats2", feats2)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"features must be [N1, D] and [N2, D] with the same D; got {x.shape} and {y.shape}")
    check_int("num_subsets", num_subsets)
    check_int("subset_size", subset_size, 2)
    n1, n2 = x.shape[0], y.shape[0]
    m = min(subset_size, n1, n2)
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples in each set; got {n1} and {n2}")
    rng = np.random.RandomState(seed)
    mmds = np.empty(num_subsets, np.float64)
    for i in range(num_subsets):
        xs = x[rng.choice(n1, m, replace=False)]
        ys = y[rng.choice(n2, m, replace=False)]
        mmds[i] = mmd2_unbiased(xs, ys)
    return float(np.mean(mmds)), float(np.std(mmds))
