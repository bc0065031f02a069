"""Samplers against exact denoisers: Gaussian and mixture data have closed-form E[x0 | x_t], so every sampler must
reproduce the data distribution (up to discretisation and Monte Carlo error) without any training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.diffusion import parameterization as P
from jgen.diffusion.analytic import mixture_model_fn
from jgen.diffusion.inversion import ddim_invert
from jgen.diffusion.samplers import sample, sampler_names
from jgen.diffusion.schedules import alpha_sigma, cosine_schedule, linear_schedule

MEAN = jnp.array([0.5, -0.3, 0.1])
_A = jnp.array([[0.6, 0.2, 0.0], [0.0, 0.4, 0.1], [0.1, 0.0, 0.3]])
COV = _A @ _A.T
# Steps at which each sampler's discretisation error (see test_deterministic_samplers_converge_with_steps_exactly)
# is below the Monte Carlo error of 4000 samples: this low-variance data needs more steps than images do.
STEPS = {"ddpm": 1000, "ddim": 200, "dpm_solver": 50, "heun": 40}


def gaussian_fn(schedule):
    return mixture_model_fn(schedule, jnp.ones(1), MEAN[None], COV[None])


def run(fn, schedule, key, shape, **kw):
    kw.setdefault("parameterization", "x0")
    return jax.jit(lambda k: sample(fn, schedule, k, shape, **kw))(key)


def rel_cov_error(x, cov):
    return float(np.linalg.norm(np.cov(np.asarray(x).T) - np.asarray(cov)) / np.linalg.norm(np.asarray(cov)))


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpm_solver", "heun"])
def test_sampler_reproduces_gaussian_mean_and_covariance(name):
    s = linear_schedule()
    out = run(gaussian_fn(s), s, jax.random.PRNGKey(0), (4000, 3), sampler=name, steps=STEPS[name])
    x = np.asarray(out.samples)
    # Monte Carlo std of the mean is sqrt(diag(COV) / 4000) <= 0.011; of the covariance ~ 3% relative
    np.testing.assert_allclose(x.mean(0), np.asarray(MEAN), atol=0.04)
    assert rel_cov_error(x, COV) < 0.08
    assert out.nfe == (2 * STEPS[name] - 1 if name == "heun" else STEPS[name])


def _affine_map_error(schedule, name, steps):
    """With Gaussian data a deterministic sampler is an affine map x_T -> A x_T + b, so its output distribution is
    exactly N(b, A A^T): the discretisation error alone, with no Monte Carlo noise."""
    basis = jnp.concatenate([jnp.zeros((1, 3)), jnp.eye(3)])  # x_T = 0, e_1, e_2, e_3
    out = run(gaussian_fn(schedule), schedule, jax.random.PRNGKey(0), (4, 3), sampler=name, steps=steps,
              noise=basis).samples
    b = out[0]
    a = (out[1:] - b).T  # column j = A e_j
    return float(jnp.linalg.norm(b - MEAN)), float(jnp.linalg.norm(a @ a.T - COV) / jnp.linalg.norm(COV))


def test_deterministic_samplers_converge_with_steps_exactly():
    s = cosine_schedule()
    errs = {n: [_affine_map_error(s, n, k)[1] for k in (10, 20)] for n in ("ddim", "dpm_solver", "heun")}
    assert 1.5 < errs["ddim"][0] / errs["ddim"][1] < 2.5, errs  # first order: halving the step halves the error
    assert errs["dpm_solver"][0] / errs["dpm_solver"][1] > 4, errs  # second order (or better)
    assert errs["heun"][0] / errs["heun"][1] > 4, errs
    assert errs["dpm_solver"][1] < 0.02 and errs["dpm_solver"][1] < errs["ddim"][1] / 4, errs
    assert _affine_map_error(s, "dpm_solver", 20)[0] < 0.01


def test_mixture_of_gaussians_weights_and_moments():
    s = cosine_schedule()
    w = jnp.array([0.3, 0.7])
    means = jnp.array([[1.0, 0.0], [-1.0, 0.5]])
    covs = jnp.stack([0.04 * jnp.eye(2), jnp.array([[0.09, 0.03], [0.03, 0.05]])])
    fn = mixture_model_fn(s, w, means, covs)
    x = np.asarray(run(fn, s, jax.random.PRNGKey(1), (4000, 2), sampler="dpm_solver", steps=25).samples)
    frac0 = np.mean(x[:, 0] > 0)
    assert frac0 == pytest.approx(0.3, abs=0.03)
    mix_mean = np.asarray(w @ means)
    np.testing.assert_allclose(x.mean(0), mix_mean, atol=0.05)
    np.testing.assert_allclose(x[x[:, 0] > 0].mean(0), np.asarray(means[0]), atol=0.03)
    np.testing.assert_allclose(np.cov(x[x[:, 0] <= 0].T), np.asarray(covs[1]), atol=0.015)


@pytest.mark.parametrize("param", ["eps", "v"])
def test_parameterisation_of_the_network_does_not_change_samples(param):
    s = linear_schedule()
    fn_x0 = gaussian_fn(s)

    def fn(x, t, labels):
        a, sg = alpha_sigma(s, t[0])
        x0 = fn_x0(x, t, labels)
        return P.from_x0_eps(x0, P.x0_to_eps(x, x0, a, sg), a, sg, param)

    ref = run(fn_x0, s, jax.random.PRNGKey(2), (64, 3), sampler="dpm_solver", steps=15).samples
    got = run(fn, s, jax.random.PRNGKey(2), (64, 3), sampler="dpm_solver", steps=15, parameterization=param).samples
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=2e-3)


def test_shapes_nfe_determinism_and_trajectory():
    s = linear_schedule()
    fn = lambda x, t, labels: 0.5 * jnp.tanh(x) * t[:, None, None, None]  # noqa: E731 (any network)
    shape = (3, 8, 8, 1)
    key = jax.random.PRNGKey(0)
    for name in sampler_names():
        f = jax.jit(lambda k: sample(fn, s, k, shape, sampler=name, steps=5, trajectory_steps=(0, 2, 5)))
        a, b = f(key), f(key)
        assert a.samples.shape == shape and np.all(np.isfinite(np.asarray(a.samples)))
        assert a.nfe == (9 if name == "heun" else 5)
        np.testing.assert_array_equal(np.asarray(a.samples), np.asarray(b.samples))  # same key, same samples
        assert a.trajectory.shape == (3, *shape)
        np.testing.assert_array_equal(np.asarray(a.trajectory[-1]), np.asarray(a.samples))
        np.testing.assert_array_equal(np.asarray(a.trajectory[0]),
                                      np.asarray(jax.random.normal(jax.random.split(key)[0], shape)))
        assert jax.eval_shape(lambda k: sample(fn, s, k, shape, sampler=name, steps=5), key).trajectory is None
    with pytest.raises(ValueError, match="sampler 'euler' is unknown"):
        sample(fn, s, key, shape, sampler="euler")
    with pytest.raises(ValueError, match=r"trajectory_steps \[6\] out of range"):
        sample(fn, s, key, shape, steps=5, trajectory_steps=(6,))


def test_ddim_eta_zero_is_deterministic_given_the_noise_and_eta_one_is_not():
    s = linear_schedule()
    fn = gaussian_fn(s)
    z = jax.random.normal(jax.random.PRNGKey(5), (16, 3))
    outs = [run(fn, s, jax.random.PRNGKey(k), (16, 3), sampler="ddim", steps=20, eta=e, noise=z).samples
            for e in (0.0, 1.0) for k in (1, 2)]
    np.testing.assert_array_equal(np.asarray(outs[0]), np.asarray(outs[1]))
    assert float(jnp.abs(outs[2] - outs[3]).max()) > 1e-2


def test_ddim_inversion_encodes_and_decodes():
    s = linear_schedule()
    fn = mixture_model_fn(s, jnp.array([0.5, 0.5]), jnp.array([[0.8, 0.0], [-0.8, 0.3]]),
                          jnp.stack([0.05 * jnp.eye(2), 0.1 * jnp.eye(2)]))
    x0 = jnp.array([[0.8, 0.0], [-0.6, 0.4]])[jnp.arange(16) % 2] + 0.2 * jax.random.normal(jax.random.PRNGKey(1), (16, 2))

    def roundtrip(steps, iters):
        x_t, nfe = jax.jit(lambda x: ddim_invert(fn, s, x, steps=steps, parameterization="x0",
                                                 fixed_point_iters=iters))(x0)
        back = run(fn, s, jax.random.PRNGKey(9), x_t.shape, sampler="ddim", steps=steps, noise=x_t).samples
        return float(jnp.abs(back - x0).max()), nfe, x_t

    err_plain, nfe, x_t = roundtrip(50, 0)
    err_exact, nfe_exact, _ = roundtrip(50, 3)
    assert nfe == 50 and nfe_exact == 200
    assert err_plain < 0.15  # the usual first-order inversion is approximate...
    assert err_exact < 1e-3 < err_plain / 10, err_exact  # ...the fixed-point inversion: decode(encode(x)) = x
    assert 0.5 < float(jnp.std(x_t)) < 1.5  # codes look like unit Gaussian noise


def test_classifier_free_guidance_convention():
    s = cosine_schedule()
    means = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
    covs = jnp.stack([0.05 * jnp.eye(2)] * 2)
    fn = mixture_model_fn(s, jnp.array([0.5, 0.5]), means, covs)
    labels = jnp.zeros((2000,), jnp.int32)
    common = dict(sampler="dpm_solver", steps=20, null_label=2)
    key = jax.random.PRNGKey(3)
    uncond = run(fn, s, key, (2000, 2), labels=None, **common).samples
    g0 = run(fn, s, key, (2000, 2), labels=labels, guidance=0.0, **common).samples
    g1 = run(fn, s, key, (2000, 2), labels=labels, guidance=1.0, **common).samples
    g3 = run(fn, s, key, (2000, 2), labels=labels, guidance=3.0, **common).samples
    np.testing.assert_array_equal(np.asarray(g0), np.asarray(uncond))  # scale 0 = unconditional
    assert float(jnp.mean(uncond[:, 0] > 0)) == pytest.approx(0.5, abs=0.05)
    assert float(jnp.mean(g1[:, 0] > 0)) > 0.99  # scale 1 = the class's own distribution
    np.testing.assert_allclose(np.asarray(g1.mean(0)), [1.0, 0.0], atol=0.03)
    assert float(g3[:, 0].mean()) > float(g1[:, 0].mean()) + 0.05  # > 1 extrapolates away from the other class


def test_guidance_batches_cond_and_uncond_in_one_call():
    s = linear_schedule()
    calls = []

    def fn(x, t, labels):
        calls.append((x.shape[0], None if labels is None else labels.shape[0]))
        return jnp.zeros_like(x)

    labels = jnp.array([0, 1, 2])
    for g, expect in ((0.0, (3, 3)), (1.0, (3, 3)), (2.5, (6, 6))):
        calls.clear()
        sample(fn, s, jax.random.PRNGKey(0), (3, 4), sampler="ddim", steps=4, labels=labels, guidance=g,
               null_label=10)
        assert calls == [expect], (g, calls)  # traced once inside the scan: one network call per step
    with pytest.raises(ValueError, match="guidance=-1.0"):
        sample(fn, s, jax.random.PRNGKey(0), (3, 4), labels=labels, guidance=-1.0, null_label=10)
