"""Precision/recall (<=) and density/coverage (<) on point sets with hand-known answers, and a brute-force check."""

import numpy as np
import pytest

from jgen.metrics import manifold
from jgen.metrics.manifold import density_coverage, knn_sq_radii, precision_recall


def _line(xs):
    """Points on the x-axis of the plane: [N, 2]."""
    return np.stack([np.asarray(xs, np.float64), np.zeros(len(xs))], axis=1)


def test_knn_radii_exclude_the_point_itself():
    x = _line([0, 1, 2, 3])
    np.testing.assert_array_equal(knn_sq_radii(x, 1), [1, 1, 1, 1])
    np.testing.assert_array_equal(knn_sq_radii(x, 2), [4, 1, 1, 4])
    # a duplicate point is a neighbour at distance 0
    np.testing.assert_array_equal(knn_sq_radii(_line([0, 0, 5]), 1), [0, 0, 25])


def test_point_on_the_ball_boundary_counts_for_precision_but_not_density():
    real = _line([0, 1])  # k=1 radii: 1, 1
    fake = _line([2, 2.5, 100, 101])  # fake 2 lies exactly on the boundary of real 1's ball
    precision, recall = precision_recall(real, fake, k=1)
    assert precision == 0.25  # <=: the boundary point is inside
    assert recall == 0.0  # fake radii 0.5, 0.5, 1, 1: no real within them
    density, coverage = density_coverage(real, fake, k=1)
    assert density == 0.0 and coverage == 0.0  # <: the boundary point is outside


def test_hand_computed_case_k2():
    real = _line([0, 1, 2, 3])  # k=2 radii: 2, 1, 1, 2
    fake = _line([0.5, 5, 10, 11])  # k=2 radii: 9.5, 5, 5, 6
    precision, recall = precision_recall(real, fake, k=2)
    # 0.5 is inside real 0 and 1; 5 is on real 3's boundary (distance 2 = radius); 10 and 11 are far
    assert precision == 0.5
    assert recall == 1.0  # fake 0.5's ball (radius 9.5) holds every real point
    density, coverage = density_coverage(real, fake, k=2)
    assert density == (2 + 0 + 0 + 0) / (2 * 4)
    # reals 0 and 1 hold fake 0.5 strictly; real 2 (radius 1) is 1.5 from it; real 3's nearest fake is on its boundary
    assert coverage == 0.5


def test_identical_sets_are_fully_precise_and_covered():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    assert precision_recall(x, x, k=3) == (1.0, 1.0)
    density, coverage = density_coverage(x, x, k=3)
    assert coverage == 1.0 and 0.5 < density < 2.0


def _brute(real, fake, k):
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    d_ff = np.linalg.norm(fake[:, None] - fake[None], axis=-1)
    d_rf = np.linalg.norm(real[:, None] - fake[None], axis=-1)  # [N, M]
    r_real = np.sort(d_rr, axis=1)[:, k]  # index 0 is the point itself
    r_fake = np.sort(d_ff, axis=1)[:, k]
    return dict(
        precision=(d_rf <= r_real[:, None]).any(0).mean(),
        recall=(d_rf <= r_fake[None]).any(1).mean(),
        density=(d_rf < r_real[:, None]).sum(0).mean() / k,
        coverage=(d_rf.min(1) < r_real).mean(),
    )


def test_blocked_computation_matches_brute_force(monkeypatch):
    monkeypatch.setattr(manifold, "_BLOCK_ELEMENTS", 7 * 60)  # blocks of 7 rows: exercises the batching
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(60, 4)), rng.normal(size=(50, 4)) * 1.3 + 0.3
    want = _brute(real, fake, k=3)
    p, r = precision_recall(real, fake, k=3)
    d, c = density_coverage(real, fake, k=3)
    np.testing.assert_allclose([p, r, d, c], [want["precision"], want["recall"], want["density"], want["coverage"]])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="more than k"):
        precision_recall(_line([0, 1, 2]), _line([0, 1, 2]), k=3)
    with pytest.raises(ValueError, match="same D"):
        density_coverage(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="k=0"):
        precision_recall(np.zeros((5, 2)), np.zeros((5, 2)), k=0)
