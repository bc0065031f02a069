"""Latent diffusion: the diffusion method run in the latent space of a frozen, pretrained first stage.

The first stage is a VAE with a spatial latent (experiments/configs/ldm_autoencoder.py: 28x28x1 -> 7x7x4), the run
named by `config.method.first_stage_workdir`; the run layer loads it and hands it in as `resources.runs["first_stage"]`.
Training images are encoded to the posterior mean, multiplied by `scale` (1 / std of the training latents, measured
on the first 2,000 training images when `config.method.latent_scale` is 0) so the diffusion sees roughly
unit-variance data; samples are divided by it and decoded. Everything else (UNet, losses, samplers, guidance) is
`Diffusion`'s.
"""

from __future__ import annotations

import dataclasses
import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jgen.config import fail
from jgen.methods.diffusion import Diffusion
from jgen.methods.registry import register

log = logging.getLogger("jgen")
SCALE_IMAGES = 2000  # training images whose latents set the scale when method.latent_scale is 0


@register("latent_diffusion")
class LatentDiffusion(Diffusion):
    capabilities = frozenset(
        {"sample", "interpolate", "autoguidance"}
    )  # no pixel likelihood: the ODE's would be of the latents

    @classmethod
    def defaults(cls) -> ml_collections.ConfigDict:
        d = super().defaults()
        d.method.update({"first_stage_workdir": "", "latent_scale": 0.0, "clip_denoised": False, "guidance": 3.0})
        d.method.sigma_data = 1.0  # the latents are scaled to unit std (EDM's preconditioning assumes sigma_data)
        d.model.update({"channels": 32, "channel_mult": (1,), "num_res_blocks": 2, "attention_resolutions": (7,)})
        return d

    @classmethod
    def check(cls, config) -> None:
        super().check(config)
        if not config.method.first_stage_workdir:
            fail(
                "method.first_stage_workdir",
                config.method.first_stage_workdir,
                "latent diffusion needs a trained first stage (a spatial-latent VAE run)",
                "train it first: python -m jgen train --config experiments/configs/ldm_autoencoder.py "
                "--workdir runs/ldm_autoencoder, then pass --config.method.first_stage_workdir=runs/ldm_autoencoder",
            )
        if not config.method.latent_scale >= 0:
            fail("method.latent_scale", config.method.latent_scale, "must be >= 0 (0: measured from the data)")

    @classmethod
    def requirements(cls, config) -> dict[str, str]:
        return {"first_stage": config.method.first_stage_workdir}

    def __init__(self, config, info, resources=None):
        fs = resources.runs["first_stage"]
        fs_dir = config.method.first_stage_workdir
        if fs.config.method.name != "vae":
            fail("method.first_stage_workdir", fs_dir, f"it holds a {fs.config.method.name!r} run; it must be a 'vae'")
        if tuple(fs.info.shape) != tuple(info.shape):
            fail(
                "method.first_stage_workdir",
                fs_dir,
                f"its first stage models images {fs.info.shape}, but the data are {info.shape}",
            )
        self.first_stage = fs.method
        self.first_stage_params = jax.tree.map(jnp.asarray, fs.state.ema_params)
        self.image_info = info
        latent_info = dataclasses.replace(info, shape=tuple(fs.method.latent_shape))
        super().__init__(config, latent_info, resources)
        self.scale = float(config.method.latent_scale) or self._measure_scale(resources.train_source)

    def _measure_scale(self, train_source) -> float:
        n = min(SCALE_IMAGES, len(train_source))
        images = np.stack([train_source[i]["image"] for i in range(n)])
        mean, _ = jax.jit(self.first_stage.encode)(self.first_stage_params, jnp.asarray(images))
        scale = float(1.0 / np.std(np.asarray(mean)))
        log.info("latent scale 1/std = %.4f (set method.latent_scale to fix it)", scale)
        return scale

    def encode_x0(self, images: jax.Array) -> jax.Array:
        """Images [B, H, W, C] in [0, 1] -> scaled latents [B, h, w, c] (posterior means; the first stage is frozen)."""
        mean, _ = self.first_stage.encode(self.first_stage_params, images)
        return jax.lax.stop_gradient(mean) * self.scale

    def likelihood_metric(self):
        return None

    def decode_x0(self, x: jax.Array) -> jax.Array:
        """Scaled latents [B, h, w, c] -> images [B, H, W, C] in [0, 1] through the first stage's decoder."""
        return self.first_stage.decode(self.first_stage_params, x / self.scale)
