"""Convolutional encoder and decoder for small images (28x28 MNIST, 8x8 digits).

Each module computes in `dtype` from `param_dtype` parameters (see jgen/nn/precision.py) and returns `dtype`
outputs; `jgen.nn.autoencoder.EncoderDecoder` casts them to float32.
"""

from collections.abc import Sequence
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp


def upsample2x(h: jax.Array) -> jax.Array:
    """Nearest-neighbour x2 upsampling: [B, H, W, C] -> [B, 2H, 2W, C].

    Written as a broadcast + reshape, whose gradient is a sum over the copies. It equals
    `jax.image.resize(h, (B, 2H, 2W, C), "nearest")` bitwise (values and gradients), but resize lowers to two
    gathers whose gradients are scatter-adds, which cost the CPU backend about 3x more (fwd + bwd).
    """
    b, hh, ww, c = h.shape
    return jnp.broadcast_to(h[:, :, None, :, None, :], (b, hh, 2, ww, 2, c)).reshape(b, 2 * hh, 2 * ww, c)


class ConvEncoder(nn.Module):
    """Stride-2 3x3 convolutions (one per entry of `features`), then a Dense layer to `out_dim` units.

    [B, H, W, C] -> [B, out_dim]; H and W must be divisible by 2**len(features).
    """

    out_dim: int
    features: Sequence[int] = (32, 64)
    hidden: int = 256
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        chex.assert_rank(x, 4)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = x
        for f in self.features:
            h = nn.silu(nn.Conv(f, (3, 3), strides=(2, 2), **kw)(h))
        h = h.reshape(h.shape[0], -1)
        h = nn.silu(nn.Dense(self.hidden, **kw)(h))
        return nn.Dense(self.out_dim, **kw)(h)


class ConvDecoder(nn.Module):
    """Mirror of ConvEncoder: Dense to a [H/2^n, W/2^n, features[-1]] map, then (2x nearest upsampling + 3x3 conv)
    per entry of `features`, widest first. Upsample+conv avoids the checkerboard artefacts of transposed
    convolutions and runs about twice as fast on CPU.

    [B, D] -> logits [B, H, W, C] (no output activation).
    """

    out_shape: Sequence[int]  # (H, W, C)
    features: Sequence[int] = (32, 64)
    hidden: int = 256
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        chex.assert_rank(z, 2)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        height, width, channels = self.out_shape
        n = len(self.features)
        h0, w0 = height // 2**n, width // 2**n
        h = nn.silu(nn.Dense(self.hidden, **kw)(z))
        h = nn.silu(nn.Dense(h0 * w0 * self.features[-1], **kw)(h))
        h = h.reshape(z.shape[0], h0, w0, self.features[-1])
        for f in reversed(self.features):
            h = nn.silu(nn.Conv(f, (3, 3), **kw)(upsample2x(h)))
        out = nn.Conv(channels, (3, 3), **kw)(h)
        chex.assert_shape(out, (z.shape[0], height, width, channels))
        return out


class SpatialEncoder(nn.Module):
    """Stride-2 convolutions to a latent *map*: [B, H, W, C] -> [B, H/2^n, W/2^n, out_channels].

    The first stage of latent diffusion (e.g. 28x28x1 -> 7x7x4 latents, with out_channels = 2 * 4 for a VAE).
    """

    out_channels: int
    features: Sequence[int] = (32, 64)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        chex.assert_rank(x, 4)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = nn.silu(nn.Conv(self.features[0], (3, 3), **kw)(x))
        for f in self.features:
            h = nn.silu(nn.Conv(f, (3, 3), strides=(2, 2), **kw)(h))
        h = nn.silu(nn.Conv(self.features[-1], (3, 3), **kw)(h))
        return nn.Conv(self.out_channels, (1, 1), **kw)(h)


class SpatialDecoder(nn.Module):
    """Latent map [B, h, w, c] -> logits [B, h*2^n, w*2^n, out_channels] by (upsample + conv) stages."""

    out_shape: Sequence[int]  # (H, W, C)
    features: Sequence[int] = (32, 64)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        chex.assert_rank(z, 4)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = nn.silu(nn.Conv(self.features[-1], (3, 3), **kw)(z))
        for f in reversed(self.features):
            h = nn.silu(nn.Conv(f, (3, 3), **kw)(upsample2x(h)))
        out = nn.Conv(self.out_shape[-1], (3, 3), **kw)(h)
        chex.assert_shape(out, (z.shape[0], *self.out_shape))
        return out
