"""Deterministic autoencoder: the compression baseline (MSE reconstruction, sigmoid output).

An autoencoder has no prior over its codes, so on its own it cannot generate. Its latent prior is part of the
method: every train step updates a running (exponentially weighted) mean and second moment of the codes that the
EMA encoder gives the training batch, kept in `model_state["prior"]`; `generate` decodes draws from the Gaussian
with those moments. This is the course's "generation problem" made measurable: the codes are not Gaussian, so
many decoded draws are not digits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jgen.config import require_int
from jgen.methods.base import Batch, Method
from jgen.methods.registry import register
from jgen.nn.autoencoder import check_encoder_decoder, make_encoder_decoder
from jgen.nn.precision import precision_defaults
from jgen.viz import image_grid

PRIOR_DECAY = 0.99  # weight of the running code moments per step: about the last 100 batches count
PRIOR_JITTER = 1e-5  # added to the covariance's diagonal before its Cholesky factor


def update_code_moments(prior: dict, codes: jax.Array, decay: float = PRIOR_DECAY) -> dict:
    """Running, debiased moments of codes [B, D]: sums decay by `decay` per batch; `weight` tracks their total."""
    b = codes.shape[0]
    return {
        "mean_sum": decay * prior["mean_sum"] + (1 - decay) * jnp.mean(codes, 0),
        "sq_sum": decay * prior["sq_sum"] + (1 - decay) * codes.T @ codes / b,
        "weight": decay * prior["weight"] + (1 - decay),
    }


def code_gaussian(prior: dict) -> tuple[jax.Array, jax.Array]:
    """(mean [D], Cholesky factor [D, D]) of the Gaussian fitted to the running code moments."""
    w = jnp.maximum(prior["weight"], 1e-12)
    mean = prior["mean_sum"] / w
    cov = prior["sq_sum"] / w - jnp.outer(mean, mean)
    cov = 0.5 * (cov + cov.T) + PRIOR_JITTER * jnp.eye(mean.shape[0])
    return mean, jnp.linalg.cholesky(cov)


@register("autoencoder")
class Autoencoder(Method):
    """x -> z = enc(x) -> x_hat = sigmoid(dec(z)); loss = mean squared error over pixels and batch."""

    capabilities = frozenset({"sample"})

    @classmethod
    def defaults(cls) -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(
            {
                "method": {},
                "model": {
                    "kind": "mlp",
                    "features": (512, 256),
                    "latent_dim": 128,
                    "hidden": 256,
                    **precision_defaults(),
                },
            }
        )

    @classmethod
    def check(cls, config) -> None:
        super().check(config)
        check_encoder_decoder(config.model)
        require_int("model.latent_dim", config.model.latent_dim, 1, "--config.model.latent_dim=128")

    def __init__(self, config, info, resources=None):
        super().__init__(config, info, resources)
        latent = config.model.latent_dim
        self.net = make_encoder_decoder(config.model, info.shape, latent_dim=latent, code_dim=latent)

    def init_variables(self, key, batch):
        d = self.config.model.latent_dim
        prior = {"mean_sum": jnp.zeros((d,)), "sq_sum": jnp.zeros((d, d)), "weight": jnp.zeros(())}
        return self.net.init(key, batch["image"])["params"], {"prior": prior}

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

    def train_step(self, state, batch, key):
        state, metrics = super().train_step(state, batch, key)
        codes = self.encode(state.ema_params, batch["image"])  # the encoder that sampling and evaluation use
        prior = update_code_moments(state.model_state["prior"], codes)
        return state.replace(model_state={**state.model_state, "prior": prior}), metrics

    def eval_step(self, params, model_state, batch: Batch, key):
        err = (self.reconstruct(params, batch["image"]) - batch["image"]) ** 2
        return {"mse": jnp.mean(err, axis=(1, 2, 3))}  # [B]: per-image mean over pixels

    def sample_codes(self, model_state, key, num: int) -> jax.Array:
        """`num` draws [num, D] from the Gaussian fitted to the training codes (what `generate` decodes)."""
        mean, chol = code_gaussian(model_state["prior"])
        return mean + jax.random.normal(key, (num, mean.shape[0])) @ chol.T

    def generate(self, params, model_state, key, num, labels=None, spec=None):
        """Decode `num` draws from the Gaussian fitted to the training codes: [num, H, W, C] in [0, 1]."""
        return self.decode(params, self.sample_codes(model_state, key, num)), 1

    def visualize(self, state, batch, key):
        x = batch["image"][:16]
        recon = self.reconstruct(state.ema_params, x)
        return {
            "reconstructions": image_grid(np.concatenate([np.asarray(x), np.asarray(recon)]), ncol=16),
            **super().visualize(state, batch, key),
        }
