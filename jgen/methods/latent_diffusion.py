"""Latent diffusion: the diffusion method run in the latent space of a frozen, pretrained first stage.

The first stage (jgen/methods/first_stage.py) is a VAE with a spatial latent (experiments/configs/ldm_autoencoder.py:
28x28x1 -> 7x7x4), the run named by `config.method.first_stage_workdir`. Training images are encoded to the scaled
posterior mean (roughly unit variance: `config.method.latent_scale`, 0 = measured); samples are unscaled and decoded.
Everything else (UNet, losses, samplers, guidance) is `Diffusion`'s.
"""

from __future__ import annotations

import jax
import ml_collections

from jgen.methods import first_stage
from jgen.methods.diffusion import Diffusion
from jgen.methods.registry import register


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
        first_stage.check_fields(config.method, needed=True)

    @classmethod
    def requirements(cls, config) -> dict[str, str]:
        return first_stage.requirements(config.method)

    def __init__(self, config, info, resources=None):
        self.latent = first_stage.FirstStage(config, info, resources)
        self.image_info = info
        super().__init__(config, self.latent.latent_info, resources)

    @property
    def first_stage_params(self):
        """The frozen first stage's parameters (its run's EMA parameters)."""
        return self.latent.params

    def encode_x0(self, images: jax.Array) -> jax.Array:
        """Images [B, H, W, C] in [0, 1] -> scaled latents [B, h, w, c]."""
        return self.latent.encode(images)

    def likelihood_metric(self):
        return None

    def decode_x0(self, x: jax.Array) -> jax.Array:
        """Scaled latents [B, h, w, c] -> images [B, H, W, C] in [0, 1]."""
        return self.latent.decode(x)
