"""Bits/dim, perplexity and the importance-weighted bound: closed forms."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from jgen.metrics.likelihood import bits_per_dim, dequantized_bits_per_dim, iwae_bound, perplexity


def test_bits_per_dim_of_uniform_discrete_model_is_eight():
    d = 784
    nll = d * math.log(256.0)  # uniform over 256 levels per pixel
    np.testing.assert_allclose(bits_per_dim(nll, d), 8.0, rtol=1e-12)


def test_dequantized_offsets_for_unit_and_symmetric_ranges():
    d = 3 * 32 * 32
    # the uniform density on [0, 1]^D has log-density 0: 8 bits/dim once discretised into 256 bins
    np.testing.assert_allclose(dequantized_bits_per_dim(0.0, d), 8.0, rtol=1e-12)
    # on [-1, 1]^D the uniform density is 2^-D: nll = D log 2; still 8 bits/dim
    np.testing.assert_allclose(dequantized_bits_per_dim(d * math.log(2.0), d, data_width=2.0), 8.0, rtol=1e-12)
    np.testing.assert_allclose(dequantized_bits_per_dim(1000.0, d), 1000.0 / (d * math.log(2)) + 8.0, rtol=1e-12)
    np.testing.assert_allclose(dequantized_bits_per_dim(np.array([0.0, 0.0]), d), [8.0, 8.0])


def test_perplexity_closed_forms():
    vocab = 50
    assert perplexity(np.full((4, 7), math.log(vocab))) == pytest.approx(vocab, rel=1e-12)
    nll = np.array([[math.log(2.0), math.log(8.0)], [99.0, 99.0]])
    mask = np.array([[True, True], [False, False]])
    assert perplexity(nll, mask) == pytest.approx(4.0, rel=1e-12)  # exp(mean(log 2, log 8)) = sqrt(16)


def test_iwae_bound():
    lw = jnp.log(jnp.array([[1.0, 2.0], [3.0, 2.0]]))  # [K=2, B=2]
    np.testing.assert_allclose(iwae_bound(lw), np.log([2.0, 2.0]), rtol=1e-6)
    one = jnp.array([[-3.5, 1.25]])
    np.testing.assert_allclose(iwae_bound(one), [-3.5, 1.25], rtol=1e-6)
    big = jnp.array([[-1000.0], [-1001.0]])  # stable for very negative log-weights
    np.testing.assert_allclose(iwae_bound(big), [-1000.0 + math.log((1 + math.exp(-1)) / 2)], rtol=1e-6)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="num_dims"):
        bits_per_dim(1.0, 0)
    with pytest.raises(ValueError, match="data_width"):
        dequantized_bits_per_dim(1.0, 4, data_width=0.0)
    with pytest.raises(ValueError, match="K, B"):
        iwae_bound(jnp.zeros(3))
    with pytest.raises(ValueError, match="zero tokens"):
        perplexity(np.zeros(2), np.zeros(2, bool))
