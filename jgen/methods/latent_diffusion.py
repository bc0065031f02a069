"""Latent diffusion: the diffusion method run in the latent space of a frozen, pretrained first stage.

The first stage is a VAE with a spatial latent (experiments/configs/ldm_autoencoder.py: 28x28x1 -> 7x7x4),
read from its run directory `config.method.first_stage_workdir`. Training images are encoded to the posterior
mean, multiplied by `scale` (1 / std of the training latents, measured on the first 2,000 training images
when `config.method.latent_scale` is 0) so the diffusion sees roughly unit-variance data; samples are
divided by it and decoded. Everything else (UNet, losses, samplers, guidance) is `Diffusion`'s.
"""

from __future__ import annotations

import dataclasses
import logging

import jax
import jax.numpy as jnp
import numpy as np

from jgen.data import get_source
from jgen.methods import register
from jgen.methods.diffusion import Diffusion

log = logging.getLogger("jgen")


@register("latent_diffusion")
class LatentDiffusion(Diffusion):
    def __init__(self, config, info):
        from jgen.train.checkpoint import load_run

        fs_dir = config.method.first_stage_workdir
        if not fs_dir:
            raise ValueError("method.first_stage_workdir is empty: train the first stage first, e.g.\n"
                             "  python -m jgen train --config experiments/configs/ldm_autoencoder.py "
                             "--workdir runs/ldm_autoencoder\nthen pass --config.method.first_stage_workdir="
                             "runs/ldm_autoencoder")
        fs_config, fs_method, fs_state, fs_info = load_run(fs_dir)
        if fs_config.method.name != "vae":
            raise ValueError(f"first stage {fs_dir!r} is a {fs_config.method.name!r} run; it must be a 'vae'")
        if tuple(fs_info.shape) != tuple(info.shape):
            raise ValueError(f"first stage {fs_dir!r} models images {fs_info.shape}, but the data are {info.shape}")
        self.first_stage = fs_method
        self.first_stage_params = jax.tree.map(jnp.asarray, fs_state.ema_params)
        self.image_info = info
        latent_info = dataclasses.replace(info, shape=tuple(fs_method.latent_shape))
        super().__init__(config, latent_info)
        self.scale = float(config.method.latent_scale) or self._measure_scale(config)

    def _measure_scale(self, config) -> float:
        train, _, _ = get_source(config.data)
        images = np.stack([train[i]["image"] for i in range(min(2000, len(train)))])
        mean, _ = jax.jit(self.first_stage.encode)(self.first_stage_params, jnp.asarray(images))
        scale = float(1.0 / np.std(np.asarray(mean)))
        log.info("latent scale 1/std = %.4f (set method.latent_scale to fix it)", scale)
        return scale

    def encode_x0(self, images: jax.Array) -> jax.Array:
        """Images [B, H, W, C] in [0, 1] -> scaled latents [B, h, w, c] (posterior means; the first stage is frozen)."""
        mean, _ = self.first_stage.encode(self.first_stage_params, images)
        return jax.lax.stop_gradient(mean) * self.scale

    def decode_x0(self, x: jax.Array) -> jax.Array:
        """Scaled latents [B, h, w, c] -> images [B, H, W, C] in [0, 1] through the first stage's decoder."""
        return self.first_stage.decode(self.first_stage_params, x / self.scale)
