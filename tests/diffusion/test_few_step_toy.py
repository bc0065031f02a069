"""A tiny MLP trained by MeanFlow on the 2-D Gaussian mixture generates it in one network evaluation.

The mixture is tests/diffusion/test_diffusion_mixture.py's (weights 0.3 / 0.7, stds 0.05 and 0.4-0.5): its Monte
Carlo floor is the mean sliced W1 of exact samples of the same size, what a perfect sampler scores. The trained
model's 1-step samples must come within 3x that floor, and its 2-step samples too.
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
    scale: float = 100.0

    @nn.compact
    def __call__(self, z, r, t):
        h = jnp.concatenate(
            [z, timestep_embedding(t, 64, scale=self.scale), timestep_embedding(t - r, 64, scale=self.scale)], 1
        )
        for _ in range(3):
            h = nn.silu(nn.Dense(self.width)(h))
        return nn.Dense(2)(h)


@pytest.mark.slow
def test_meanflow_mlp_one_step_on_the_2d_mixture():
    net = TimeMLP()
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)), jnp.zeros((1,)), jnp.zeros((1,)))
    steps, batch = 4000, 512
    tx = optax.adam(optax.cosine_decay_schedule(2e-3, steps))
    data = jnp.asarray(mixture_draw(np.random.default_rng(1), 200_000, *MIX_2D), jnp.float32)

    def loss_fn(params, key):
        k_x, k_rt, k_eps = jax.random.split(key, 3)
        x0 = data[jax.random.randint(k_x, (batch,), 0, data.shape[0])]
        r, t = sample_interval(k_rt, batch, 0.5, -0.4, 1.0)
        z, v = flow_path(x0, jax.random.normal(k_eps, x0.shape), t)
        u, target = meanflow_target(lambda z, r, t: net.apply(params, z, r, t), z, r, t, v)
        sq = jnp.sum((u - target) ** 2, axis=1)
        return jnp.mean(adaptive_weight(sq, 0.5, 1e-3) * sq)

    @jax.jit
    def train(params, opt_state, key):
        def step(carry, k):
            params, opt_state = carry
            grads = jax.grad(loss_fn)(params, k)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        return jax.lax.scan(step, (params, opt_state), jax.random.split(key, steps))[0]

    params, _ = train(params, tx.init(params), jax.random.PRNGKey(2))
    ref, floor = reference_and_floor(MIX_2D, NUM)
    z = jax.random.normal(jax.random.PRNGKey(3), (NUM, 2))
    ratios = {}
    for nfe in (1, 2):
        x = meanflow_sample(lambda z, r, t: net.apply(params, z, r, t), z, nfe)
        ratios[nfe] = wasserstein1(np.asarray(x, np.float64), ref) / floor
    print(ratios)
    assert ratios[1] < 3.0 and ratios[2] < 3.0, ratios
