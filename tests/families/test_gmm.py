"""GMM: densities and EM against scikit-learn, monotone EM, recovery of a known mixture, the loop contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

from jgen.config import ConfigError
from jgen.methods import gmm
from jgen.run import train_and_evaluate
from jgen.train.writer import read_metrics
from tests.conftest import tiny_config

TYPES = gmm.COVARIANCE_TYPES
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _mixture_data(rng, n=600, d=3):
    means = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 3.0, 1.0]])[:, :d]
    comp = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    a = rng.normal(size=(3, d, d)) * 0.5
    covs = a @ np.swapaxes(a, 1, 2) + 0.3 * np.eye(d)
    x = means[comp] + np.einsum("nij,nj->ni", np.linalg.cholesky(covs)[comp], rng.normal(size=(n, d)))
    return x, means, covs


def _fitted_sklearn(x, cov_type):
    return GaussianMixture(3, covariance_type=cov_type, max_iter=3, reg_covar=1e-4, random_state=0).fit(x)


def _params_of(sk, dtype):
    cov = np.asarray(sk.covariances_)
    return {
        "weights": jnp.asarray(sk.weights_, dtype),
        "means": jnp.asarray(sk.means_, dtype),
        "covariances": jnp.asarray(cov, dtype),
        "precisions_cholesky": jnp.asarray(_compute_precision_cholesky(cov, sk.covariance_type), dtype),
    }


@pytest.mark.parametrize("cov_type", TYPES)
def test_log_likelihood_equals_sklearn_score_samples(cov_type):
    x, _, _ = _mixture_data(np.random.default_rng(0))
    sk = _fitted_sklearn(x, cov_type)
    ref = sk.score_samples(x)
    ours = gmm.log_likelihood(_params_of(sk, jnp.float32), jnp.asarray(x, jnp.float32), cov_type)
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-5, atol=0)
    # our own precision Cholesky from the covariances agrees too
    own = _params_of(sk, jnp.float32)
    own["precisions_cholesky"] = gmm.precision_cholesky(own["covariances"], cov_type)
    np.testing.assert_allclose(
        np.asarray(gmm.log_likelihood(own, jnp.asarray(x, jnp.float32), cov_type)), ref, rtol=1e-5
    )


@pytest.mark.parametrize("cov_type", TYPES)
def test_one_em_step_matches_sklearn_m_step(cov_type):
    x, _, _ = _mixture_data(np.random.default_rng(1))
    sk = _fitted_sklearn(x, cov_type)
    with jax.enable_x64(True):
        params = _params_of(sk, jnp.float64)
        before = sk.score_samples(x)
        _, log_resp = sk._e_step(x)
        sk._m_step(x, log_resp)
        stats0 = jax.tree.map(
            jnp.zeros_like, gmm.batch_statistics(jnp.asarray(x), jnp.exp(jnp.asarray(log_resp)), cov_type)
        )
        stats0["n"] = stats0["n"] + 1.0  # any old statistics: rho = 1 discards them
        new, _, log_px = gmm.em_step(params, stats0, jnp.asarray(x), jnp.asarray(1.0), cov_type, 1e-4)
        np.testing.assert_allclose(np.asarray(log_px), before, rtol=1e-10)
        np.testing.assert_allclose(np.asarray(new["weights"]), sk.weights_, rtol=1e-10)
        np.testing.assert_allclose(np.asarray(new["means"]), sk.means_, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(new["covariances"]), sk.covariances_, rtol=1e-9, atol=1e-12)
        prec = _compute_precision_cholesky(sk.covariances_, cov_type)
        np.testing.assert_allclose(np.asarray(new["precisions_cholesky"]), prec, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("cov_type", TYPES)
def test_em_never_decreases_the_training_log_likelihood(cov_type):
    x, _, _ = _mixture_data(np.random.default_rng(2), n=400)
    x = jnp.asarray(x, jnp.float32)
    params, stats = gmm.init_gmm(jax.random.PRNGKey(0), x, 5, cov_type, 1e-3, kmeans_iters=0)
    step = jax.jit(lambda p, s: gmm.em_step(p, s, x, jnp.float32(1.0), cov_type, 1e-3))
    lls = []
    for _ in range(30):
        params, stats, log_px = step(params, stats)
        lls.append(float(jnp.mean(log_px)))
    lls.append(float(jnp.mean(gmm.log_likelihood(params, x, cov_type))))
    diffs = np.diff(lls)
    assert np.all(diffs >= -1e-5 * np.abs(lls[1:])), lls
    assert lls[-1] > lls[0] + 0.05, lls


def _match_components(est_means, true_means):
    order = [int(np.argmin(np.sum((est_means - m) ** 2, axis=1))) for m in true_means]
    assert sorted(order) == list(range(len(true_means))), order
    return order


def test_recovers_a_known_mixture():
    rng = np.random.default_rng(3)
    x, means, covs = _mixture_data(rng, n=6000)
    x = jnp.asarray(x, jnp.float32)
    params, stats = gmm.init_gmm(jax.random.PRNGKey(1), x, 3, "full", 1e-6, kmeans_iters=10)
    step = jax.jit(lambda p, s: gmm.em_step(p, s, x, jnp.float32(1.0), "full", 1e-6)[:2])
    for _ in range(60):
        params, stats = step(params, stats)
    order = _match_components(np.asarray(params["means"]), means)
    np.testing.assert_allclose(np.asarray(params["weights"])[order], [0.5, 0.3, 0.2], atol=0.02)
    np.testing.assert_allclose(np.asarray(params["means"])[order], means, atol=0.1)
    np.testing.assert_allclose(np.asarray(params["covariances"])[order], covs, atol=0.15)


def test_stepwise_em_gets_close_to_full_batch_em():
    x, means, _ = _mixture_data(np.random.default_rng(4), n=4000)
    x = jnp.asarray(x, jnp.float32)
    params, stats = gmm.init_gmm(jax.random.PRNGKey(1), x[:200], 3, "diag", 1e-6, kmeans_iters=10)
    step = jax.jit(lambda p, s, xb, rho: gmm.em_step(p, s, xb, rho, "diag", 1e-6)[:2])
    for t in range(400):
        idx = jax.random.choice(jax.random.PRNGKey(t), x.shape[0], (100,), replace=False)
        params, stats = step(params, stats, x[idx], jnp.float32((t + 2.0) ** -0.6))
    order = _match_components(np.asarray(params["means"]), means)
    np.testing.assert_allclose(np.asarray(params["weights"])[order], [0.5, 0.3, 0.2], atol=0.04)
    np.testing.assert_allclose(np.asarray(params["means"])[order], means, atol=0.25)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_combined_statistics_of_two_halves_equal_those_of_the_whole(cov_type):
    rng = np.random.default_rng(5)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(200, 4)) * 3 + 1)
        resp = jax.nn.softmax(jnp.asarray(rng.normal(size=(200, 3))), axis=1)
        whole = gmm.batch_statistics(x, resp, cov_type)
        a, b = gmm.batch_statistics(x[:100], resp[:100], cov_type), gmm.batch_statistics(x[100:], resp[100:], cov_type)
        both = gmm.combine_statistics(a, b, jnp.asarray(0.5))
        for k in whole:
            np.testing.assert_allclose(np.asarray(both[k]), np.asarray(whole[k]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cov_type", TYPES)
def test_samples_have_the_mixture_moments(cov_type):
    x, _, _ = _mixture_data(np.random.default_rng(6))
    params = _params_of(_fitted_sklearn(x, cov_type), jnp.float32)
    s, comp = gmm.sample_gmm(jax.random.PRNGKey(0), params, 40000, cov_type)
    w = np.asarray(params["weights"])
    np.testing.assert_allclose(np.bincount(np.asarray(comp), minlength=3) / 40000, w, atol=0.01)
    mean = w @ np.asarray(params["means"])
    np.testing.assert_allclose(np.asarray(jnp.mean(s, axis=0)), mean, atol=0.06)


def test_kmeans_plusplus_picks_distinct_well_spread_seeds():
    x = jnp.concatenate([jnp.zeros((50, 2)), jnp.full((50, 2), 10.0), jnp.full((50, 2), -10.0)])
    x = x + 0.01 * jax.random.normal(jax.random.PRNGKey(0), x.shape)
    idx = np.asarray(gmm.kmeans_plusplus(jax.random.PRNGKey(1), x, 3))
    assert sorted(idx // 50) == [0, 1, 2]


def _gmm_config(steps, em="full_batch", batch_size=1438):
    c = tiny_config("gmm", steps=steps)
    c.method = gmm.GMM.defaults().method
    c.method.num_components = 4
    c.method.covariance_type = "diag"
    c.method.reg_covar = 1e-3
    c.method.em = em
    c.data.batch_size = batch_size
    c.train.log_every = 1
    return c


def test_gmm_trains_through_the_loop(tmp_path):
    final = train_and_evaluate(_gmm_config(6), str(tmp_path))
    rows = read_metrics(str(tmp_path), "train")
    losses = [r["loss"] for r in rows]
    assert losses[-1] < losses[0] and np.isfinite(final["bpd"]) and 0 < final["bpd"] < 8


@pytest.mark.slow
def test_gmm_resumes_bitwise(tmp_path):
    train_and_evaluate(_gmm_config(6), str(tmp_path / "a"))
    train_and_evaluate(_gmm_config(3), str(tmp_path / "b"))
    train_and_evaluate(_gmm_config(6), str(tmp_path / "b"))
    from jgen.run import load_run

    sa, sb = load_run(str(tmp_path / "a")).state, load_run(str(tmp_path / "b")).state
    for u, v in zip(jax.tree.leaves(sa), jax.tree.leaves(sb)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_stepwise_em_through_the_loop(tmp_path):
    final = train_and_evaluate(_gmm_config(8, em="stepwise", batch_size=128), str(tmp_path))
    assert np.isfinite(final["bpd"])


def test_bad_config_values_name_the_field():
    c = _gmm_config(1)
    c.method.covariance_type = "tied"
    with pytest.raises(ConfigError, match="method.covariance_type"):
        gmm.GMM.check(c)
    c = _gmm_config(1)
    c.method.stepwise_power = 0.5
    with pytest.raises(ConfigError, match="method.stepwise_power"):
        gmm.GMM.check(c)
    from jgen.data import get_source

    c = _gmm_config(1, batch_size=128)
    with pytest.raises(ConfigError, match="data.batch_size=128.*1438"):
        gmm.GMM(c, get_source(c.data)[2])
