"""Shortcut models (Frans et al. 2024): flow matching plus self-consistency over step sizes, any number of steps.

The backbone (`model.kind`: unet | dit) sees z_t, t and the step size d (its second time input). A fraction
1 - `consistency_fraction` of each batch trains d = 0 by flow matching (t uniform in [0, 1], target eps - x0); the
rest trains s(z_t, t, 2d) on the stop-gradient mean of two d-steps of the same network (jgen/diffusion/shortcut.py),
d = 2^-k for k in 1..`max_doublings` (the smallest d asks the network at d = 0). Loss: squared error, mean over
pixels and examples. Sampling: `steps` steps of size 1 / steps (exact powers of two are the trained sizes; others
fall between them).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jgen.config import require_int, require_number
from jgen.diffusion.few_step import flow_path
from jgen.diffusion.shortcut import sample_step_sizes, shortcut_sample, shortcut_target
from jgen.methods.few_step import FewStep
from jgen.methods.registry import register


@register("shortcut")
class Shortcut(FewStep):
    @classmethod
    def defaults(cls) -> ml_collections.ConfigDict:
        d = super().defaults()
        d.method.update({"consistency_fraction": 0.25, "max_doublings": 7})  # d >= 2^-max_doublings
        return d

    @classmethod
    def check(cls, config) -> None:
        super().check(config)
        m = config.method
        require_number("method.consistency_fraction", m.consistency_fraction, 0.0, 1.0)
        require_int("method.max_doublings", m.max_doublings, 1, "e.g. 7: step sizes 1/2 .. 1/128")
        require_number("method.max_doublings", m.max_doublings, 1, 20, "at most 20 (step sizes below 1e-6)")

    def step_direction(self, params, labels, train: bool = False, key=None):
        """The network as s(z [B, H, W, C], t [B], d [B]) -> [B, H, W, C]: z_{t-d} = z_t - d s."""
        return self.network(params, labels, train, key)

    def per_example_losses(self, params, batch, key, train):
        m = self.config.method
        x0 = self.encode_x0(batch["image"])  # [B, H, W, C] (latents [B, h, w, c] with a first stage)
        b = x0.shape[0]
        n_sc = int(round(m.consistency_fraction * b))  # the last n_sc examples train self-consistency
        k_t, k_d, k_eps, k_drop, k_net = jax.random.split(key, 5)
        d_sc, t_sc = sample_step_sizes(k_d, n_sc, m.max_doublings)  # [n_sc] each
        t = jnp.concatenate([jax.random.uniform(k_t, (b - n_sc,)), t_sc])  # [B]
        z, v = flow_path(x0, jax.random.normal(k_eps, x0.shape, x0.dtype), t)
        labels, _ = self.train_labels(batch, k_drop, train)
        s_fn = self.step_direction(params, labels, train, k_net)
        d_in = jnp.concatenate([jnp.zeros((b - n_sc,)), 2.0 * d_sc])  # the network's step size: 0, or 2d
        pred = s_fn(z, t, d_in)
        if n_sc:
            sc_labels = None if labels is None else labels[b - n_sc :]
            sc_fn = self.step_direction(params, sc_labels, train, k_net)
            target = jnp.concatenate(
                [v[: b - n_sc], shortcut_target(sc_fn, z[b - n_sc :], t_sc, d_sc, 2.0**-m.max_doublings)]
            )
        else:
            target = v
        sq = jnp.mean((pred - target) ** 2, axis=(1, 2, 3))  # [B]
        is_sc = jnp.arange(b) >= b - n_sc  # each part's error, scaled so that its mean over the batch is the part's
        out = {"loss": sq, "mse_flow": jnp.where(is_sc, 0.0, sq) * (b / max(b - n_sc, 1))}
        return out | ({"mse_consistency": jnp.where(is_sc, sq, 0.0) * (b / n_sc)} if n_sc else {})

    def draw(self, params, key, noise, labels, steps):
        return shortcut_sample(self.step_direction(params, labels), noise, steps)
