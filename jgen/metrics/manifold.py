"""k-nearest-neighbour manifold metrics: improved precision/recall and density/coverage.

Each sample set is approximated by the union of balls around its points, the radius of a point being the
distance to its k-th nearest neighbour in the same set (the point itself excluded).

- precision (Kynkäänniemi et al. 2019): fraction of fake points inside the real manifold, i.e. with
  ||f - r_i|| <= radius(r_i) for some real r_i. recall: the same with the roles swapped. (`<=`, as in the
  paper's code.)
- density (Naeem et al. 2020): (1 / (k M)) sum_j #{i : ||f_j - r_i|| < radius(r_i)}, over the M fakes;
  coverage: fraction of real points whose ball contains at least one fake, ||f_j - r_i|| < radius(r_i).
  (strict `<`, as in the authors' prdc package.)

Distances are computed in float64 on blocks of rows (||a||^2 + ||b||^2 - 2 a.b), so 10k x 10k sets need
only a few hundred MB; squared distances are compared with squared radii (no square roots).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from jgen.config import check_int
from jgen.metrics.inputs import finite_array

_BLOCK_ELEMENTS = 1 << 24  # float64 entries per block of the distance matrix (128 MiB)


def _check(real, fake, k) -> tuple[np.ndarray, np.ndarray]:
    r, f = finite_array("real features", real), finite_array("fake features", fake)
    if r.ndim != 2 or f.ndim != 2 or r.shape[1] != f.shape[1]:
        raise ValueError(f"features must be [N, D] and [M, D] with the same D; got {r.shape} and {f.shape}")
    check_int("k", k)
    if min(r.shape[0], f.shape[0]) <= k:
        raise ValueError(
            f"k={k} nearest neighbours need more than k points in each set; got {r.shape[0]} real and {f.shape[0]} fake"
        )
    return r, f


def _blocks(n_rows: int, n_cols: int) -> Iterator[slice]:
    step = max(1, _BLOCK_ELEMENTS // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _sq_dists(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [len(a), len(b)], clamped at 0."""
    d = np.einsum("ij,ij->i", a, a)[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def knn_sq_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row of x [N, D] to its k-th nearest other row -> [N]."""
    x = np.asarray(x, np.float64)
    x_sq = np.einsum("ij,ij->i", x, x)
    out = np.empty(x.shape[0], np.float64)
    for rows in _blocks(x.shape[0], x.shape[0]):
        d = _sq_dists(x[rows], x, x_sq)  # [b, N]
        d[np.arange(d.shape[0]), np.arange(rows.start, rows.stop)] = np.inf  # exclude the point itself
        out[rows] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return out


def _ball_counts(queries: np.ndarray, centres: np.ndarray, sq_radii: np.ndarray, strict: bool) -> np.ndarray:
    """For each query row: how many centres' balls contain it -> [Q] int."""
    c_sq = np.einsum("ij,ij->i", centres, centres)
    out = np.empty(queries.shape[0], np.int64)
    for rows in _blocks(queries.shape[0], centres.shape[0]):
        d = _sq_dists(queries[rows], centres, c_sq)  # [b, C]
        inside = d < sq_radii[None, :] if strict else d <= sq_radii[None, :]
        out[rows] = inside.sum(axis=1)
    return out


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """Improved (precision, recall) of fake features [M, D] against real features [N, D]."""
    r, f = _check(real, fake, k)
    precision = np.mean(_ball_counts(f, r, knn_sq_radii(r, k), strict=False) > 0)
    recall = np.mean(_ball_counts(r, f, knn_sq_radii(f, k), strict=False) > 0)
    return float(precision), float(recall)


def density_coverage(real, fake, k: int = 3) -> tuple[float, float]:
    """(density, coverage) of fake features [M, D] against real features [N, D]."""
    r, f = _check(real, fake, k)
    r_radii = knn_sq_radii(r, k)
    density = np.mean(_ball_counts(f, r, r_radii, strict=True)) / k
    # Coverage: a real ball is covered when its nearest fake lies strictly inside it.
    f_sq = np.einsum("ij,ij->i", f, f)
    covered = np.empty(r.shape[0], bool)
    for rows in _blocks(r.shape[0], f.shape[0]):
        covered[rows] = _sq_dists(r[rows], f, f_sq).min(axis=1) < r_radii[rows]
    return float(density), float(np.mean(covered))
