"""The tiny runs' configs and the pixel feature net the chart tests use (one module, so the net registers once)."""

import jax
import jax.numpy as jnp
import numpy as np

from jgen.metrics.feature_nets import FeatureNet, FeatureNetSpec, register_feature_net
from tests.conftest import tiny_config
from tests.diffusion.test_diffusion_method import diffusion_config
from tests.gan.test_gan_method import gan_config

PIXEL_NET = "test_pixels"


def pixel_feature_net() -> FeatureNet:
    """Pixels as features and a fixed random linear classifier's softmax: a feature net for 8x8 test images."""
    w = jnp.asarray(np.random.default_rng(0).normal(size=(64, 10)), jnp.float32)

    def apply(x):
        flat = x.reshape(x.shape[0], -1)
        return flat, jax.nn.softmax(flat @ w)

    return FeatureNet(PIXEL_NET, (8, 8, 1), 64, 10, apply, batch_size=64)


register_feature_net(FeatureNetSpec(PIXEL_NET, "8x8 pixels as features (tests)", load=pixel_feature_net))


def tiny_gan(steps: int = 24):
    c = gan_config(tiny_config, steps)
    c.train.log_every = 8
    c.train.log_steps = (1, 10)  # the table's steps 0 and 1 (the first row) and 10 get rows of their own
    c.train.sample_every = 8
    c.eval.sample_metrics_every = 8
    c.eval.num_samples = 64
    c.eval.feature_net = PIXEL_NET
    return c


def tiny_diffusion():
    """The diffusion method test's tiny conditional UNet and run (its programs are compiled once per session)."""
    c = diffusion_config(steps=60, parameterization="v", loss_weighting="min_snr")
    c.train.sample_every = 60
    return c


def tiny_autoencoder(steps: int = 40):
    """The training test's tiny MLP autoencoder (no EMA, like the course's), evaluated every 10 steps."""
    c = tiny_config("autoencoder", steps=steps)
    c.model.kind = "mlp"
    c.model.features = (32,)
    c.train.ema_decay = 0.0
    c.train.eval_every = 10
    return c


def tiny_vae_2d(steps: int = 10):
    """The tiny VAE with a 2-D latent (chart 15), evaluated every 5 steps."""
    c = tiny_config("vae", steps=steps)
    c.method.latent_dim = 2
    c.train.eval_every = 5
    return c
