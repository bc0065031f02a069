"""The probability-flow ODE likelihood against closed forms: Gaussian and mixture data have exact denoisers and
exact marginal densities, so the ODE's log-likelihood of the data must equal the marginal log-density at t_min up
to the solver's discretisation error (and, with Hutchinson's estimator, in expectation)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.diffusion.analytic import mixture_draw, mixture_log_prob, mixture_model_fn
from jgen.diffusion.likelihood import ode_likelihood
from jgen.diffusion.schedules import alpha_sigma, make_schedule

MEAN = jnp.array([0.5, -0.3, 0.1])
_A = jnp.array([[0.6, 0.2, 0.0], [0.0, 0.4, 0.1], [0.1, 0.0, 0.3]])
COV = _A @ _A.T
MIX_2D = (
    np.array([0.3, 0.7]),
    np.array([[1.0, 0.0], [-1.0, 0.5]]),
    np.array([0.0025 * np.eye(2), [[0.25, 0.05], [0.05, 0.16]]]),
)  # stds 0.05 / 0.4-0.5


@functools.partial(jax.jit, static_argnames=("steps", "divergence", "num_probes", "param"))
def mixture_likelihood(s, weights, means, covs, x, key, steps=25, divergence="exact", num_probes=1, param="x0"):
    """(ODE log-likelihood, the same with the prior N(0, I) swapped for the exact marginal at x_1, the exact
    log-density at t_min), each [B]. The schedule is an argument: one program serves both DDPM schedules."""
    out = ode_likelihood(
        mixture_model_fn(s, weights, means, covs, param),
        s,
        x,
        key,
        steps=steps,
        divergence=divergence,
        num_probes=num_probes,
        parameterization=param,
    )
    (a0, s0), (a1, s1) = (alpha_sigma(s, jnp.asarray(t)) for t in (1.0 / s.num_steps, 1.0))
    flow = out.log_likelihood - out.prior_log_prob + mixture_log_prob(out.noise, a1, s1, weights, means, covs)
    return out.log_likelihood, flow, mixture_log_prob(x, a0, s0, weights, means, covs)


GAUSS = (jnp.ones(1), MEAN[None], COV[None])
COPIES = 250
POINTS = MEAN + jax.random.normal(jax.random.PRNGKey(1), (8, 3)) @ _A.T
X = jnp.repeat(POINTS, COPIES, axis=0)  # [2000, 3]: every copy of a point gets its own Hutchinson probes


def test_exact_trace_gives_the_gaussian_log_density():
    """The exact flow of Gaussian data keeps every marginal Gaussian, N(alpha m, alpha^2 S + sigma^2 I). On the cosine
    schedule the prior N(0, I) is that marginal at t = 1 (alpha_1 ~ 1e-4), so the ODE's log-likelihood (RK4, 25
    steps, 100 NFE) is the Gaussian log-density at t_min. On the linear one alpha_1 = 0.0064 leaves the prior off
    by ~x_1 . alpha_1 m (~4e-3 nats/dim here): swapping N(0, I) for the exact marginal at x_1 isolates the flow."""
    for name in ("cosine", "linear"):
        raw, flow, truth = mixture_likelihood(make_schedule(name), *GAUSS, X, jax.random.PRNGKey(0))
        err = float(jnp.max(jnp.abs((raw if name == "cosine" else flow) - truth))) / 3
        assert err < 1e-3, (name, err)


def test_exact_gaussian_log_density_on_the_rectified_flow_path():
    """On the rectified-flow path the ODE runs in t with the learned velocity (dx/dt = u_hat) on a time_quadratic grid,
    up to t = 1, where x_1 ~ N(0, I) exactly (alpha_1 = 0): with no prior mismatch the log-likelihood is the Gaussian
    log-density at t_min to 3e-5 nats/dim at 25 RK4 steps (the cosine schedule's error: 1.5e-4)."""
    raw, _, truth = mixture_likelihood(
        make_schedule("rectified_flow"), *GAUSS, POINTS, jax.random.PRNGKey(0), param="flow"
    )
    err = float(jnp.max(jnp.abs(raw - truth))) / 3
    assert err < 1e-4, err


def test_hutchinson_agrees_in_expectation():
    """Two Rademacher probes per example, 250 examples at each of 8 points: the mean estimate at every point is
    within 4 standard errors of the exact trace's value (and the estimates do vary)."""
    s = make_schedule("cosine")
    exact = np.asarray(mixture_likelihood(s, *GAUSS, X, jax.random.PRNGKey(0))[0]).reshape(8, COPIES)[:, 0]
    est = np.asarray(
        mixture_likelihood(s, *GAUSS, X, jax.random.PRNGKey(1), divergence="hutchinson", num_probes=2)[0]
    ).reshape(8, COPIES)
    se = est.std(axis=1, ddof=1) / np.sqrt(COPIES)
    z = (est.mean(axis=1) - exact) / se
    assert np.all(se > 1e-3) and np.all(np.abs(z) < 4.0), (z, se)


def test_mixture_log_density_converges_at_the_solvers_order():
    """A mixture with a narrow mode (std 0.05) bends the flow sharply near the data: the error is the ODE
    discretisation's, and RK4 cuts it by more than 8x (fourth order: 16x) when the steps double."""
    mix = tuple(jnp.asarray(a, jnp.float32) for a in MIX_2D)
    x = jnp.asarray(mixture_draw(np.random.default_rng(0), 512, *MIX_2D), jnp.float32)
    errs = []
    for steps in (25, 50):
        _, flow, truth = mixture_likelihood(make_schedule("linear"), *mix, x, jax.random.PRNGKey(0), steps=steps)
        errs.append(float(jnp.mean(jnp.abs(flow - truth))) / 2)  # nats/dim
    assert errs[1] < 1e-4 and errs[0] > 8 * errs[1], errs


def test_images_keys_nfe_and_a_diagonal_jacobian():
    """eps_hat = w * x (w per pixel): dx/dlambda = (sigma^2 - sigma w) x, whose divergence sum_i (sigma^2 -
    sigma w_i) the exact trace and Rademacher probes (z_i^2 = 1) both give exactly, on image-shaped data."""
    s = make_schedule("linear")
    w = jax.random.uniform(jax.random.PRNGKey(5), (1, 4, 4, 1), minval=0.5, maxval=1.5)
    fn = lambda x, t, labels: w * x  # noqa: E731
    x = jax.random.normal(jax.random.PRNGKey(6), (3, 4, 4, 1))
    run = jax.jit(
        lambda x, k: [
            ode_likelihood(fn, s, x, k, steps=4, solver="heun", divergence=div, num_probes=2)
            for div in ("exact", "hutchinson")
        ]
    )
    exact, hutch = run(x, jax.random.PRNGKey(0))
    assert exact.log_likelihood.shape == (3,) and exact.noise.shape == x.shape and exact.nfe == 8
    np.testing.assert_allclose(np.asarray(hutch.log_likelihood), np.asarray(exact.log_likelihood), rtol=1e-5)
    np.testing.assert_array_equal(
        np.asarray(run(x, jax.random.PRNGKey(0))[1].log_likelihood), np.asarray(hutch.log_likelihood)
    )  # the same key, the same probes
    for kw, msg in [
        (dict(solver="euler"), "solver 'euler' is unknown"),
        (dict(spacing="trailing"), "t_min to t = 1"),
        (dict(divergence="hutch"), "divergence 'hutch'"),
        (dict(num_probes=0), "num_probes=0"),
        (dict(steps=0), "steps=0"),
        (dict(parameterization="flow"), "'flow' cannot be used"),
    ]:
        with pytest.raises(ValueError, match=msg):
            ode_likelihood(fn, s, x, jax.random.PRNGKey(0), **kw)
