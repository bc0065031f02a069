"""compute_sample_metrics: names carry the feature network, values equal the individual functions."""

import numpy as np
import pytest

from jgen.metrics import (
    compute_sample_metrics,
    density_coverage,
    feature_stats,
    frechet_distance,
    inception_score,
    kid,
    precision_recall,
)


def test_keys_carry_the_feature_net_name_and_values_match():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(120, 6)), rng.normal(size=(100, 6)) + 0.3
    probs = np.eye(10)[np.arange(100) % 10]
    out = compute_sample_metrics(real, fake, probs, "mnist_classifier", kid_subset_size=50, kid_subsets=10)
    names = ["fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "is", "is_std"]
    assert set(out) == {f"{n}_mnist_classifier" for n in names} | {"num_real", "num_fake"}
    assert all(isinstance(v, float) for v in out.values())
    np.testing.assert_allclose(
        out["fid_mnist_classifier"], frechet_distance(*feature_stats(fake), *feature_stats(real))
    )
    assert out["kid_mnist_classifier"] == kid(fake, real, 10, 50, 0)[0]
    assert (out["precision_mnist_classifier"], out["recall_mnist_classifier"]) == precision_recall(real, fake, 3)
    assert (out["density_mnist_classifier"], out["coverage_mnist_classifier"]) == density_coverage(real, fake, 3)
    assert (out["is_mnist_classifier"], out["is_std_mnist_classifier"]) == inception_score(probs, 10, shuffle_seed=0)
    assert out["num_real"] == 120 and out["num_fake"] == 100


def test_without_probs_and_bad_names():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 3))
    out = compute_sample_metrics(x, x, None, "inception_v3", kid_subset_size=10, kid_subsets=2)
    assert "is_inception_v3" not in out and out["fid_inception_v3"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="feature_net_name"):
        compute_sample_metrics(x, x, None, "Inception V3")
