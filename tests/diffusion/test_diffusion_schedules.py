"""Closed-form checks of the schedules, the forward process and the parameterisations."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.diffusion import parameterization as P
from jgen.diffusion.schedules import (
    alpha_sigma,
    alpha_sigma_at_level,
    cosine_schedule,
    linear_schedule,
    log_snr,
    make_schedule,
    q_sample,
    sample_times,
    start_std,
    step_times,
    time_from_log_snr,
)
from jgen.diffusion.trajectory import forward_trajectory, trajectory_steps


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_alpha_bar_monotone_and_log_snr_consistent(name):
    s = make_schedule(name, 1000)
    ab = np.asarray(s.alpha_bars, np.float64)
    assert ab.shape == (1000,) and np.all(np.diff(ab) < 0) and 0 < ab[-1] < ab[0] < 1
    assert np.all(np.diff(np.asarray(s.log_snrs)) < 0)
    np.testing.assert_allclose(np.asarray(s.log_snrs), np.log(ab / (1 - ab)), rtol=1e-4, atol=1e-4)
    # continuous view agrees with the discrete steps, and alpha^2 + sigma^2 = 1
    a, sg = alpha_sigma(s, step_times(s))
    np.testing.assert_allclose(np.asarray(a) ** 2, ab, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(a) ** 2 + np.asarray(sg) ** 2, 1.0, atol=1e-6)


def test_linear_schedule_matches_ddpm_closed_form():
    s = linear_schedule()
    betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(np.asarray(s.betas), betas, rtol=1e-6)
    # SNR endpoints: alpha_bar_1 = 1 - 1e-4; alpha_bar_T = prod(1 - beta) ~ 4.0e-5
    assert float(s.log_snrs[0]) == pytest.approx(math.log((1 - 1e-4) / 1e-4), rel=1e-4)
    ab_t = np.prod(1 - betas)
    assert float(s.alpha_bars[-1]) == pytest.approx(ab_t, rel=1e-3)
    assert 3.5e-5 < ab_t < 4.5e-5


def test_cosine_schedule_closed_form_and_clipping():
    s = cosine_schedule(1000, s=0.008, max_beta=0.999)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for i in (0, 10, 500, 900):
        assert float(s.alpha_bars[i]) == pytest.approx(f(i + 1) / f(0), rel=1e-4)
    assert float(jnp.max(s.betas)) == pytest.approx(0.999, rel=1e-6)  # the last beta is clipped
    assert float(s.betas[0]) > 0 and float(s.log_snrs[-1]) < -15 and float(s.log_snrs[0]) > 8


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="schedule 'quadratic' is unknown"):
        make_schedule("quadratic")
    with pytest.raises(ValueError, match="parameterization 'score'"):
        P.to_x0_eps(jnp.zeros(2), jnp.zeros(2), 1.0, 1.0, "score")


def test_log_snr_inverse():
    s = cosine_schedule()
    t = jnp.linspace(0.001, 1.0, 37)
    np.testing.assert_allclose(np.asarray(time_from_log_snr(s, log_snr(s, t))), np.asarray(t), atol=1e-4)


@pytest.mark.parametrize("name", ["linear", "cosine", "rectified_flow"])
def test_x0_recovered_exactly_from_xt_and_true_noise(name):
    s = make_schedule(name)
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    x0 = jax.random.uniform(k1, (16, 8, 8, 1), minval=-1, maxval=1)
    eps = jax.random.normal(k2, x0.shape)
    t = jax.random.uniform(k3, (16,), minval=0.001, maxval=0.9)
    xt = q_sample(s, x0, t, eps)
    a, sg = (v[:, None, None, None] for v in alpha_sigma(s, t))
    usable = [p for p in P.PARAMETERIZATIONS if not P.path_mismatch(p, s.path)]
    assert usable == (["x0", "flow"] if name == "rectified_flow" else ["eps", "x0", "v", "edm"])
    for name_p in usable:
        target = P.from_x0_eps(x0, eps, a, sg, name_p)
        x0_hat, eps_hat = P.to_x0_eps(target, xt, a, sg, name_p)
        np.testing.assert_allclose(np.asarray(x0_hat), np.asarray(x0), atol=2e-4)
        np.testing.assert_allclose(np.asarray(eps_hat), np.asarray(eps), atol=2e-3)
    np.testing.assert_allclose(np.asarray(P.score_to_eps(P.eps_to_score(eps, sg), sg)), np.asarray(eps), atol=1e-6)


def test_q_sample_moments():
    s = linear_schedule()
    x0 = jnp.full((20000, 1), 0.7)
    t = jnp.full((20000,), 0.3)
    xt = q_sample(s, x0, t, jax.random.normal(jax.random.PRNGKey(1), x0.shape))
    a, sg = alpha_sigma(s, jnp.asarray(0.3))
    assert float(xt.mean()) == pytest.approx(0.7 * float(a), abs=0.02)
    assert float(xt.std()) == pytest.approx(float(sg), rel=0.03)


def test_min_snr_weights_equalise_x0_loss():
    lam = jnp.linspace(-8, 8, 9)
    snr = jnp.exp(lam)
    t = 1.0 / (1.0 + jnp.sqrt(snr))  # the rectified-flow time of this SNR: ((1 - t) / t)^2 = SNR
    for name in P.PARAMETERIZATIONS:
        w = P.loss_weight(lam, name, "min_snr", 5.0)
        # the weighted error of each parameterisation equals min(SNR, gamma) * x0 error
        # (||eps err||^2 = SNR ||x0 err||^2, ||v err||^2 = (1 + SNR) ||x0 err||^2, ||u err||^2 = ||x0 err||^2 / t^2
        # on the rectified-flow path, ||F err||^2 = ||x0 err||^2 / c_out^2 = (1 + sd^2 SNR) / sd^2 ||x0 err||^2 for EDM)
        scale = {
            "eps": snr,
            "v": 1 + snr,
            "x0": jnp.ones_like(snr),
            "flow": 1.0 / t**2,
            "edm": (1 + 0.25 * snr) / 0.25,
        }[name]
        np.testing.assert_allclose(np.asarray(w * scale), np.asarray(jnp.minimum(snr, 5.0)), rtol=1e-5)
    assert np.all(np.asarray(P.loss_weight(lam, "eps", "none")) == 1.0)


def test_forward_trajectory_ends():
    s = linear_schedule()
    x0 = jnp.ones((2, 4, 4, 1)) * 0.5
    traj = forward_trajectory(s, x0, jax.random.PRNGKey(0), jnp.linspace(0.0, 1.0, 5))
    assert traj.shape == (5, 2, 4, 4, 1)
    np.testing.assert_array_equal(np.asarray(traj[0]), np.asarray(x0))
    assert float(jnp.abs(traj[-1]).mean()) > 0.5  # mostly noise at t = 1
    assert trajectory_steps(20, 10)[0] == 0 and trajectory_steps(20, 10)[-1] == 20 and len(trajectory_steps(3, 10)) == 4


def test_rectified_flow_path_closed_form():
    """alpha = 1 - t, sigma = t exactly on [1/T, 1]; log SNR = 2 log((1 - t) / t) and its inverse; EDM's noise level
    s = t / (1 - t) maps back to (1 - t, t); pure noise at t = 1, where sampling starts from N(0, I) unscaled."""
    s = make_schedule("rectified_flow", 1000)
    assert s.path == "rectified_flow" and s.num_steps == 1000 and s.betas is None
    t = jnp.array([0.0, 1e-3, 0.01, 0.25, 0.5, 0.9, 0.999, 1.0])
    a, sg = alpha_sigma(s, t)
    t_c = np.maximum(np.asarray(t), 1e-3)  # clamped to t_min = 1/T
    np.testing.assert_allclose(np.asarray(a), 1 - t_c, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(sg), t_c, rtol=1e-6)
    lam = log_snr(s, t)
    np.testing.assert_allclose(np.asarray(lam[:-1]), 2 * np.log((1 - t_c[:-1]) / t_c[:-1]), rtol=1e-5, atol=1e-5)
    assert float(lam[-1]) == -np.inf
    np.testing.assert_allclose(np.asarray(time_from_log_snr(s, lam)), t_c, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(s.log_snrs), np.asarray(log_snr(s, step_times(s))), rtol=1e-4, atol=1e-5)
    lev = jnp.asarray(t_c[1:-1] / (1 - t_c[1:-1]))
    a_l, s_l = alpha_sigma_at_level(s, lev)
    np.testing.assert_allclose(np.asarray(a_l), 1 - t_c[1:-1], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(s_l), t_c[1:-1], rtol=1e-5)
    assert float(start_std(s, jnp.asarray(1.0))) == 1.0
    assert float(start_std(s, jnp.asarray(80 / 81))) == pytest.approx(np.hypot(1 / 81, 80 / 81), rel=1e-6)
    assert start_std(make_schedule("linear"), jnp.asarray(1.0)) == 1.0  # variance-preserving: exactly unscaled


@pytest.mark.parametrize("name", ["linear", "rectified_flow"])
def test_training_times(name):
    """uniform: the discrete steps of a DDPM schedule, a continuous U[1/T, 1] on the rectified-flow path;
    logit_normal: sigmoid of N(0, 1), i.e. median 1/2 and 68% of the draws in [0.27, 0.73]."""
    s = make_schedule(name, 1000)
    key = jax.random.PRNGKey(0)
    t = np.asarray(sample_times(s, key, 20000))
    assert t.min() >= 1e-3 and t.max() <= 1.0 and abs(t.mean() - 0.5) < 0.01
    steps = t * 1000
    on_grid = np.abs(steps - np.round(steps)) < 1e-3
    assert on_grid.all() if name == "linear" else on_grid.mean() < 0.01
    ln = np.asarray(sample_times(s, key, 20000, "logit_normal", 0.0, 1.0))
    assert abs(np.median(ln) - 0.5) < 0.01
    assert abs(np.mean((ln > 0.2689) & (ln < 0.7311)) - 0.6827) < 0.01
    with pytest.raises(ValueError, match="time distribution 'beta' is unknown"):
        sample_times(s, key, 4, "beta")
