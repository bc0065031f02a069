"""Fully connected encoder and decoder (computing in `dtype` from `param_dtype` parameters, as jgen/nn/conv.py)."""

import math
from collections.abc import Sequence
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp


class MLPEncoder(nn.Module):
    """Flattens [B, H, W, C] and maps it through Dense+ReLU layers; the last layer has `features[-1]` units.

    With `relu_last=True` the bottleneck is ReLU'd too (the course autoencoder: 784-512-256-128, all ReLU).
    """

    features: Sequence[int] = (512, 256, 128)
    relu_last: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        chex.assert_rank(x, 4)
        h = x.reshape(x.shape[0], -1)  # [B, H*W*C]
        for i, f in enumerate(self.features):
            h = nn.Dense(f, dtype=self.dtype, param_dtype=self.param_dtype)(h)
            if i < len(self.features) - 1 or self.relu_last:
                h = nn.relu(h)
        return h  # [B, features[-1]]


class MLPDecoder(nn.Module):
    """Maps a code [B, D] through Dense+ReLU layers to logits of shape [B, *out_shape] (no output activation)."""

    out_shape: Sequence[int]
    features: Sequence[int] = (256, 512)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        chex.assert_rank(z, 2)
        h = z
        for f in self.features:
            h = nn.relu(nn.Dense(f, dtype=self.dtype, param_dtype=self.param_dtype)(h))
        out = nn.Dense(math.prod(self.out_shape), dtype=self.dtype, param_dtype=self.param_dtype)(h)
        return out.reshape(z.shape[0], *self.out_shape)  # [B, H, W, C]
