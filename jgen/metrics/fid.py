"""Fréchet distance between Gaussians fitted to features, and streaming feature statistics.

FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), computed in float64 the way pytorch-fid does it
(same near-singular fallback, same tolerance on the imaginary part), so numbers are comparable with
papers that use pytorch-fid once the same feature network is used.

The statistics are accumulated batch by batch (Chan et al.'s pairwise merge of mean and scatter
matrix), so 50,000 samples are never held in memory at once:

    acc = init_stats(dim)
    for feats in batches:            # [B, D]
        acc = update_stats(acc, feats)
    mu, sigma = finalize_stats(acc)  # sigma: unbiased (ddof=1), like np.cov(feats, rowvar=False)

Reference statistics travel as `.npz` files of `mu` and `sigma` (`save_stats` / `load_stats`), the format
pytorch-fid and the TTUR code publish.
"""

from __future__ import annotations

import os
import warnings
from typing import NamedTuple

import numpy as np
import scipy.linalg

from jgen.config import InputError, check_int
from jgen.metrics.inputs import finite_array


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    If the matrix square root of sigma1 @ sigma2 is not finite (a near-singular product), `eps` is added to
    the diagonal of both covariances and the root recomputed. A complex root whose diagonal has an
    imaginary part above 1e-3 raises ValueError; otherwise its real part is used.
    """
    mu1, mu2 = np.atleast_1d(finite_array("mu1", mu1)), np.atleast_1d(finite_array("mu2", mu2))
    sigma1, sigma2 = np.atleast_2d(finite_array("sigma1", sigma1)), np.atleast_2d(finite_array("sigma2", sigma2))
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"means must be vectors of the same length; got shapes {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"covariances must be [{d}, {d}] to match the means; got {sigma1.shape} and {sigma2.shape}")

    diff = mu1 - mu2
    with warnings.catch_warnings():
        # Features with dead units give exactly singular covariances; sqrtm warns, the checks below decide.
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(d) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0.0, atol=1e-3):
            raise ValueError(
                f"sqrtm(sigma1 @ sigma2) has an imaginary component of up to "
                f"{np.max(np.abs(covmean.imag)):.3g}: the covariances are not valid PSD matrices"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


class FeatureStats(NamedTuple):
    """Running statistics of feature vectors: count, mean [D] and scatter matrix sum (x - mean)(x - mean)^T [D, D]."""

    count: int
    mean: np.ndarray  # [D] float64
    scatter: np.ndarray  # [D, D] float64


def init_stats(dim: int) -> FeatureStats:
    """Empty statistics for features of dimension `dim`."""
    check_int("dim", dim, 1, " (the feature dimension)")
    return FeatureStats(0, np.zeros((dim,), np.float64), np.zeros((dim, dim), np.float64))


def update_stats(acc: FeatureStats, features) -> FeatureStats:
    """Merge a batch of features [B, D] into `acc` (returns new statistics; `acc` is not modified)."""
    x = np.asarray(features, np.float64)
    dim = acc.mean.shape[0]
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"features must be [B, {dim}]; got shape {x.shape}")
    n_b = x.shape[0]
    if n_b == 0:
        return acc
    mean_b = x.mean(axis=0)
    centred = x - mean_b
    scatter_b = centred.T @ centred
    n = acc.count + n_b
    delta = mean_b - acc.mean
    mean = acc.mean + delta * (n_b / n)
    scatter = acc.scatter + scatter_b + np.outer(delta, delta) * (acc.count * n_b / n)
    return FeatureStats(n, mean, scatter)


def merge_stats(a: FeatureStats, b: FeatureStats) -> FeatureStats:
    """Statistics of the union of two disjoint sets (e.g. from two hosts)."""
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"cannot merge statistics of dimension {a.mean.shape[0]} and {b.mean.shape[0]}")
    n = a.count + b.count
    if n == 0:
        return a
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.count / n)
    scatter = a.scatter + b.scatter + np.outer(delta, delta) * (a.count * b.count / n)
    return FeatureStats(n, mean, scatter)


def finalize_stats(acc: FeatureStats) -> tuple[np.ndarray, np.ndarray]:
    """(mu [D], sigma [D, D]) with sigma the unbiased covariance (divides by count - 1)."""
    if acc.count < 2:
        raise ValueError(f"a covariance needs at least 2 feature vectors; got {acc.count}")
    return acc.mean.copy(), acc.scatter / (acc.count - 1)


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of features [N, D] held in memory: np.mean and np.cov(rowvar=False) in float64."""
    x = finite_array("features", features)
    if x.ndim != 2:
        raise ValueError(f"features must be [N, D]; got shape {x.shape}")
    return finalize_stats(update_stats(init_stats(x.shape[1]), x))


# -- reference statistics files -------------------------------------------------------------------------------
def save_stats(path: str, mu: np.ndarray, sigma: np.ndarray, **extra) -> None:
    """Write `mu` [D] and `sigma` [D, D] to `path` as pytorch-fid and the TTUR code do (`np.savez(path, mu=...,
    sigma=...)`; those tools read these two keys and ignore others), atomically (a temporary file, then a rename).
    `extra` arrays (e.g. num_images) are stored next to them."""
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"statistics must be mu [D] and sigma [D, D]; got {mu.shape} and {sigma.shape}")
    if not path.endswith(".npz"):
        raise ValueError(f"{path!r}: a statistics file must end in .npz (np.savez would add it)")
    tmp = f"{path[:-4]}.tmp{os.getpid()}.npz"
    np.savez(tmp, mu=mu, sigma=sigma, **extra)
    os.replace(tmp, path)


def load_stats(path: str, dim: int | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(mu [D], sigma [D, D], other arrays of the file) from a `.npz` of `mu` and `sigma` (pytorch-fid's
    `--save-stats` output, the TTUR code's published fid_stats_*.npz, or `save_stats`). With `dim`, D must equal it
    (the feature network's dimension, 2048 for Inception pool3). Raises InputError naming the file and the fix."""
    fix = (
        "write one with pytorch-fid (`python -m pytorch_fid --save-stats <images dir> out.npz`) or let "
        "`jgen eval` compute and cache them from a split (leave --ref_stats out)"
    )
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise InputError(f"reference statistics {path!r} do not exist; {fix}") from None
    except (OSError, ValueError) as e:
        raise InputError(f"reference statistics {path!r} are not a readable .npz file ({e}); {fix}") from None
    missing = [k for k in ("mu", "sigma") if k not in arrays]
    if missing:
        raise InputError(
            f"reference statistics {path!r} lack {missing}: the file holds {sorted(arrays)}, and FID "
            f"needs the keys 'mu' [D] and 'sigma' [D, D]; {fix}"
        )
    mu, sigma = arrays.pop("mu"), arrays.pop("sigma")
    d = mu.shape[0] if mu.ndim == 1 else None
    if d is None or sigma.shape != (d, d):
        raise InputError(
            f"reference statistics {path!r}: mu must be [D] and sigma [D, D]; got mu {mu.shape} and sigma {sigma.shape}"
        )
    if dim is not None and d != dim:
        raise InputError(
            f"reference statistics {path!r} are of {d}-dimensional features, but the feature network "
            f"gives {dim}: use statistics of the same network (Inception pool3: 2048), or choose the "
            "network that made them with --feature_net"
        )
    return finite_array(f"{path} mu", mu), finite_array(f"{path} sigma", sigma), arrays
