"""A tiny MLP trained by MeanFlow on the 2-D Gaussian mixture generates it in one network evaluation, where the same
MLP trained by flow matching alone cannot.

The mixture is tests/diffusion/test_diffusion_mixture.py's (weights 0.3 / 0.7, stds 0.05 and 0.4-0.5): its Monte
Carlo floor is the mean sliced W1 of exact samples of the same size, what a perfect sampler scores. With the same
network, optimiser and 8,000 steps, MeanFlow's 1-step samples must come within 12x that floor and
at most half the 1-step W1 of the flow-matching model (MeanFlow with r = t for every example).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jgen.diffusion.analytic import mixture_draw, wasserstein1
from jgen.diffusion.few_step import flow_path
from jgen.diffusion.meanflow import adaptive_weight, meanflow_sample, meanflow_target, sample_interval
from jgen.nn.unet import timestep_embedding
from tests.diffusion.test_diffusion_mixture import MIX_2D, reference_and_floor

NUM = 4000  # samples compared with the exact draws


class TimeMLP(nn.Module):
    """u(z [B, 2], r [B], t [B]) -> [B, 2]: z with sinusoids of t and t - r through a SiLU MLP."""

    width: int = 256

    @nn.compact
    def __call__(self, z, r, t):
        emb = [timestep_embedding(t, 64, scale=1.0), timestep_embedding(t - r, 64, scale=1.0)]
        h = jnp.concatenate([z, *emb], 1)
        for _ in range(3):
            h = nn.silu(nn.Dense(self.width)(h))
        return nn.Dense(2)(h)


def train_and_draw(interval_fraction: float, steps: int = 8000, batch: int = 512) -> jax.Array:
    """The MLP trained by MeanFlow with `interval_fraction` of r < t (0: flow matching), then 1-step samples."""
    net = TimeMLP()
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)), jnp.zeros((1,)), jnp.zeros((1,)))
    tx = optax.adam(optax.cosine_decay_schedule(1e-3, steps))
    data = jnp.asarray(mixture_draw(np.random.default_rng(1), 200_000, *MIX_2D), jnp.float32)

    def loss_fn(params, key):
        k_x, k_rt, k_eps = jax.random.split(key, 3)
        x0 = data[jax.random.randint(k_x, (batch,), 0, data.shape[0])]
        r, t = sample_interval(k_rt, batch, interval_fraction, -0.4, 1.0)
        z, v = flow_path(x0, jax.random.normal(k_eps, x0.shape), t)
        u, target = meanflow_target(lambda z, r, t: net.apply(params, z, r, t), z, r, t, v)
        sq = jnp.sum((u - target) ** 2, axis=1)
        return jnp.mean(adaptive_weight(sq, 0.5, 1e-3) * sq)

    @jax.jit
    def train_then_draw(params, key, noise):
        def step(carry, k):
            params, opt_state = carry
            updates, opt_state = tx.update(jax.grad(loss_fn)(params, k), opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        params = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(key, steps))[0][0]
        return meanflow_sample(lambda z, r, t: net.apply(params, z, r, t), noise, 1)

    return train_then_draw(params, jax.random.PRNGKey(2), jax.random.normal(jax.random.PRNGKey(3), (NUM, 2)))


@pytest.mark.slow
def test_meanflow_mlp_one_step_on_the_2d_mixture():
    ref, floor = reference_and_floor(MIX_2D, NUM)
    meanflow = wasserstein1(np.asarray(train_and_draw(0.5), np.float64), ref) / floor
    flow = wasserstein1(np.asarray(train_and_draw(0.0), np.float64), ref) / floor
    assert meanflow < 12.0 and meanflow < 0.5 * flow, (meanflow, flow)
