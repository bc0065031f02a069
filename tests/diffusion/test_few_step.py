"""The few-step families' targets against exact flows of Gaussian mixtures, their boundary conditions, and the JVP.

On the straight path x_t = (1 - t) x0 + t eps the marginal velocity of mixture data is known in closed form,
v(z, t) = (z - E[x0 | x_t = z]) / t (jgen/diffusion/analytic.py), so a many-step RK4 solve of dz/dt = v gives the
exact flow map z_t -> z_r, the exact average velocity u(z, r, t) = (z_t - z_r) / (t - r) and the exact jump of
size d. A network equal to them is a fixed point of MeanFlow's and the shortcut model's regression targets: that
checks the tangent (v, 0, 1), the signs and the time conventions, to the solver's accuracy.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.diffusion.analytic import mixture_posterior_mean
from jgen.diffusion.consistency import (
    karras_sigmas,
    num_scales,
    pseudo_huber,
    sample_sigma_index,
    sampling_sigmas,
    scalings,
)
from jgen.diffusion.few_step import FewStepSpec
from jgen.diffusion.meanflow import meanflow_sample, meanflow_target
from jgen.diffusion.shortcut import sample_step_sizes, shortcut_sample, shortcut_target

MIX_2D = (
    jnp.array([0.3, 0.7]),
    jnp.array([[1.0, 0.0], [-1.0, 0.5]]),
    jnp.array([0.0025 * np.eye(2), [[0.25, 0.05], [0.05, 0.16]]]),
)  # the 2-D mixture of tests/diffusion/test_diffusion_mixture.py: stds 0.05 / 0.4-0.5
ODE_STEPS = 100  # RK4 steps of the exact flow map over an interval


def exact_velocity(z: jax.Array, t: jax.Array) -> jax.Array:
    """The mixture flow's marginal velocity v(z, t) = (z - E[x0 | z]) / t: z [B, 2], t [B] -> [B, 2]."""

    def one(zi, ti):
        x0 = mixture_posterior_mean(zi[None], 1.0 - ti, ti, *MIX_2D)[0]
        return (zi - x0) / ti

    return jax.vmap(one)(z, t)


def flow_map(z: jax.Array, t: jax.Array, r: jax.Array) -> jax.Array:
    """z_r from z_t by RK4 on dz/dt = v in ODE_STEPS steps (differentiable in z, t, r): [B, 2]."""
    h = (r - t) / ODE_STEPS  # [B], negative

    def step(i, z):
        s = t + i * h
        k1 = exact_velocity(z, s)
        k2 = exact_velocity(z + 0.5 * h[:, None] * k1, s + 0.5 * h)
        k3 = exact_velocity(z + 0.5 * h[:, None] * k2, s + 0.5 * h)
        k4 = exact_velocity(z + h[:, None] * k3, s + h)
        return z + h[:, None] / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)

    return jax.lax.fori_loop(0, ODE_STEPS, step, z)


def exact_average_velocity(z, r, t):
    """u(z, r, t) = (z - z_r) / (t - r) of the exact flow: [B, 2]."""
    return (z - flow_map(z, t, r)) / (t - r)[:, None]


def points(num=16, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), (num, 2)) * 1.2


def test_meanflow_target_of_the_exact_average_velocity_is_itself():
    """u_tgt = v - (t - r) du/dt with u the exact average velocity (by a 100-step RK4 solve, JVP through the
    solver) and v the exact velocity equals u: |u_tgt - u| < 1e-4 against |u| ~ 1, on intervals from 0.1 to 0.8."""
    z = points(8)
    t = jnp.tile(jnp.array([0.9, 0.9, 0.6, 0.5]), 2)
    r = jnp.tile(jnp.array([0.1, 0.7, 0.2, 0.45]), 2)

    @jax.jit
    def targets(z, r, t):
        v = exact_velocity(z, t)
        u, target = meanflow_target(exact_average_velocity, z, r, t, v)
        # the wrong tangent (v, 1, 0), d/dr instead of d/dt, for contrast: the test can tell them apart
        _, dudr = jax.jvp(exact_average_velocity, (z, r, t), (v, jnp.ones_like(r), jnp.zeros_like(t)))
        return u, target, v - (t - r)[:, None] * dudr

    u, target, wrong = targets(z, r, t)
    err = float(jnp.max(jnp.abs(target - u)))
    assert err < 1e-4 and float(jnp.min(jnp.linalg.norm(u, axis=1))) > 0.1, err
    assert float(jnp.max(jnp.abs(wrong - u))) > 0.1


def test_meanflow_target_is_the_velocity_where_r_equals_t():
    """At r = t the target is v itself, exactly, whatever the network and its derivative."""
    z, v = points(), points(seed=1)
    t = jnp.linspace(0.05, 1.0, 16)

    def steep(z, r, t):  # a network with large derivatives in z and t
        return 30.0 * jnp.sin(5.0 * z + 40.0 * t[:, None] - 3.0 * r[:, None])

    _, target = meanflow_target(steep, z, t, t, v)
    np.testing.assert_array_equal(np.asarray(target), np.asarray(v))


def test_meanflow_jvp_equals_a_finite_difference():
    """du/dt along (v, 0, 1) by jax.jvp equals the central difference (u(z + e v, r, t + e) - u(z - e v, r, t - e))
    / 2e of a random MLP to 1e-3 (float32, e = 1e-3)."""
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(3), 3)
    w1 = jax.random.normal(k1, (4, 32)) / 2
    w2 = jax.random.normal(k2, (32, 2)) / 6

    def u_fn(z, r, t):
        return jnp.tanh(jnp.concatenate([z, r[:, None], t[:, None]], 1) @ w1) @ w2

    z, v = points(), points(seed=4)
    r, t = jnp.full((16,), 0.2), jax.random.uniform(k3, (16,), minval=0.3, maxval=0.9)
    u, target = meanflow_target(u_fn, z, r, t, v)
    e = 1e-3
    fd = (u_fn(z + e * v, r, t + e) - u_fn(z - e * v, r, t - e)) / (2 * e)
    np.testing.assert_allclose(np.asarray(target), np.asarray(v - (t - r)[:, None] * fd), atol=1e-3)
    np.testing.assert_allclose(np.asarray(u), np.asarray(u_fn(z, r, t)), atol=1e-6)


def test_meanflow_jumps_with_the_exact_average_velocity_land_on_the_exact_flow():
    """1, 2 and 4 jumps z_r = z_t - (t - r) u from t = 1 with the exact u land on the exact flow's image to 1e-4:
    the sampler's grid and the composition of jumps. (The exact flow is stopped at t = 0.02, before the narrow mode
    makes it stiff: u over [r, t] is the jump to max(r, 0.02), divided by t - r.)"""
    z, end = points(8), 0.02

    def u_fn(z, r, t):
        stop = jnp.maximum(r, end)
        return exact_average_velocity(z, stop, t) * ((t - stop) / (t - r))[:, None]

    @jax.jit
    def jumps(z):
        exact = flow_map(z, jnp.ones((8,)), jnp.full((8,), end))
        return exact, [meanflow_sample(u_fn, z, steps) for steps in (1, 2, 4)]

    exact, got = jumps(z)
    for x in got:
        np.testing.assert_allclose(np.asarray(x), np.asarray(exact), atol=1e-4)


def test_shortcut_target_of_the_exact_jump_is_the_exact_jump_of_twice_the_size():
    """s(z, t, d) = (z - z_{t-d}) / d of the exact flow satisfies s(z, t, 2d) = (s(z, t, d) + s(z', t - d, d)) / 2
    to 1e-4 at the step sizes the method trains (d = 1/2 .. 1/16 here)."""
    d, t = sample_step_sizes(jax.random.PRNGKey(0), 8, 4)
    t = jnp.maximum(t, 2 * d + 0.02)  # keep the exact flow away from t = 0, where the narrow mode is stiff

    def s_exact(z, t, d):
        return (z - flow_map(z, t, t - d)) / d[:, None]

    @jax.jit
    def check(z):
        tiny = s_exact(z, t, jnp.full((8,), 1e-3))  # d -> 0: the exact step direction is the velocity
        return shortcut_target(s_exact, z, t, d), s_exact(z, t, 2 * d), tiny, exact_velocity(z, t)

    target, double, tiny, v = check(points(8))
    np.testing.assert_allclose(np.asarray(target), np.asarray(double), atol=1e-4)
    np.testing.assert_allclose(np.asarray(tiny), np.asarray(v), atol=2e-2)


def test_shortcut_targets_are_anchored_to_the_flow_at_the_smallest_step():
    """A network that is the velocity at d = 0 and 0 at every d > 0 satisfies self-consistency at d > 0 but not at
    the smallest step size, whose target asks d = 0: there the target is the velocity's, not 0."""
    z, v = points(8), points(8, seed=5)

    def s_fn(z, t, d):
        return jnp.where((d == 0)[:, None], v, 0.0)

    t, d = jnp.full((8,), 0.5), jnp.full((8,), 1 / 128)
    np.testing.assert_allclose(np.asarray(shortcut_target(s_fn, z, t, d, 1 / 128)), np.asarray(v), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(shortcut_target(s_fn, z, t, 2 * d, 1 / 128)), 0.0)


def test_shortcut_step_sizes_and_times_are_on_the_samplers_grids():
    d, t = sample_step_sizes(jax.random.PRNGKey(1), 4000, 7)
    d, t = np.asarray(d), np.asarray(t)
    k = -np.log2(d)
    assert set(np.round(k).astype(int)) == set(range(1, 8)) and np.allclose(k, np.round(k))
    assert np.all(t - 2 * d >= -1e-7) and np.all(t <= 1 + 1e-7) and np.allclose(t / d, np.round(t / d))


def test_shortcut_sampler_takes_steps_of_one_over_steps():
    """With s = a constant direction c, `steps` steps of size 1 / steps move z by exactly c."""
    z, c = points(), points(seed=2)
    for steps in (1, 2, 4):

        def s_fn(x, t, d, steps=steps):  # the direction c where d = 1 / steps and t on the grid; 0 elsewhere
            on_grid = (d == 1.0 / steps) & (jnp.abs(t * steps - jnp.round(t * steps)) < 1e-4) & (t > 0)
            return jnp.where(on_grid[:, None], c, 0.0)

        np.testing.assert_allclose(np.asarray(shortcut_sample(s_fn, z, steps)), np.asarray(z - c), atol=1e-5)


def test_consistency_boundary_condition_is_exact():
    """c_skip(sigma_min) = 1 and c_out(sigma_min) = 0 exactly (float32), so f(x, sigma_min) = x for any network."""
    c_skip, c_out, c_in = scalings(jnp.float32(0.002), 0.5, 0.002)
    assert float(c_skip) == 1.0 and float(c_out) == 0.0 and float(c_in) > 0
    c_skip, c_out, _ = scalings(jnp.float32(80.0), 0.5, 0.002)
    assert float(c_skip) < 1e-4 and abs(float(c_out) - 0.5) < 1e-3  # at sigma_max f is the network's output


def test_consistency_curriculum_grid_and_index_distribution():
    """N(k) doubles 11, 21, ..., s1 + 1 in equal stages; the Karras grid spans [sigma_min, sigma_max] in its first
    N entries; the drawn indices stay below N - 1 and follow the lognormal masses."""
    total, s0, s1 = 1200, 10, 160
    got = [int(num_scales(jnp.int32(k), total, s0, s1)) for k in (0, 239, 240, 480, 960, 1199)]
    assert got == [11, 11, 21, 41, 161, 161], got
    sig = karras_sigmas(jnp.int32(21), 161, 0.002, 80.0, 7.0)
    assert (
        abs(float(sig[0]) - 0.002) < 1e-7 and abs(float(sig[20]) - 80.0) < 1e-3 and bool(jnp.all(sig[20:] == sig[20]))
    )
    assert bool(jnp.all(jnp.diff(sig[:21]) > 0))
    i = np.asarray(sample_sigma_index(jax.random.PRNGKey(0), sig, jnp.int32(21), 20000, -1.1, 2.0))
    assert i.min() >= 0 and i.max() <= 19
    from scipy.special import erf

    s = np.asarray(sig[:21], np.float64)
    mass = np.diff(erf((np.log(s) + 1.1) / (np.sqrt(2) * 2.0)))
    np.testing.assert_allclose(np.bincount(i, minlength=20) / len(i), mass / mass.sum(), atol=0.01)
    levels = np.asarray(sampling_sigmas(2, 0.002, 80.0, 7.0))
    assert levels[0] == pytest.approx(80.0, rel=1e-5) and 0.002 < levels[1] < 80.0


def test_pseudo_huber_is_l2_far_away_and_quadratic_near():
    a = jnp.zeros((2, 4))
    b = jnp.array([[3.0, 4.0, 0.0, 0.0], [1e-4, 0.0, 0.0, 0.0]])
    d = np.asarray(pseudo_huber(a, b, 0.01))
    assert d[0] == pytest.approx(5.0 - 0.01, abs=1e-4) and d[1] == pytest.approx(1e-8 / 0.02, rel=1e-3)


def test_the_few_step_spec_checks_steps_once():
    assert FewStepSpec(2).steps == 2 and hash(FewStepSpec(2)) == hash(FewStepSpec(2))
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(ValueError, match="steps"):
            FewStepSpec(bad)
