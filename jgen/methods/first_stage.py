"""A frozen first stage: the spatial-latent VAE run a method models the latents of (latent diffusion; the few-step
families with `method.first_stage_workdir`).

The run (experiments/configs/ldm_autoencoder.py: 28x28x1 -> 7x7x4) is named by `config.method.first_stage_workdir`;
the run layer loads it (`requirements`) and hands it in as `resources.runs["first_stage"]`. Training images are
encoded to the posterior mean, multiplied by `scale` (1 / std of the training latents, measured on the first 2,000
training images when `config.method.latent_scale` is 0) so the model sees roughly unit-variance data; samples are
divided by it and decoded.
"""

from __future__ import annotations

import dataclasses
import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jgen.config import fail

log = logging.getLogger("jgen")
SCALE_IMAGES = 2000  # training images whose latents set the scale when method.latent_scale is 0


def check_fields(m: ml_collections.ConfigDict, needed: bool) -> None:
    """The method fields first_stage_workdir and latent_scale; `needed`: a first stage is required."""
    if needed and not m.first_stage_workdir:
        fail(
            "method.first_stage_workdir",
            m.first_stage_workdir,
            f"{m.name.replace('_', ' ')} needs a trained first stage (a spatial-latent VAE run)",
            "train it first: python -m jgen train --config experiments/configs/ldm_autoencoder.py "
            "--workdir runs/ldm_autoencoder, then pass --config.method.first_stage_workdir=runs/ldm_autoencoder",
        )
    if not isinstance(m.first_stage_workdir, str):
        fail("method.first_stage_workdir", m.first_stage_workdir, "must be a run directory or ''")
    if not m.latent_scale >= 0:
        fail("method.latent_scale", m.latent_scale, "must be >= 0 (0: measured from the data)")


def requirements(m: ml_collections.ConfigDict) -> dict[str, str]:
    """{"first_stage": its run directory} where one is named, else {}."""
    return {"first_stage": m.first_stage_workdir} if m.first_stage_workdir else {}


class FirstStage:
    """The loaded first stage: `encode` images to scaled latents, `decode` them back; `latent_info` is the data's
    DataInfo with the latent shape."""

    def __init__(self, config: ml_collections.ConfigDict, info, resources):
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
        self.method = fs.method
        self.params = jax.tree.map(jnp.asarray, fs.state.ema_params)
        self.latent_info = dataclasses.replace(info, shape=tuple(fs.method.latent_shape))
        self.scale = float(config.method.latent_scale) or self._measure_scale(resources.train_source)

    def _measure_scale(self, train_source) -> float:
        n = min(SCALE_IMAGES, len(train_source))
        images = np.stack([train_source[i]["image"] for i in range(n)])
        mean, _ = jax.jit(self.method.encode)(self.params, jnp.asarray(images))
        scale = float(1.0 / np.std(np.asarray(mean)))
        log.info("latent scale 1/std = %.4f (set method.latent_scale to fix it)", scale)
        return scale

    def encode(self, images: jax.Array) -> jax.Array:
        """Images [B, H, W, C] in [0, 1] -> scaled latents [B, h, w, c] (posterior means; the first stage is frozen)."""
        mean, _ = self.method.encode(self.params, images)
        return jax.lax.stop_gradient(mean) * self.scale

    def decode(self, x: jax.Array) -> jax.Array:
        """Scaled latents [B, h, w, c] -> images [B, H, W, C] in [0, 1] through the first stage's decoder."""
        return self.method.decode(self.params, x / self.scale)
