"""Samplers against exact denoisers: Gaussian and mixture data have closed-form E[x0 | x_t], so every sampler must
reproduce the data distribution (up to discretisation and Monte Carlo error) without any training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.diffusion import parameterization as P
from jgen.diffusion.analytic import mixture_model_fn, mode_stats
from jgen.diffusion.inversion import ddim_invert
from jgen.diffusion.sampler_core import SAMPLERS, sampler_names
from jgen.diffusion.schedules import alpha_sigma, cosine_schedule, linear_schedule
from tests.diffusion.drawing import draw

MEAN = jnp.array([0.5, -0.3, 0.1])
_A = jnp.array([[0.6, 0.2, 0.0], [0.0, 0.4, 0.1], [0.1, 0.0, 0.3]])
COV = _A @ _A.T
# Steps at which each sampler's discretisation error (see test_diffusion_mixture.py's convergence tests) is
# below the Monte Carlo error of 4000 samples: this low-variance data needs more steps than images do.
STEPS = {
    "ddpm": 1000,
    "ddim": 200,
    "dpm_solver": 50,
    "dpm_solver_3m": 50,
    "dpm_solver_sde": 200,
    "unipc": 50,
    "euler": 200,
    "heun": 40,
    "dpm_solver_2s": 30,
    "dpm_solver_3s": 15,
}


def gaussian_fn(schedule):
    return mixture_model_fn(schedule, jnp.ones(1), MEAN[None], COV[None])


def run(fn, schedule, key, shape, **kw):
    kw.setdefault("parameterization", "x0")
    return jax.jit(lambda k: draw(fn, schedule, k, shape, **kw))(key)


def rel_cov_error(x, cov):
    return float(np.linalg.norm(np.cov(np.asarray(x).T) - np.asarray(cov)) / np.linalg.norm(np.asarray(cov)))


# make test keeps one sampler of each kind; the others are covered there by the mixture rows (make test-slow: all)
FAST_GAUSSIAN = ("ddpm", "ddim", "dpm_solver", "heun", "dpm_solver_sde")


@pytest.mark.parametrize(
    "name", [n if n in FAST_GAUSSIAN else pytest.param(n, marks=pytest.mark.slow) for n in sorted(STEPS)]
)
def test_sampler_reproduces_gaussian_mean_and_covariance(name):
    s = linear_schedule()
    out = run(gaussian_fn(s), s, jax.random.PRNGKey(0), (4000, 3), sampler=name, steps=STEPS[name])
    x = np.asarray(out.samples)
    # Monte Carlo std of the mean is sqrt(diag(COV) / 4000) <= 0.011; of the covariance ~ 3% relative
    np.testing.assert_allclose(x.mean(0), np.asarray(MEAN), atol=0.04)
    assert rel_cov_error(x, COV) < 0.08
    assert out.nfe == SAMPLERS[name].nfe(STEPS[name])


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


@pytest.mark.parametrize("param", ["eps", "v", "edm"])
def test_parameterisation_of_the_network_does_not_change_samples(param):
    s = linear_schedule()
    fn_x0 = gaussian_fn(s)

    def fn(x, t, labels):
        if param == "edm":  # the exact F, fed EDM's c_in y and c_noise (analytic.py decodes them)
            return mixture_model_fn(s, jnp.ones(1), MEAN[None], COV[None], param)(x, t, labels)
        a, sg = alpha_sigma(s, t[0])
        x0 = fn_x0(x, t, labels)
        return P.from_x0_eps(x0, P.x0_to_eps(x, x0, a, sg), a, sg, param)

    ref = run(fn_x0, s, jax.random.PRNGKey(2), (64, 3), sampler="dpm_solver", steps=15).samples
    got = run(fn, s, jax.random.PRNGKey(2), (64, 3), sampler="dpm_solver", steps=15, parameterization=param).samples
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=2e-3)


@pytest.mark.parametrize("name", sampler_names())
def test_shapes_nfe_determinism_and_trajectory(name):
    s = linear_schedule()
    fn = lambda x, t, labels: 0.5 * jnp.tanh(x) * t[:, None, None, None]  # noqa: E731 (any network)
    shape = (3, 8, 8, 1)
    key = jax.random.PRNGKey(0)
    f = jax.jit(lambda k: draw(fn, s, k, shape, sampler=name, steps=5, trajectory_steps=(0, 2, 5)))
    a, b = f(key), f(key)
    assert a.samples.shape == shape and np.all(np.isfinite(np.asarray(a.samples)))
    assert (
        a.nfe
        == SAMPLERS[name].nfe(5)
        == {"heun": 9, "midpoint": 9, "dpm_solver_2s": 9, "dpm_solver_3s": 13}.get(name, 5)
    )
    np.testing.assert_array_equal(np.asarray(a.samples), np.asarray(b.samples))  # same key, same samples
    assert a.trajectory.shape == (3, *shape)
    np.testing.assert_array_equal(np.asarray(a.trajectory[-1]), np.asarray(a.samples))
    np.testing.assert_array_equal(
        np.asarray(a.trajectory[0]), np.asarray(jax.random.normal(jax.random.split(key)[0], shape))
    )
    assert jax.eval_shape(lambda k: draw(fn, s, k, shape, sampler=name, steps=5), key).trajectory is None
    with pytest.raises(ValueError, match="sampler='euler_magic' is unknown"):
        draw(fn, s, key, shape, sampler="euler_magic")
    with pytest.raises(ValueError, match=r"trajectory_steps \[6\] out of range"):
        draw(fn, s, key, shape, steps=5, trajectory_steps=(6,))


def test_ddim_eta_zero_is_deterministic_given_the_noise_and_eta_one_is_not():
    s = linear_schedule()
    fn = gaussian_fn(s)
    z = jax.random.normal(jax.random.PRNGKey(5), (16, 3))
    outs = [
        run(fn, s, jax.random.PRNGKey(k), (16, 3), sampler="ddim", steps=20, eta=e, noise=z).samples
        for e in (0.0, 1.0)
        for k in (1, 2)
    ]
    np.testing.assert_array_equal(np.asarray(outs[0]), np.asarray(outs[1]))
    assert float(jnp.abs(outs[2] - outs[3]).max()) > 1e-2


def test_ddim_inversion_encodes_and_decodes():
    s = linear_schedule()
    fn = mixture_model_fn(
        s, jnp.array([0.5, 0.5]), jnp.array([[0.8, 0.0], [-0.8, 0.3]]), jnp.stack([0.05 * jnp.eye(2), 0.1 * jnp.eye(2)])
    )
    x0 = jnp.array([[0.8, 0.0], [-0.6, 0.4]])[jnp.arange(16) % 2] + 0.2 * jax.random.normal(
        jax.random.PRNGKey(1), (16, 2)
    )

    def roundtrip(steps, iters):
        x_t, nfe = jax.jit(
            lambda x: ddim_invert(fn, s, x, steps=steps, parameterization="x0", fixed_point_iters=iters)
        )(x0)
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
        draw(fn, s, jax.random.PRNGKey(0), (3, 4), sampler="ddim", steps=4, labels=labels, guidance=g, null_label=10)
        assert calls == [expect], (g, calls)  # traced once inside the scan: one network call per step
    calls.clear()  # a multi-stage step guides each stage: three in the traced step, one at t_min
    draw(
        fn,
        s,
        jax.random.PRNGKey(0),
        (3, 4),
        sampler="dpm_solver_3s",
        steps=4,
        labels=labels,
        guidance=2.5,
        null_label=10,
    )
    assert calls == [(6, 6)] * 4, calls
    with pytest.raises(ValueError, match="guidance=-1.0"):
        draw(fn, s, jax.random.PRNGKey(0), (3, 4), labels=labels, guidance=-1.0, null_label=10)


def test_solver_state_stays_float32_under_a_bfloat16_network():
    s = linear_schedule()
    fn32 = gaussian_fn(s)
    fn16 = lambda x, t, labels: fn32(x, t, labels).astype(jnp.bfloat16)  # noqa: E731
    for name in ("dpm_solver", "heun"):
        a = run(fn32, s, jax.random.PRNGKey(4), (256, 3), sampler=name, steps=10).samples
        b = run(fn16, s, jax.random.PRNGKey(4), (256, 3), sampler=name, steps=10).samples
        assert b.dtype == jnp.float32
        # bfloat16 rounds each prediction to ~3 digits; float32 state keeps that from accumulating over steps
        assert float(jnp.abs(a - b).max()) < 0.03, name


def test_sampler_option_errors():
    s = linear_schedule()
    fn = gaussian_fn(s)
    key = jax.random.PRNGKey(0)
    for kw, msg in [
        (dict(spacing="cubic"), "spacing='cubic' is unknown"),
        (dict(eta=1.5), "eta=1.5"),
        (dict(order=4, sampler="unipc"), "order=4"),
        (dict(rho=-1.0), "rho=-1.0"),
        (dict(s_churn=-1.0, sampler="heun"), "churn settings"),
        (dict(steps=2000, spacing="trailing", sampler="ddim"), "at most the schedule's T=1000"),
    ]:
        with pytest.raises(ValueError, match=msg):
            draw(fn, s, key, (2, 3), **kw)


def test_trailing_spacing_reproduces_the_old_terminal_jump():
    """DDIM's trailing grid ends at t = 1/N and jumps to data from there: at 20 steps the narrow mode of a mixture
    loses a quarter of its width, while the default grid, which ends at t_min, keeps it (the defect of issue 15)."""
    s = linear_schedule()
    w, m, c = jnp.array([0.3, 0.7]), jnp.array([[-2.0], [1.5]]), jnp.array([[[0.01]], [[0.09]]])
    fn = mixture_model_fn(s, w, m, c)
    stds = {}
    for spacing in ("trailing", "default"):
        x = np.asarray(
            run(fn, s, jax.random.PRNGKey(1), (8000, 1), sampler="dpm_solver", steps=20, spacing=spacing).samples
        )
        stds[spacing] = mode_stats(x, w, m, c)[1][0, 0]  # the narrow mode's std
    assert stds["trailing"] < 0.08 and abs(stds["default"] - 0.1) < 0.007, stds


# churn per step: gamma = S_churn / N = 0.05 for Euler's 200 levels, 0.25 for Heun's 40 (the first-order Euler
# accumulates a larger bias from the added noise: 12% covariance error at gamma = 0.2)
@pytest.mark.parametrize("name,s_churn", [("euler", 10.0), ("heun", 10.0)])
def test_edm_churn_adds_noise_and_keeps_the_distribution(name, s_churn):
    s = linear_schedule()
    fn = gaussian_fn(s)
    z = jax.random.normal(jax.random.PRNGKey(5), (4000, 3))
    kw = dict(sampler=name, steps=STEPS[name], noise=z)
    ode = run(fn, s, jax.random.PRNGKey(1), (4000, 3), **kw).samples
    churned = [
        run(fn, s, jax.random.PRNGKey(k), (4000, 3), s_churn=s_churn, s_tmin=0.05, s_tmax=50.0, **kw).samples
        for k in (1, 2)
    ]
    assert float(jnp.abs(churned[0] - churned[1]).max()) > 1e-2  # fresh noise per key
    assert float(jnp.abs(churned[0] - ode).mean()) > 1e-2
    x = np.asarray(churned[0])
    np.testing.assert_allclose(x.mean(0), np.asarray(MEAN), atol=0.04)
    assert rel_cov_error(x, COV) < 0.08


def _draws_random_numbers(fn, *args) -> bool:
    text = str(jax.make_jaxpr(fn)(*args))
    return "random_bits" in text or "threefry" in text


def test_deterministic_ddim_draws_no_noise_inside_its_loop():
    """eta = 0 is a deterministic map: the loop must not spend a Gaussian draw per step (only x_T is drawn)."""
    s = linear_schedule()
    fn = gaussian_fn(s)
    x_T = jnp.zeros((4, 3))

    def det(k):
        return draw(fn, s, k, (4, 3), sampler="ddim", steps=5, parameterization="x0", noise=x_T).samples

    def sto(k):
        return draw(fn, s, k, (4, 3), sampler="ddim", steps=5, parameterization="x0", noise=x_T, eta=0.5).samples

    assert not _draws_random_numbers(det, jax.random.PRNGKey(0))
    assert _draws_random_numbers(sto, jax.random.PRNGKey(0))


def test_steps_for_nfe_is_the_largest_grid_within_the_budget():
    for spec in SAMPLERS.values():
        for budget in range(1, 41):
            steps = spec.steps_for_nfe(budget)
            assert spec.nfe(steps) <= budget < spec.nfe(steps + 1), (spec.name, budget)
