"""GAN losses and penalties against hand-computed values and analytic cases."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.gan.losses import LOSSES, discriminator_loss, generator_loss, gradient_penalty, r1_penalty

REAL = np.array([0.0, 2.0, -1.5], np.float32)
FAKE = np.array([-1.0, 1.0, 3.0], np.float32)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def test_minimax_and_non_saturating_discriminator_is_binary_cross_entropy():
    want = -np.log(_sig(REAL)) - np.log(1.0 - _sig(FAKE))
    for kind in ("minimax", "non_saturating"):
        np.testing.assert_allclose(discriminator_loss(kind, REAL, FAKE), want, rtol=1e-6)
    # logits 0 on both sides: D = 1/2 and the loss is 2 log 2 (the value at the game's optimum).
    np.testing.assert_allclose(discriminator_loss("minimax", jnp.zeros(2), jnp.zeros(2)), 2 * math.log(2), rtol=1e-6)


def test_generator_losses():
    np.testing.assert_allclose(generator_loss("minimax", FAKE), np.log(1.0 - _sig(FAKE)), rtol=1e-6)
    np.testing.assert_allclose(generator_loss("non_saturating", FAKE), -np.log(_sig(FAKE)), rtol=1e-6)
    np.testing.assert_allclose(generator_loss("hinge", FAKE), -FAKE)
    np.testing.assert_allclose(generator_loss("wgan_gp", FAKE), -FAKE)


def test_hinge_and_wasserstein_discriminator():
    np.testing.assert_allclose(discriminator_loss("hinge", REAL, FAKE), [1.0 + 0.0, 0.0 + 2.0, 2.5 + 4.0])
    np.testing.assert_allclose(discriminator_loss("wgan_gp", REAL, FAKE), FAKE - REAL)


def test_losses_are_finite_for_extreme_logits():
    big = jnp.array([-1e4, 1e4])
    for kind in LOSSES:
        assert np.all(np.isfinite(discriminator_loss(kind, big, big[::-1])))
        assert np.all(np.isfinite(generator_loss(kind, big)))


def test_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="hinge"):
        generator_loss("lsgan", FAKE)


def test_non_saturating_gradient_does_not_vanish_where_minimax_does():
    """When D confidently rejects fakes (logit -8), minimax gives the generator almost no gradient."""
    g_mm = jax.grad(lambda f: generator_loss("minimax", f).sum())(jnp.array([-8.0]))
    g_ns = jax.grad(lambda f: generator_loss("non_saturating", f).sum())(jnp.array([-8.0]))
    assert abs(float(g_mm[0])) < 1e-3 < 0.9 < abs(float(g_ns[0]))


def test_gradient_penalty_of_a_linear_critic():
    """D(x) = <w, x> has gradient w everywhere: the penalty is (||w|| - 1)^2 at any interpolate."""
    w = jnp.array([[[1.0], [2.0]], [[2.0], [0.0]]])  # [2, 2, 1], ||w|| = 3
    d_fn = lambda x: jnp.sum(x * w, axis=(1, 2, 3))  # noqa: E731
    real = jax.random.normal(jax.random.PRNGKey(0), (5, 2, 2, 1))
    fake = jax.random.normal(jax.random.PRNGKey(1), (5, 2, 2, 1))
    np.testing.assert_allclose(gradient_penalty(d_fn, real, fake, jax.random.PRNGKey(2)), np.full(5, 4.0), rtol=1e-5)


def test_gradient_penalty_interpolates_between_real_and_fake():
    """D(x) = ||x||^2 / 2 has gradient x: the penalty is (||u r + (1-u) f|| - 1)^2, u ~ U(0, 1) per example."""
    real, fake = jnp.full((64, 3), 1.0), jnp.full((64, 3), -1.0)
    key = jax.random.PRNGKey(0)
    gp = np.asarray(gradient_penalty(lambda x: 0.5 * jnp.sum(x**2, axis=1), real, fake, key))
    u = np.asarray(jax.random.uniform(key, (64, 1)))[:, 0]
    np.testing.assert_allclose(gp, (math.sqrt(3) * np.abs(2 * u - 1) - 1) ** 2, rtol=1e-4, atol=1e-6)
    assert u.std() > 0.1, "u must differ between examples"


def test_r1_penalty_analytic():
    x = jax.random.normal(jax.random.PRNGKey(3), (4, 3, 3, 2))
    np.testing.assert_allclose(
        r1_penalty(lambda v: 0.5 * jnp.sum(v**2, axis=(1, 2, 3)), x),
        0.5 * np.sum(np.asarray(x) ** 2, axis=(1, 2, 3)),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        r1_penalty(lambda v: jnp.sum(3.0 * v, axis=(1, 2, 3)), x), np.full(4, 0.5 * 9 * 18), rtol=1e-5
    )
