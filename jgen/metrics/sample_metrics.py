"""All sample-quality metrics of one feature network in one dict, keyed `<metric>_<feature net name>`.

A number such as FID depends on the network that made the features (Inception-V3 on ImageNet, or the small
MNIST classifier): the key says which, e.g. `fid_mnist_classifier`, so numbers from different feature
networks are never confused.
"""

from __future__ import annotations

import re

import numpy as np

from jgen.metrics.fid import feature_stats, frechet_distance
from jgen.metrics.inputs import finite_array
from jgen.metrics.isc import inception_score
from jgen.metrics.kid import kid
from jgen.metrics.manifold import density_coverage, precision_recall


def compute_sample_metrics(real_feats, fake_feats, fake_probs, feature_net_name: str, *, k: int = 3,
                           is_splits: int = 10, kid_subsets: int = 100, kid_subset_size: int = 1000,
                           seed: int = 0) -> dict[str, float]:
    """FID, KID, precision/recall (k-NN), density/coverage of fake vs real features [N, D] / [M, D], and the
    Inception Score of fake_probs [M, K] (skipped when None or K = 0).

    Keys: fid, kid, kid_std, precision, recall, density, coverage, is, is_std, each followed by
    `_<feature_net_name>`; plus `num_real` and `num_fake`. `seed` picks the KID subsets and the permutation
    of the rows before the IS chunks (so class-ordered samples do not give one-class chunks).
    """
    if not re.fullmatch(r"[a-z0-9_]+", feature_net_name or ""):
        raise ValueError(f"feature_net_name={feature_net_name!r}: must be lowercase letters, digits and '_' "
                         "(it becomes part of metric names)")
    real, fake = finite_array("real_feats", real_feats), finite_array("fake_feats", fake_feats)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be [N, D] and [M, D] with the same D; got {real.shape} and {fake.shape}")
    mu_r, sigma_r = feature_stats(real)
    mu_f, sigma_f = feature_stats(fake)
    out = {"fid": frechet_distance(mu_f, sigma_f, mu_r, sigma_r)}
    out["kid"], out["kid_std"] = kid(fake, real, kid_subsets, kid_subset_size, seed)
    out["precision"], out["recall"] = precision_recall(real, fake, k)
    out["density"], out["coverage"] = density_coverage(real, fake, k)
    if fake_probs is not None and np.shape(fake_probs)[-1] > 0:  # a feature net without a classifier has none
        probs = finite_array("fake_probs", fake_probs)
        if probs.shape[0] != fake.shape[0]:
            raise ValueError(f"fake_probs has {probs.shape[0]} rows but fake_feats has {fake.shape[0]}")
        out["is"], out["is_std"] = inception_score(probs, is_splits, shuffle_seed=seed)
    named = {f"{name}_{feature_net_name}": float(v) for name, v in out.items()}
    named["num_real"], named["num_fake"] = float(real.shape[0]), float(fake.shape[0])
    return named
