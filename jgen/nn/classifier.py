"""A small CNN digit classifier; its penultimate layer is the feature space of the MNIST-domain metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp


class DigitClassifier(nn.Module):
    """Two stages of (3x3 conv, ReLU) x 2 + 2x2 max-pool, a ReLU Dense layer of `feature_dim` units (the
    features), and a Dense layer to `num_classes` logits. Input images in [0, 1], NHWC.

    `__call__(x [B, H, W, C], train=False) -> (logits [B, num_classes], features [B, feature_dim])`.
    Dropout (rate `dropout`) is applied to the features only when train=True (needs a 'dropout' rng).
    Computes in `dtype` from `param_dtype` parameters (jgen/nn/precision.py); both outputs are float32.
    """

    num_classes: int = 10
    features: Sequence[int] = (32, 64)
    feature_dim: int = 128
    dropout: float = 0.0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        chex.assert_rank(x, 4)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = x - 0.5  # centre pixel values around 0
        for f in self.features:
            h = nn.relu(nn.Conv(f, (3, 3), **kw)(h))
            h = nn.relu(nn.Conv(f, (3, 3), **kw)(h))
            h = nn.max_pool(h, (2, 2), strides=(2, 2))
        h = h.reshape(h.shape[0], -1)
        feats = nn.relu(nn.Dense(self.feature_dim, **kw)(h))  # [B, feature_dim]
        dropped = nn.Dropout(self.dropout, deterministic=not train)(feats)
        logits = nn.Dense(self.num_classes, **kw)(dropped)  # [B, num_classes]
        return logits.astype(jnp.float32), feats.astype(jnp.float32)


def random_shift(key: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
    """Translate each image [B, H, W, C] by an independent integer offset in [-max_shift, max_shift]^2,
    filling with zeros (pad + random crop)."""
    if max_shift == 0:
        return images
    b, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    offsets = jax.random.randint(key, (b, 2), 0, 2 * max_shift + 1)

    def crop(img, off):
        return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))

    return jax.vmap(crop)(padded, offsets)
