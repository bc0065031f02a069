"""Deterministic autoencoder: the compression baseline (MSE reconstruction, sigmoid output)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jgen.methods import register
from jgen.methods.base import Batch, Method
from jgen.nn.autoencoder import make_encoder_decoder
from jgen.viz import image_grid


@register("autoencoder")
class Autoencoder(Method):
    """x -> z = enc(x) -> x_hat = sigmoid(dec(z)); loss = mean squared error over pixels and batch."""

    def __init__(self, config, info):
        super().__init__(config, info)
        latent = config.model.latent_dim
        self.net = make_encoder_decoder(config.model, info.shape, latent_dim=latent, code_dim=latent)

    def init_variables(self, key, batch):
        return self.net.init(key, batch["image"])["params"], {}

    def reconstruct(self, params, images: jax.Array) -> jax.Array:
        """[B, H, W, C] in [0, 1] -> reconstructions in [0, 1]."""
        return jax.nn.sigmoid(self.net.apply({"params": params}, images))

    def encode(self, params, images: jax.Array) -> jax.Array:
        return self.net.apply({"params": params}, images, method="encode")  # [B, latent_dim]

    def decode(self, params, z: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(self.net.apply({"params": params}, z, method="decode"))

    def loss_fn(self, params, model_state, batch: Batch, key):
        mse = jnp.mean((self.reconstruct(params, batch["image"]) - batch["image"]) ** 2)
        return mse, ({"mse": mse}, model_state)

    def eval_step(self, params, model_state, batch: Batch, key):
        err = (self.reconstruct(params, batch["image"]) - batch["image"]) ** 2
        return {"mse": jnp.mean(err, axis=(1, 2, 3))}  # [B]: per-image mean over pixels

    def visualize(self, state, batch, key):
        x = batch["image"][:16]
        recon = self.reconstruct(state.ema_params, x)
        return {"reconstructions": image_grid(np.concatenate([np.asarray(x), np.asarray(recon)]), ncol=16)}
