"""The toy GAN experiments: densities, the optimal discriminator, mode coverage."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from jgen.config import ConfigError
from jgen.gan import toys as toy


def test_mixture_logpdf_matches_scipy():
    means = jnp.array([[-2.0, 0.0], [1.0, 1.0]])
    x = np.random.default_rng(0).normal(size=(7, 2))
    want = np.log(
        0.5 * stats.multivariate_normal(means[0], 0.25).pdf(x) + 0.5 * stats.multivariate_normal(means[1], 0.25).pdf(x)
    )
    np.testing.assert_allclose(toy.gaussian_mixture_logpdf(jnp.asarray(x), means, 0.5), want, rtol=1e-5)


def test_learned_discriminator_matches_the_optimal_one():
    cfg = ml_collections.ConfigDict(
        dict(
            data_means=(-2.0, 2.0),
            data_std=0.5,
            g_mean=0.0,
            g_std=1.5,
            hidden=(32, 32),
            learning_rate=3e-3,
            batch_size=512,
            steps=1500,
            grid_min=-4.0,
            grid_max=4.0,
            mass_threshold=0.02,
        )
    )
    out = toy.dstar_experiment(cfg, jax.random.PRNGKey(0))
    assert out["mean_abs_error_vs_dstar"] < 0.03, out
    assert out["max_abs_error_vs_dstar"] < 0.12, out
    # p_g = p_data: D = 1/2 and the minimax discriminator loss is 2 log 2.
    assert out["equal_max_abs_dev_from_half"] < 0.06, out
    assert abs(out["equal_final_loss"] - 2 * math.log(2)) < 0.01, out
    # The loss D reaches is that of D* (2 log 2 - 2 JSD), and below 2 log 2 since p_g != p_data.
    assert abs(out["final_loss"] - out["optimal_loss"]) < 0.02, out
    assert out["optimal_loss"] < 2 * math.log(2) - 0.2


def test_mode_coverage_counts_modes_and_quality():
    means = np.asarray(toy.ring_means(8, 2.0))
    rng = np.random.default_rng(0)
    all_modes = means[rng.integers(0, 8, 4000)] + 0.02 * rng.normal(size=(4000, 2))
    cov = toy.mode_coverage(all_modes, means, 0.02)
    assert cov["modes_covered"] == 8 and cov["high_quality"] > 0.98
    collapsed = means[[1] * 1000] + 0.02 * rng.normal(size=(1000, 2))
    off = rng.normal(size=(1000, 2)) * 0.1  # near the centre: far from every mode
    cov = toy.mode_coverage(np.concatenate([collapsed, off]), means, 0.02)
    assert cov["modes_covered"] == 1 and 0.45 < cov["high_quality"] < 0.51
    assert cov["counts"][1] > 950 and sum(cov["counts"]) == cov["counts"][1]


def test_ring_experiment_runs_and_reports_each_snapshot(tmp_path):
    from experiments import gan_toys
    from experiments.configs import gan_ring

    config = gan_ring.get_config()
    config.toy.steps, config.toy.snapshot_every, config.toy.num_eval = 200, 100, 500
    config.toy.loss, config.toy.n_critic = "wgan_gp", 2
    final = gan_toys.run(config, str(tmp_path))
    rows = __import__("json").loads((tmp_path / "ring.json").read_text())["rows"]
    assert [r["step"] for r in rows] == [100, 200]
    assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
    assert 0 <= final["modes_covered"] <= 8 and (tmp_path / "ring.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("loss", "least_squares", "choose one of"),
        ("steps", 150, "multiple of toy.snapshot_every"),
        ("batch_size", 0, "integer >= 1"),
        ("std", -0.1, "must be > 0"),
    ],
)
def test_toy_configs_are_checked_before_any_compute(tmp_path, field, value, needle):
    from experiments import gan_toys
    from experiments.configs import gan_ring

    config = gan_ring.get_config()
    config.toy[field] = value
    with pytest.raises(ConfigError, match=needle):
        gan_toys.run(config, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
