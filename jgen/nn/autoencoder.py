"""Encoder-decoder pairs built from config, shared by the autoencoder, the VAE and latent diffusion."""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jgen.config import require_choice, require_int, require_int_tuple
from jgen.nn.conv import ConvDecoder, ConvEncoder, SpatialDecoder, SpatialEncoder
from jgen.nn.mlp import MLPDecoder, MLPEncoder
from jgen.nn.precision import check_precision, compute_dtype, param_dtype

ARCHITECTURES = ("mlp", "conv", "conv_spatial")


def check_encoder_decoder(model_cfg: ml_collections.ConfigDict) -> None:
    """ConfigError for the first invalid `config.model` field of an encoder-decoder (kind, features, hidden,
    dtype, param_dtype)."""
    require_choice("model.kind", model_cfg.kind, ARCHITECTURES)
    require_int_tuple("model.features", model_cfg.features)
    require_int("model.hidden", model_cfg.get("hidden", 256))
    check_precision(model_cfg)


class EncoderDecoder(nn.Module):
    """`encode`: [B, H, W, C] -> code [B, code_dim]; `decode`: [B, latent_dim] -> logits [B, H, W, C].

    kind="conv_spatial" keeps a spatial latent: code [B, h, w, code_dim], latents [B, h, w, latent_dim]
    with h = H / 2**len(features). Both compute in `dtype` (float32 parameters) and return float32.
    """

    kind: str
    shape: Sequence[int]
    code_dim: int  # encoder output size (2 * latent_dim for a VAE: mean and log-variance)
    latent_dim: int
    features: Sequence[int]
    hidden: int = 256
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def setup(self):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        if self.kind == "mlp":
            # The course autoencoder: 784 -> 512 -> 256 -> 128 -> 256 -> 512 -> 784, ReLU hidden.
            relu_last = self.code_dim == self.latent_dim  # a VAE's mean/log-variance head stays linear
            self.encoder = MLPEncoder(tuple(self.features) + (self.code_dim,), relu_last=relu_last, **kw)
            self.decoder = MLPDecoder(tuple(self.shape), tuple(reversed(self.features)), **kw)
        elif self.kind == "conv":
            self.encoder = ConvEncoder(self.code_dim, tuple(self.features), self.hidden, **kw)
            self.decoder = ConvDecoder(tuple(self.shape), tuple(self.features), self.hidden, **kw)
        elif self.kind == "conv_spatial":
            self.encoder = SpatialEncoder(self.code_dim, tuple(self.features), **kw)
            self.decoder = SpatialDecoder(tuple(self.shape), tuple(self.features), **kw)
        else:
            raise ValueError(f"model.kind={self.kind!r}; choose one of {ARCHITECTURES}")

    def encode(self, x: jax.Array) -> jax.Array:
        return self.encoder(x).astype(jnp.float32)

    def decode(self, z: jax.Array) -> jax.Array:
        return self.decoder(z).astype(jnp.float32)

    def __call__(self, x: jax.Array) -> jax.Array:
        code = self.encode(x)
        return self.decode(code[..., : self.latent_dim])


def make_encoder_decoder(model_cfg: ml_collections.ConfigDict, shape, latent_dim: int, code_dim: int) -> EncoderDecoder:
    return EncoderDecoder(
        kind=model_cfg.kind,
        shape=tuple(shape),
        code_dim=code_dim,
        latent_dim=latent_dim,
        features=tuple(model_cfg.features),
        hidden=model_cfg.get("hidden", 256),
        dtype=compute_dtype(model_cfg),
        param_dtype=param_dtype(model_cfg),
    )


def latent_shape(model_cfg: ml_collections.ConfigDict, shape, latent_dim: int) -> tuple[int, ...]:
    """Shape of one latent (without batch): (latent_dim,) or (h, w, latent_dim) for conv_spatial."""
    if model_cfg.kind == "conv_spatial":
        f = 2 ** len(model_cfg.features)
        return (shape[0] // f, shape[1] // f, latent_dim)
    return (latent_dim,)
