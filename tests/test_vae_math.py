import math

import jax
import jax.numpy as jnp
import numpy as np

from jgen.config import base_config
from jgen.data import DataInfo
from jgen.methods import get_method
from jgen.methods.vae import gaussian_kl, gaussian_log_prob, reparameterize


def test_kl_is_nonnegative_and_zero_at_prior():
    key = jax.random.PRNGKey(0)
    mean = jax.random.normal(key, (100, 8)) * 3
    logvar = jax.random.normal(jax.random.fold_in(key, 1), (100, 8)) * 2
    assert float(jnp.min(gaussian_kl(mean, logvar))) >= 0.0
    assert float(jnp.max(jnp.abs(gaussian_kl(jnp.zeros((3, 8)), jnp.zeros((3, 8)))))) == 0.0


def test_closed_form_kl_matches_monte_carlo():
    mean = jnp.array([[0.5, -1.0, 2.0]])
    logvar = jnp.array([[-0.5, 0.3, -2.0]])
    n = 400_000
    z = reparameterize(jax.random.PRNGKey(0), jnp.broadcast_to(mean, (n, 3)), jnp.broadcast_to(logvar, (n, 3)))
    log_q = jnp.sum(-0.5 * ((z - mean) ** 2 / jnp.exp(logvar) + logvar + math.log(2 * math.pi)), -1)
    log_p = jnp.sum(-0.5 * (z**2 + math.log(2 * math.pi)), -1)
    mc = float(jnp.mean(log_q - log_p))
    exact = float(gaussian_kl(mean, logvar)[0])
    assert abs(mc - exact) < 0.02 * exact, (mc, exact)


def test_gaussian_log_prob_matches_scipy():
    from scipy.stats import norm

    x = np.random.RandomState(0).rand(2, 3, 3, 1).astype(np.float32)
    mu = np.full_like(x, 0.4)
    got = gaussian_log_prob(jnp.asarray(x), jnp.asarray(mu), jnp.log(0.2))
    want = norm.logpdf(x, 0.4, 0.2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_elbo_is_below_iwae_bound_and_bits_per_dim_convention():
    c = base_config()
    c.method.update(dict(name="vae", latent_dim=3, likelihood="gaussian", beta=1.0, eval_iw_samples=1))
    c.model.update(dict(kind="mlp", features=(32,), hidden=32))
    info = DataInfo("digits", (8, 8, 1), 10, 1, 1)
    m = get_method("vae")(c, info)
    x = jax.random.uniform(jax.random.PRNGKey(0), (64, 8, 8, 1))
    params, _ = m.init_variables(jax.random.PRNGKey(1), {"image": x})
    elbo = jnp.mean(jax.vmap(lambda k: m.elbo_terms(params, x, k)["elbo"])(jax.random.split(jax.random.PRNGKey(2), 64)))
    iw = jnp.mean(m.iwae_bound(params, x, jax.random.PRNGKey(3), 64))
    assert float(iw) >= float(elbo) - 1e-3  # the IW bound with K=64 is at least as tight as the ELBO
    # bits/dim: (nll + D log 256) / (D log 2); an nll of 0 nats is exactly 8 bits per dimension.
    assert abs(float(m.bits_per_dim(jnp.array(0.0))) - 8.0) < 1e-6
