"""All sample-quality metrics of one feature network in one dict, keyed `<metric>_<feature net name>`.

A number such as FID depends on the network that made the features (Inception-V3 on ImageNet, or the small
MNIST classifier): the key says which, e.g. `fid_mnist_classifier`, so numbers from different feature
networks are never confused.

Features can arrive batch by batch (a 50,000-sample evaluation): a `FeatureSummary` keeps what the metrics need of
one set, with memory bounded by the batch, not the sample count, unless it is asked to keep every feature:

    fake = empty_summary(dim, keep_features=fits_all_features(n_real, n_fake, dim))
    for feats, probs in batches:                  # [b, D], [b, K]
        fake = add_batch(fake, feats, probs)      # running mean/scatter in float64 (Chan et al.'s merge), probs kept
    metrics = summary_metrics(real, fake, "inception")

FID needs only the running statistics and IS only the class probabilities ([N, K], small); KID, precision/recall
and density/coverage need every feature of both sets, so they are computed only when both summaries kept them:
the rule (`fits_all_features`) is that the two feature sets, as the float64 arrays those metrics compute with, fit
in `ALL_FEATURES_MAX_BYTES` (512 MiB): up to 32,768 images in all at Inception's 2,048 dimensions (e.g. 10,000
samples against 10,000 test images), 524,288 at the MNIST classifier's 128.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from jgen.metrics.fid import FeatureStats, finalize_stats, frechet_distance, init_stats, update_stats
from jgen.metrics.inputs import finite_array
from jgen.metrics.isc import inception_score
from jgen.metrics.kid import kid
from jgen.metrics.manifold import density_coverage, precision_recall

ALL_FEATURES_MAX_BYTES = 512 << 20
ALL_FEATURES_METRICS = ("kid", "kid_std", "precision", "recall", "density", "coverage")


def fits_all_features(num_real: int, num_fake: int, dim: int, max_bytes: int = ALL_FEATURES_MAX_BYTES) -> bool:
    """Whether KID, precision/recall and density/coverage are computed: both feature sets, [num_real, dim] and
    [num_fake, dim] as float64, fit in `max_bytes`."""
    return (num_real + num_fake) * dim * 8 <= max_bytes


class FeatureSummary(NamedTuple):
    """What the metrics need of one set of images: running feature statistics, the class-probability batches
    (for the Inception Score; empty when there are none), and every feature batch when `features` is not None."""

    stats: FeatureStats  # count, mean [D], scatter [D, D], float64
    probs: tuple[np.ndarray, ...]  # batches [b, K]
    features: tuple[np.ndarray, ...] | None  # batches [b, D] as given, or None: not kept

    @property
    def count(self) -> int:
        return self.stats.count

    def all_features(self) -> np.ndarray | None:
        """[N, D], or None when the summary does not keep them."""
        if self.features is None:
            return None
        return np.concatenate(self.features) if self.features else np.zeros((0, self.stats.mean.shape[0]))

    def all_probs(self) -> np.ndarray | None:
        """[N, K], or None when no batch came with probabilities."""
        return np.concatenate(self.probs) if self.probs else None


class ReferenceStats(NamedTuple):
    """A reference set known only by its Gaussian (e.g. a published `.npz` of mu/sigma): enough for FID alone."""

    mu: np.ndarray  # [D]
    sigma: np.ndarray  # [D, D]
    count: int | None  # images behind them, when known


def empty_summary(dim: int, keep_features: bool) -> FeatureSummary:
    return FeatureSummary(init_stats(dim), (), () if keep_features else None)


def add_batch(summary: FeatureSummary, feats, probs=None, name: str = "features") -> FeatureSummary:
    """`summary` with a batch of features [b, D] (and class probabilities [b, K], or None/K = 0: none) added; the
    argument is not modified. Non-finite values raise InputError naming `name`."""
    x = finite_array(name, feats, None)
    out = summary._replace(stats=update_stats(summary.stats, x))
    if summary.features is not None:
        out = out._replace(features=summary.features + (x,))
    if probs is not None and np.shape(probs)[-1] > 0:  # a feature net without a classifier has none
        p = finite_array(f"{name} probs", probs, None)
        if p.shape[0] != x.shape[0]:
            raise ValueError(f"{name}: {p.shape[0]} rows of probabilities for {x.shape[0]} rows of features")
        out = out._replace(probs=summary.probs + (p,))
    return out


def summary_metrics(
    real: FeatureSummary | ReferenceStats,
    fake: FeatureSummary,
    feature_net_name: str,
    *,
    k: int = 3,
    is_splits: int = 10,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """The metrics of fake against real that the two summaries allow (see the module docstring): always FID; IS when
    `fake` has probabilities; KID, precision/recall, density/coverage when both kept their features.

    Keys: fid, kid, kid_std, precision, recall, density, coverage, is, is_std, each followed by
    `_<feature_net_name>`; plus `num_real` (when known) and `num_fake`. `seed` picks the KID subsets and the
    permutation of the rows before the IS chunks (so class-ordered samples do not give one-class chunks).
    """
    if not re.fullmatch(r"[a-z0-9_]+", feature_net_name or ""):
        raise ValueError(
            f"feature_net_name={feature_net_name!r}: must be lowercase letters, digits and '_' "
            "(it becomes part of metric names)"
        )
    mu_r, sigma_r = (real.mu, real.sigma) if isinstance(real, ReferenceStats) else finalize_stats(real.stats)
    if mu_r.shape != fake.stats.mean.shape:
        raise ValueError(f"real and fake features differ in dimension: {mu_r.shape[0]} and {fake.stats.mean.shape[0]}")
    mu_f, sigma_f = finalize_stats(fake.stats)
    out = {"fid": frechet_distance(mu_f, sigma_f, mu_r, sigma_r)}
    real_all = None if isinstance(real, ReferenceStats) else real.all_features()
    fake_all = fake.all_features()
    if real_all is not None and fake_all is not None:
        out["kid"], out["kid_std"] = kid(fake_all, real_all, kid_subsets, kid_subset_size, seed)
        out["precision"], out["recall"] = precision_recall(real_all, fake_all, k)
        out["density"], out["coverage"] = density_coverage(real_all, fake_all, k)
    probs = fake.all_probs()
    if probs is not None:
        out["is"], out["is_std"] = inception_score(probs, is_splits, shuffle_seed=seed)
    named = {f"{name}_{feature_net_name}": float(v) for name, v in out.items()}
    if real.count is not None:
        named["num_real"] = float(real.count)
    named["num_fake"] = float(fake.count)
    return named


def compute_sample_metrics(
    real_feats,
    fake_feats,
    fake_probs,
    feature_net_name: str,
    *,
    k: int = 3,
    is_splits: int = 10,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Every metric of fake vs real features held in memory, [N, D] / [M, D], and the Inception Score of
    fake_probs [M, K] (skipped when None or K = 0): `summary_metrics` of one batch each, every feature kept."""
    real, fake = finite_array("real_feats", real_feats), finite_array("fake_feats", fake_feats)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be [N, D] and [M, D] with the same D; got {real.shape} and {fake.shape}")
    r = add_batch(empty_summary(real.shape[1], True), real, name="real_feats")
    f = add_batch(empty_summary(fake.shape[1], True), fake, fake_probs, name="fake_feats")
    return summary_metrics(
        r,
        f,
        feature_net_name,
        k=k,
        is_splits=is_splits,
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
        seed=seed,
    )
