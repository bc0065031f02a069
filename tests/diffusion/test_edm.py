"""EDM's preconditioning (parameterization `edm`) against the paper's formulas and Gaussian closed forms.

Karras et al. 2022, Table 1 (sd = sigma_data, s the noise level): c_skip = sd^2 / (s^2 + sd^2),
c_out = s sd / sqrt(s^2 + sd^2), c_in = 1 / sqrt(s^2 + sd^2), c_noise = ln(s) / 4, loss weight
lambda = (s^2 + sd^2) / (s sd)^2. For data N(mu, std^2 I) and y = x0 + s n the posterior mean is
D*(y; s) = (std^2 y + s^2 mu) / (std^2 + s^2).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.diffusion import make_denoiser
from jgen.diffusion.parameterization import EDM, resolve
from jgen.diffusion.schedules import (
    alpha_sigma,
    alpha_sigma_at_level,
    linear_schedule,
    rectified_flow_schedule,
    sample_times,
)

SD = 0.5
LEVELS = jnp.array([0.002, 0.05, 0.5, 2.0, 80.0])  # EDM's sigma_min .. sigma_max
MU, STD = 0.3, 0.7  # Gaussian data N(MU, STD^2) per dimension


def table_1(s):
    """Table 1's EDM column, written out (c_skip, c_out, c_in, c_noise)."""
    return SD**2 / (s**2 + SD**2), s * SD / np.sqrt(s**2 + SD**2), 1 / np.sqrt(s**2 + SD**2), np.log(s) / 4


def test_coefficients_and_conversions_are_table_1():
    rec = EDM(sigma_data=SD)
    got = rec.coefficients(LEVELS)
    for g, want in zip(got, table_1(np.asarray(LEVELS, np.float64))):
        np.testing.assert_allclose(np.asarray(g), want, rtol=1e-6)
    # the record works in (alpha, sigma) of a path; in y = x_t / alpha it must be D = c_skip y + c_out F(c_in y)
    s = linear_schedule()
    x_t, f = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 4))
    for level in np.asarray(LEVELS):
        alpha, sigma = alpha_sigma_at_level(s, jnp.asarray(level))
        c_skip, c_out, c_in, c_noise = table_1(np.float64(level))
        y = x_t / alpha
        x_in, c = rec.net_input(x_t, jnp.asarray(0.5), alpha, sigma)
        np.testing.assert_allclose(x_in, c_in * y, rtol=2e-5)
        np.testing.assert_allclose(c, c_noise, atol=1e-6)
        x0, eps = rec.to_x0_eps(f, x_t, alpha, sigma)
        np.testing.assert_allclose(x0, c_skip * y + c_out * f, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(x_t, alpha * x0 + sigma * eps, rtol=2e-5, atol=2e-5)
    assert float(rec.loss_weight_on_denoiser(jnp.asarray(2.0))) == pytest.approx((4 + SD**2) / (2 * SD) ** 2)


def gaussian_f_star(x_in, c, labels=None):
    """The optimal F for data N(MU, STD^2), from its inputs alone: s = e^(4 c_noise), y = x_in / c_in, and
    F* = E[(x0 - c_skip y) / c_out | y] with E[x0 | y] = (STD^2 y + s^2 MU) / (STD^2 + s^2), Table 1's c's."""
    s = jnp.exp(4.0 * c)[:, None]
    c_skip, c_out, c_in, _ = table_1(s)
    y = x_in / c_in
    return ((STD**2 * y + s**2 * MU) / (STD**2 + s**2) - c_skip * y) / c_out


def test_the_optimal_network_gives_the_exact_posterior_mean():
    s = linear_schedule()
    denoise = make_denoiser(gaussian_f_star, s, EDM(sigma_data=SD))
    x_t = jax.random.normal(jax.random.PRNGKey(1), (16, 3))
    for t in (0.001, 0.02, 0.3, 0.7, 1.0):
        alpha, sigma = alpha_sigma(s, jnp.asarray(t))
        level, y = sigma / alpha, x_t / alpha
        x0, eps = denoise(x_t, jnp.asarray(t), alpha, sigma)
        want = (STD**2 * y + level**2 * MU) / (STD**2 + level**2)
        np.testing.assert_allclose(x0, want, rtol=2e-4, atol=2e-4 * float(1 + level))
        np.testing.assert_allclose(alpha * x0 + sigma * eps, x_t, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("level", [0.05, 0.5, 3.0])
def test_the_edm_loss_at_the_optimum_is_the_closed_form_minimum(level):
    """E ||F* - F_target||^2 per dimension = Var(x0 | y) / c_out^2 = STD^2 (s^2 + sd^2) / (sd^2 (STD^2 + s^2)) (1
    when STD = sd: EDM's unit-variance target); and unit weight on F's error is lambda(s) on D's, for any F."""
    rec, n = EDM(sigma_data=SD), 200_000
    s = linear_schedule()
    alpha, sigma = alpha_sigma_at_level(s, jnp.asarray(level))
    k0, k1, k2 = jax.random.split(jax.random.PRNGKey(2), 3)
    x0 = MU + STD * jax.random.normal(k0, (n, 1))
    eps = jax.random.normal(k1, (n, 1))
    x_t = alpha * x0 + sigma * eps
    target = rec.target(x0, eps, alpha, sigma)
    x_in, c = rec.net_input(x_t, jnp.zeros((n,)), alpha, sigma)
    loss = float(jnp.mean((gaussian_f_star(x_in, c) - target) ** 2))
    want = STD**2 * (level**2 + SD**2) / (SD**2 * (STD**2 + level**2))
    assert loss == pytest.approx(want, rel=0.015)  # Monte Carlo std 0.3%
    f = jax.random.normal(k2, (n, 1))  # any network output
    d_err = (rec.to_x0_eps(f, x_t, alpha, sigma)[0] - x0) ** 2
    lam = rec.loss_weight_on_denoiser(jnp.asarray(level))
    np.testing.assert_allclose(lam * d_err, (f - target) ** 2, rtol=2e-3, atol=1e-4)


def test_log_normal_training_noise_levels():
    s = linear_schedule()
    t = sample_times(s, jax.random.PRNGKey(3), 50_000, "log_normal", p_mean=-1.2, p_std=1.2)
    alpha, sigma = alpha_sigma(s, t)
    ln_s = np.asarray(jnp.log(sigma / alpha))
    inside = (ln_s > np.log(0.011)) & (ln_s < np.log(150.0))  # the linear schedule's range clamps 0.2% of draws
    assert inside.mean() > 0.99
    np.testing.assert_allclose(ln_s.mean(), -1.2, atol=0.03)
    np.testing.assert_allclose(ln_s.std(), 1.2, atol=0.03)


def test_edm_is_a_registered_record_with_settings():
    assert resolve("edm") == EDM(sigma_data=0.5) and EDM(sigma_data=1.0) != EDM()
    with pytest.raises(ValueError, match="rectified_flow"):
        make_denoiser(gaussian_f_star, rectified_flow_schedule(), "edm")
