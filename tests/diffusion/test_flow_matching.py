"""Flow matching on the rectified-flow path x_t = (1 - t) x0 + t eps: the exact velocity of Gaussian and mixture
data in closed form, the samplers that are the textbook flow samplers (Euler and midpoint in t), the start at
t = 1, inversion, and the combinations that cannot work. (The mixtures sampled with the exact velocity are in
test_diffusion_mixture.py; training with the flow objective in test_diffusion_method.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.diffusion.analytic import mixture_model_fn
from jgen.diffusion.inversion import ddim_invert
from jgen.diffusion.schedules import make_schedule, start_std
from jgen.diffusion.timegrid import time_grid
from tests.diffusion.drawing import draw

FLOW = make_schedule("rectified_flow")
MEAN = jnp.array([0.5, -0.3])
COV = jnp.array([[0.3, 0.1], [0.1, 0.15]])


def test_exact_velocity_of_gaussian_data_is_the_flow_maps_derivative():
    """For x0 ~ N(m, S) the marginal flow is x_t = (1 - t) m + C_t^(1/2) z with C_t = (1 - t)^2 S + t^2 I, whose
    velocity is u = -m + (t I - (1 - t) S) C_t^-1 (x - (1 - t) m): derived from the flow map alone, it must equal
    the analytic module's (x - E[x0 | x_t]) / t from the posterior mean."""
    fn = mixture_model_fn(FLOW, jnp.ones(1), MEAN[None], COV[None], "flow")
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 2))

    def both(t):
        c = (1 - t) ** 2 * COV + t**2 * jnp.eye(2)
        expect = -MEAN + ((x - (1 - t) * MEAN) @ jnp.linalg.inv(c)) @ (t * jnp.eye(2) - (1 - t) * COV)
        return fn(x, jnp.full((64,), t), None), expect

    got, expect = jax.jit(jax.vmap(both))(jnp.array([0.05, 0.3, 0.7, 1.0]))
    np.testing.assert_allclose(np.asarray(got), np.asarray(expect), atol=2e-5, rtol=1e-5)


def test_exact_mixture_velocity_solves_the_continuity_equation():
    """d p_t / dt + d (p_t u) / dx = 0 for the 1-D mixture marginal p_t = sum_k w_k N((1 - t) m_k, (1 - t)^2 s_k^2
    + t^2) and the analytic velocity: u transports the marginals of the path, so sampling it reproduces the data."""
    w, m, sd = jnp.array([0.3, 0.7]), jnp.array([-2.0, 1.5]), jnp.array([0.1, 0.3])
    fn = mixture_model_fn(FLOW, w, m[:, None], (sd**2)[:, None, None], "flow")

    def density(x, t):
        var = (1 - t) ** 2 * sd**2 + t**2
        return jnp.sum(w * jnp.exp(-0.5 * (x - (1 - t) * m) ** 2 / var) / jnp.sqrt(2 * jnp.pi * var))

    def flux(x, t):
        return density(x, t) * fn(jnp.reshape(x, (1, 1)), jnp.reshape(t, (1,)), None)[0, 0]

    def terms(x, t):
        return jax.grad(density, argnums=1)(x, t), jax.grad(flux, argnums=0)(x, t)

    x, t = (a.ravel() for a in jnp.meshgrid(jnp.array([-2.3, -0.9, 0.2, 1.4, 2.0]), jnp.array([0.1, 0.4, 0.8])))
    dp_dt, dflux_dx = jax.jit(jax.vmap(terms))(x, t)
    residual = jnp.abs(dp_dt + dflux_dx) / (jnp.abs(dp_dt) + jnp.abs(dflux_dx) + 1e-3)
    assert float(residual.max()) < 2e-3, np.asarray(residual)
    assert float(jnp.median(jnp.abs(dp_dt))) > 1e-2  # not vacuous: the density does change where it is checked


def velocity(x, t, labels):  # any network in the flow parameterisation: the identities below are algebraic
    return jnp.tanh(2.0 * x) * t[:, None] - 0.5 * x + 0.3


def test_ddim_is_euler_and_midpoint_is_the_midpoint_rule_in_t():
    """On the rectified-flow path `ddim` is x <- x + (s - t) u(x, t) and `midpoint` is x <- x + (s - t) u(x_m, m)
    with x_m = x + (m - t) u(x, t), m = (t + s) / 2, each ending with the data prediction x - t_min u at t_min.
    Both start at t = 1 from N(0, I) itself (x_1 = eps exactly)."""
    steps = 6
    times = [float(t) for t in time_grid(FLOW, steps, "time_uniform")]
    key = jax.random.PRNGKey(2)
    z = jax.random.normal(jax.random.split(key)[0], (32, 2))  # what `sample` draws from `key`

    def u(x, t):
        return velocity(x, jnp.full((x.shape[0],), t), None)

    euler, mid = z, z
    for t, s in zip(times[:-1], times[1:]):
        euler = euler + (s - t) * u(euler, t)
        m = 0.5 * (t + s)
        mid = mid + (s - t) * u(mid + (m - t) * u(mid, t), m)
    euler, mid = (x - times[-1] * u(x, times[-1]) for x in (euler, mid))

    for name, expect in (("ddim", euler), ("midpoint", mid)):
        out = jax.jit(
            lambda k, name=name: draw(
                velocity, FLOW, k, z.shape, sampler=name, steps=steps, parameterization="flow", trajectory_steps=(0,)
            )
        )(key)
        np.testing.assert_array_equal(np.asarray(out.trajectory[0]), np.asarray(z))  # start_std(t = 1) = 1
        assert out.nfe == (steps if name == "ddim" else 2 * steps - 1)
        np.testing.assert_allclose(np.asarray(out.samples), np.asarray(expect), atol=2e-5)

    # the noise-level grids start at s = 80 (t = 80/81), where x_t has std 0.988, not 1
    out = jax.jit(
        lambda k: draw(
            velocity,
            FLOW,
            k,
            z.shape,
            sampler="ddim",
            steps=1,
            spacing="logsnr_uniform",
            parameterization="flow",
            trajectory_steps=(0,),
        )
    )(key)
    t0 = time_grid(FLOW, 1, "logsnr_uniform")[0]
    assert float(t0) == pytest.approx(80 / 81, rel=1e-5)
    np.testing.assert_allclose(np.asarray(out.trajectory[0]), np.asarray(start_std(FLOW, t0) * z), rtol=1e-6)


def test_single_step_dpm_solvers_start_at_t_1_in_alpha_over_sigma():
    """From t = 1 (lambda = -inf: the step in lambda is infinite) DPM-Solver-2 and -3 take their first step in
    rho = alpha / sigma, in which x / sigma moves by the integral of x0_hat: the midpoint rule and Heun's third-order
    rule there (it was NaN). On a grid of two times that step is all, then the data prediction at t_min."""
    flow = make_schedule("rectified_flow", 10)  # t_min = 0.1: rho_s = 9
    z = jax.random.normal(jax.random.split(jax.random.PRNGKey(3))[0], (32, 2))
    rho_s = 9.0

    def x0(x, rho):  # the data prediction at rho, where t = sigma = 1 / (1 + rho)
        t = 1.0 / (1.0 + rho)
        return x - t * velocity(x, jnp.full((x.shape[0],), t), None)

    def state(rho, y):  # x = sigma (x / sigma)
        return y / (1.0 + rho)

    m0 = x0(z, 0.0)
    m1 = x0(state(rho_s / 2, z + rho_s / 2 * m0), rho_s / 2)
    mid = x0(state(rho_s, z + rho_s * m1), rho_s)
    k2 = x0(state(rho_s / 3, z + rho_s / 3 * m0), rho_s / 3)
    k3 = x0(state(2 * rho_s / 3, z + 2 * rho_s / 3 * k2), 2 * rho_s / 3)
    heun3 = x0(state(rho_s, z + rho_s * (0.25 * m0 + 0.75 * k3)), rho_s)
    for name, expect in (("dpm_solver_2s", mid), ("dpm_solver_3s", heun3)):
        out = draw(
            velocity,
            flow,
            jax.random.PRNGKey(3),
            z.shape,
            sampler=name,
            steps=2,
            spacing="time_uniform",
            parameterization="flow",
        )
        np.testing.assert_allclose(np.asarray(out.samples), np.asarray(expect), atol=2e-5, err_msg=name)


def test_inversion_on_the_flow_path_encodes_and_decodes():
    """The velocity form of DDIM inversion (x_t = x_s + (t - s) u(x_t)) runs up to t = 1, where the eps form
    degenerates; with fixed-point iterations decoding reproduces the data."""
    fn = mixture_model_fn(
        FLOW,
        jnp.array([0.5, 0.5]),
        jnp.array([[0.8, 0.0], [-0.8, 0.3]]),
        jnp.stack([0.05 * jnp.eye(2), 0.1 * jnp.eye(2)]),
        "flow",
    )
    x0 = jnp.array([[0.8, 0.0], [-0.6, 0.4]])[jnp.arange(16) % 2] + 0.2 * jax.random.normal(
        jax.random.PRNGKey(1), (16, 2)
    )
    codes, nfe = jax.jit(lambda x: ddim_invert(fn, FLOW, x, steps=50, parameterization="flow", fixed_point_iters=3))(x0)
    back = draw(
        fn, FLOW, jax.random.PRNGKey(0), codes.shape, sampler="ddim", steps=50, parameterization="flow", noise=codes
    ).samples
    assert nfe == 200 and float(jnp.abs(back - x0).max()) < 1e-3
    assert 0.5 < float(jnp.std(codes)) < 1.5  # codes look like unit Gaussian noise


def test_what_cannot_run_on_the_flow_path_says_so():
    key, shape = jax.random.PRNGKey(0), (4, 2)

    def trace(schedule=FLOW, **kw):  # the checks run while tracing: nothing is compiled
        return jax.eval_shape(lambda k: draw(velocity, schedule, k, shape, steps=5, **kw).samples, key)

    with pytest.raises(ValueError, match="'heun'.* works in the noise level.*'time_uniform' grid starts.*'karras'"):
        trace(sampler="heun", spacing="time_uniform", parameterization="flow")
    assert trace(sampler="heun", parameterization="flow").shape == shape  # its karras grid starts at s = 80
    with pytest.raises(ValueError, match="'eps' cannot be used on the rectified_flow path: .*undefined at t = 1"):
        trace(sampler="ddim", parameterization="eps")
    with pytest.raises(ValueError, match="'flow' cannot be used on the variance_preserving path"):
        trace(make_schedule("cosine"), sampler="ddim", parameterization="flow")
    with pytest.raises(ValueError, match="'v' cannot be used on the rectified_flow path"):
        ddim_invert(velocity, FLOW, jnp.zeros(shape), steps=5, parameterization="v")
