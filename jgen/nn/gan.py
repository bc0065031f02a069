"""DCGAN-style generator and discriminator for small images (28x28 MNIST, 8x8 digits).

GroupNorm instead of BatchNorm keeps the networks free of batch statistics (no mutable state, the same output
for an example whatever batch it sits in). Upsampling is nearest-neighbour x2 followed by a 3x3 convolution,
which avoids the checkerboard artefacts of transposed convolutions. Both compute in `dtype` from `param_dtype`
parameters (see jgen/nn/precision.py) and return float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.nn.conv import upsample2x
from jgen.nn.norm import GroupNorm


def _groups(channels: int) -> int:
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


class Generator(nn.Module):
    """z [B, latent] (+ labels [B]) -> image [B, H, W, C] in [-1, 1] (tanh).

    Dense to a [H/2^n, W/2^n, features[0]] map, then n = len(features) stages of (upsample x2, 3x3 conv,
    GroupNorm, ReLU) with features[i] channels, then a 3x3 conv to C channels. H and W must be divisible by 2^n.
    With num_classes > 0, an embedding of the label is concatenated to z.
    """

    out_shape: Sequence[int]  # (H, W, C)
    features: Sequence[int] = (128, 64)
    num_classes: int = 0
    embed_dim: int = 32
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        chex.assert_rank(z, 2)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        height, width, channels = self.out_shape
        n = len(self.features)
        if height % 2**n or width % 2**n:
            raise ValueError(
                f"image shape {tuple(self.out_shape)} is not divisible by 2**{n} "
                f"(model.g_features={tuple(self.features)}); use fewer upsampling stages"
            )
        h = z
        if self.num_classes:
            chex.assert_shape(labels, (z.shape[0],))
            h = jnp.concatenate([h, nn.Embed(self.num_classes, self.embed_dim, **kw)(labels)], axis=-1)
        h0, w0 = height // 2**n, width // 2**n
        h = nn.Dense(h0 * w0 * self.features[0], **kw)(h).reshape(z.shape[0], h0, w0, self.features[0])
        h = nn.relu(GroupNorm(_groups(self.features[0]), **kw)(h))
        for f in self.features:
            h = nn.relu(GroupNorm(_groups(f), **kw)(nn.Conv(f, (3, 3), **kw)(upsample2x(h))))
        out = jnp.tanh(nn.Conv(channels, (3, 3), **kw)(h).astype(jnp.float32))
        chex.assert_shape(out, (z.shape[0], height, width, channels))
        return out


class Discriminator(nn.Module):
    """image [B, H, W, C] in [-1, 1] (+ labels [B]) -> logits [B]; no sigmoid (the losses take logits).

    Stride-2 4x4 convolutions with LeakyReLU(0.2), one per entry of `features`, then a linear head on the
    flattened map. With num_classes > 0 it is a projection discriminator (Miyato & Koyama 2018):
    logit = w . phi(x) + embed(y) . phi(x).
    """

    features: Sequence[int] = (64, 128)
    num_classes: int = 0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        chex.assert_rank(x, 4)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = x
        for f in self.features:
            h = nn.leaky_relu(nn.Conv(f, (4, 4), strides=(2, 2), **kw)(h), 0.2)
        phi = h.reshape(x.shape[0], -1)  # [B, D]
        logits = nn.Dense(1, **kw)(phi)[:, 0].astype(jnp.float32)
        if self.num_classes:
            chex.assert_shape(labels, (x.shape[0],))
            embed = nn.Embed(self.num_classes, phi.shape[-1], **kw)(labels)  # [B, D]
            logits = logits + jnp.sum(embed.astype(jnp.float32) * phi.astype(jnp.float32), axis=-1)
        return logits  # [B] float32
