"""Compute precision of the image networks: the `model.dtype` and `model.param_dtype` config fields.

`model.dtype` is what convolutions, dense layers and attention compute in (float32 or bfloat16);
`model.param_dtype` is what parameters are stored in, and stays float32, so the optimizer state and the EMA (same
dtypes as the parameters) stay float32 too: a bfloat16 network casts its float32 weights on the way in, and its
gradients come back float32. Inside the networks, normalisation statistics (GroupNorm, LayerNorm) and attention
softmaxes are computed in float32, and every network returns float32 outputs, so losses, their reductions and the
samplers' solver states never see bfloat16.

Families whose model section has these fields: diffusion and latent diffusion (UNet or DiT), VAE and autoencoder
(`jgen.nn.autoencoder`), GAN, classifier, autoregressive (`jgen.nn.transformer`: its logits are float32).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import ml_collections

from jgen.config import fail, require_choice

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
PARAM_DTYPES = ("float32",)  # float32 parameters keep the optimizer state and EMA float32


def precision_defaults() -> dict[str, str]:
    """The `config.model` fields a network family with a configurable precision adds to its defaults."""
    return {"dtype": "float32", "param_dtype": "float32"}


def check_precision(model_cfg: ml_collections.ConfigDict) -> None:
    """ConfigError naming `model.dtype` / `model.param_dtype` and the choices when either is not allowed."""
    require_choice("model.dtype", model_cfg.get("dtype", "float32"), tuple(DTYPES))
    value = model_cfg.get("param_dtype", "float32")
    if value not in PARAM_DTYPES:
        fail(
            "model.param_dtype",
            value,
            f"choose one of {list(PARAM_DTYPES)} (parameters, optimizer state and EMA stay float32)",
            "set model.dtype=bfloat16 to compute in bfloat16",
        )


def compute_dtype(model_cfg: ml_collections.ConfigDict) -> Any:
    """The jnp dtype `config.model.dtype` names (float32 when the section has no such field)."""
    return DTYPES[model_cfg.get("dtype", "float32")]


def param_dtype(model_cfg: ml_collections.ConfigDict) -> Any:
    """The jnp dtype `config.model.param_dtype` names (float32 when the section has no such field)."""
    return DTYPES[model_cfg.get("param_dtype", "float32")]
