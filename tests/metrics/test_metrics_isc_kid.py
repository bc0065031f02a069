"""Inception Score and KID against hand-computed values and slow direct loops."""

import math

import numpy as np
import pytest

from jgen.metrics.isc import inception_score
from jgen.metrics.kid import kid, mmd2_unbiased


def test_is_is_one_for_identical_predictions():
    probs = np.tile([0.1, 0.2, 0.3, 0.4], (100, 1))
    mean, std = inception_score(probs, splits=10)
    np.testing.assert_allclose(mean, 1.0, rtol=1e-12)
    assert std < 1e-12


def test_is_is_k_for_confident_evenly_spread_predictions():
    k = 10
    probs = np.eye(k)[np.arange(1000) % k]  # every chunk of 100 holds 10 of each class
    mean, std = inception_score(probs, splits=10)
    np.testing.assert_allclose(mean, k, rtol=1e-12)
    assert std < 1e-12


def test_is_hand_computed_two_class_case():
    probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    # marginal (0.75, 0.25); KL_1 = log(1/0.75); KL_2 = 0.5 log(0.5/0.75) + 0.5 log(0.5/0.25)
    kl = [math.log(1 / 0.75), 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2.0)]
    mean, std = inception_score(probs, splits=1)
    np.testing.assert_allclose(mean, math.exp(np.mean(kl)), rtol=1e-12)
    assert std == 0.0


def test_is_chunks_follow_reference_boundaries():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(23, 5)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for i in range(4):
        c = probs[i * 23 // 4 : (i + 1) * 23 // 4]
        q = c.mean(0)
        scores.append(math.exp(np.mean(np.sum(c * (np.log(c) - np.log(q)), axis=1))))
    mean, std = inception_score(probs, splits=4)
    np.testing.assert_allclose([mean, std], [np.mean(scores), np.std(scores)], rtol=1e-12)


def test_is_rejects_logits_and_bad_splits():
    with pytest.raises(ValueError, match="logits"):
        inception_score(np.array([[2.0, -1.0], [0.3, 0.1]]), splits=1)
    with pytest.raises(ValueError, match="splits"):
        inception_score(np.full((5, 2), 0.5), splits=6)


def _slow_mmd2(x, y):
    m = len(x)

    def k(a, b):
        return (np.dot(a, b) / len(a) + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_mmd2_equals_slow_loop():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(7, 4)), rng.normal(size=(7, 4)) + 0.5
    np.testing.assert_allclose(mmd2_unbiased(x, y), _slow_mmd2(x, y), rtol=1e-12)


def test_kid_subsets_match_seeded_reference_draws():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(15, 3)) * 1.5
    draws = np.random.RandomState(7)
    want = []
    for _ in range(5):
        xs = x[draws.choice(12, 6, replace=False)]
        ys = y[draws.choice(15, 6, replace=False)]
        want.append(_slow_mmd2(xs, ys))
    mean, std = kid(x, y, num_subsets=5, subset_size=6, seed=7)
    np.testing.assert_allclose([mean, std], [np.mean(want), np.std(want)], rtol=1e-10)


def test_kid_near_zero_for_same_distribution_and_positive_for_shift():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    mean, std = kid(a, b, num_subsets=20, subset_size=300)
    shifted, _ = kid(a, b + 0.2, num_subsets=20, subset_size=300)  # about 0.13
    assert abs(mean) < 0.01 and abs(mean) < 0.1 * shifted


def test_kid_subset_size_is_clipped_and_too_few_samples_raise():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(5, 2)), rng.normal(size=(8, 2))
    mean, std = kid(x, y, num_subsets=3, subset_size=1000, seed=0)
    draws = np.random.RandomState(0)
    want = [_slow_mmd2(x[draws.choice(5, 5, replace=False)], y[draws.choice(8, 5, replace=False)]) for _ in range(3)]
    np.testing.assert_allclose(mean, np.mean(want), rtol=1e-10)
    with pytest.raises(ValueError, match="at least 2 samples"):
        kid(x[:1], y)
    with pytest.raises(ValueError, match="same D"):
        kid(x, np.zeros((5, 3)))


def test_is_shuffle_mixes_class_sorted_rows():
    probs = np.eye(10)[np.repeat(np.arange(10), 100)]  # sorted by class: each chunk holds one class
    assert inception_score(probs, splits=10)[0] == pytest.approx(1.0)
    perm = np.random.RandomState(3).permutation(1000)
    assert inception_score(probs, 10, shuffle_seed=3) == inception_score(probs[perm], 10)
    assert inception_score(probs, 10, shuffle_seed=3)[0] > 8.0
