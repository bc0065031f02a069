"""Fréchet distance against closed forms and an independent eigendecomposition; streaming statistics."""

import numpy as np
import pytest
import scipy.linalg

from jgen.metrics import fid as fid_lib
from jgen.metrics.fid import feature_stats, finalize_stats, frechet_distance, init_stats, merge_stats, update_stats


def _random_cov(rng, d, n=None):
    a = rng.normal(size=(n or 2 * d, d))
    return a.T @ a / a.shape[0] + 0.1 * np.eye(d)


def _fid_by_eigh(mu1, s1, mu2, s2):
    """Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2), the latter symmetric PSD: eigenvalues via eigh."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


def test_identical_gaussians_give_zero():
    rng = np.random.default_rng(0)
    mu, s = rng.normal(size=16), _random_cov(rng, 16)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-8


def test_equal_covariances_give_squared_mean_shift():
    rng = np.random.default_rng(1)
    s = _random_cov(rng, 8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    np.testing.assert_allclose(frechet_distance(mu1, s, mu2, s), np.sum((mu1 - mu2) ** 2), rtol=1e-9, atol=1e-9)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0.1, 3.0, size=6), rng.uniform(0.1, 3.0, size=6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    np.testing.assert_allclose(frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), want, rtol=1e-10)


def test_matches_direct_sqrtm_and_eigh_references():
    rng = np.random.default_rng(3)
    d = 32
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    got = frechet_distance(mu1, s1, mu2, s2)
    np.testing.assert_allclose(got, direct, rtol=1e-10)
    np.testing.assert_allclose(got, _fid_by_eigh(mu1, s1, mu2, s2), rtol=1e-8)


def test_scalar_inputs_are_one_dimensional_gaussians():
    # N(0, 4) vs N(1, 1): (0 - 1)^2 + (2 - 1)^2 = 2
    np.testing.assert_allclose(frechet_distance(0.0, 4.0, 1.0, 1.0), 2.0, rtol=1e-12)


def test_non_finite_root_retries_with_eps_offset(monkeypatch):
    calls = []
    real_sqrtm = scipy.linalg.sqrtm

    def flaky(a):
        calls.append(a.copy())
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(fid_lib.scipy.linalg, "sqrtm", flaky)
    s1, s2 = np.diag([1.0, 0.0]), np.diag([4.0, 0.0])
    got = frechet_distance(np.zeros(2), s1, np.zeros(2), s2, eps=1e-2)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + 1e-2 * np.eye(2)) @ (s2 + 1e-2 * np.eye(2)))
    want = 5.0 - 2 * (np.sqrt(1.01 * 4.01) + 0.01)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_large_imaginary_component_raises():
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same length"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))


def test_streaming_stats_equal_numpy_mean_and_cov():
    rng = np.random.default_rng(4)
    x = rng.normal(loc=100.0, scale=2.0, size=(1003, 7)).astype(np.float32)  # large mean: tests stability
    acc = init_stats(7)
    for start, size in [(0, 1), (1, 500), (501, 2), (503, 500)]:
        acc = update_stats(acc, x[start : start + size])
    mu, sigma = finalize_stats(acc)
    x64 = x.astype(np.float64)
    assert acc.count == 1003
    np.testing.assert_allclose(mu, x64.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x64, rowvar=False), rtol=1e-9, atol=1e-12)
    mu2, sigma2 = feature_stats(x)
    np.testing.assert_allclose(sigma2, sigma, rtol=1e-12)


def test_merge_equals_sequential_update_and_does_not_mutate():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(40, 3)), rng.normal(size=(25, 3)) + 1.0
    sa = update_stats(init_stats(3), a)
    before = sa.scatter.copy()
    merged = merge_stats(sa, update_stats(init_stats(3), b))
    seq = update_stats(sa, b)
    np.testing.assert_allclose(merged.mean, seq.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.scatter, seq.scatter, rtol=1e-12)
    np.testing.assert_array_equal(sa.scatter, before)


def test_stats_errors():
    with pytest.raises(ValueError, match="at least 2"):
        finalize_stats(update_stats(init_stats(2), np.ones((1, 2))))
    with pytest.raises(ValueError, match=r"\[B, 2\]"):
        update_stats(init_stats(2), np.ones((4, 3)))
    with pytest.raises(ValueError, match="dim"):
        init_stats(0)


def test_dead_feature_unit_gives_singular_but_correct_result():
    # a feature that is always 0 (a dead ReLU unit) makes both covariances singular
    s1, s2 = np.diag([2.0, 0.5, 0.0]), np.diag([1.0, 3.0, 0.0])
    want = (np.sqrt(2.0) - 1.0) ** 2 + (np.sqrt(0.5) - np.sqrt(3.0)) ** 2
    np.testing.assert_allclose(frechet_distance(np.zeros(3), s1, np.zeros(3), s2), want, rtol=1e-9)
