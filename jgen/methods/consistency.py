"""Consistency training (iCT, Song & Dhariwal 2023): a consistency model trained from scratch, 1 to few NFE.

The backbone (`model.kind`: unet | dit) is F in f(x, sigma) = c_skip x + c_out F(c_in x, 0.25 ln sigma), which is
x itself at sigma_min (jgen/diffusion/consistency.py). Each step draws adjacent levels of the Karras grid of N(k)
levels (N doubles from `scales_start` + 1 to `scales_end` + 1 over the run: the loss follows the step, `loss_at`),
the lower index i by the lognormal(`p_mean`, `p_std`) mass, and minimises the pseudo-Huber distance between f at
the upper level and the stop-gradient f at the lower one, weighted 1 / (sigma_{i+1} - sigma_i). Evaluation reports
that loss on the final grid. Sampling: f(sigma_max noise), then renoise-and-denoise at the lower levels of the
Karras grid of steps + 1 levels (`steps` NFE).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections

from jgen.config import fail, require_int, require_number
from jgen.diffusion.consistency import (
    consistency_loss,
    consistency_sample,
    karras_sigmas,
    noise_input,
    num_scales,
    sample_sigma_index,
    sampling_sigmas,
    scalings,
)
from jgen.diffusion.few_step import per_example
from jgen.methods.few_step import FewStep
from jgen.methods.registry import register


@register("consistency")
class Consistency(FewStep):
    uses_interval = False

    @classmethod
    def defaults(cls) -> ml_collections.ConfigDict:
        d = super().defaults()
        d.method.update(
            {
                "sigma_min": 0.002,
                "sigma_max": 80.0,
                "sigma_data": 0.5,
                "rho": 7.0,  # the Karras grid's exponent
                "scales_start": 10,
                "scales_end": 1280,  # N(k) doubles from scales_start + 1 to scales_end + 1 levels
                "p_mean": -1.1,
                "p_std": 2.0,  # the lognormal over noise levels that draws the training index
                "huber_c": 0.0,  # pseudo-Huber constant; 0: iCT's 0.00054 sqrt(pixels)
            }
        )
        return d

    @classmethod
    def check(cls, config) -> None:
        super().check(config)
        m = config.method
        require_number("method.sigma_min", m.sigma_min, 1e-6)
        require_number("method.sigma_max", m.sigma_max, 1e-6)
        if not m.sigma_max > m.sigma_min:
            fail("method.sigma_max", m.sigma_max, f"must exceed method.sigma_min={m.sigma_min}", "e.g. 80.0")
        require_number("method.sigma_data", m.sigma_data, 1e-6)
        require_number("method.rho", m.rho, 1e-6)
        require_int("method.scales_start", m.scales_start, 1, "e.g. 10")
        require_int("method.scales_end", m.scales_end, m.scales_start, f"at least scales_start={m.scales_start}")
        require_number("method.p_mean", m.p_mean)
        require_number("method.p_std", m.p_std, 1e-6)
        require_number("method.huber_c", m.huber_c, 0.0)

    def consistency_fn(self, params, labels, train: bool = False, key=None):
        """f(x [B, H, W, C], sigma [B]) -> [B, H, W, C], the parameterised consistency function."""
        m = self.config.method
        net = self.network(params, labels, train, key)

        def f(x, sigma):
            c_skip, c_out, c_in = (per_example(c, x) for c in scalings(sigma, m.sigma_data, m.sigma_min))
            return c_skip * x + c_out * net(c_in * x, noise_input(sigma))

        return f

    def per_example_losses(self, params, batch, key, train, levels: jax.Array | None = None):
        """The loss on the grid of `levels` levels (int32 []; None: the final one, scales_end + 1)."""
        m = self.config.method
        x0 = self.encode_x0(batch["image"])  # [B, H, W, C] (latents [B, h, w, c] with a first stage)
        b, size = x0.shape[0], m.scales_end + 1
        levels = jnp.int32(size) if levels is None else levels
        k_i, k_eps, k_drop, k_net = jax.random.split(key, 4)
        sigmas = karras_sigmas(levels, size, m.sigma_min, m.sigma_max, m.rho)  # [size], the first `levels` used
        i = sample_sigma_index(k_i, sigmas, levels, b, m.p_mean, m.p_std)  # [B]
        labels, _ = self.train_labels(batch, k_drop, train)
        c = m.huber_c or 0.00054 * math.sqrt(x0[0].size)
        eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
        f = self.consistency_fn(params, labels, train, k_net)
        loss = consistency_loss(f, x0, eps, sigmas[i], sigmas[i + 1], c)
        return {"loss": loss, "sigma": sigmas[i + 1]}

    def loss_at(self, step):
        m = self.config.method
        levels = num_scales(step, self.config.train.steps, m.scales_start, m.scales_end)

        def loss_fn(params, model_state, batch, key):
            out = self.per_example_losses(params, batch, key, train=True, levels=levels)
            return jnp.mean(out["loss"]), (
                {"levels": levels.astype(jnp.float32), "sigma": jnp.mean(out["sigma"])},
                model_state,
            )

        return loss_fn

    def draw(self, params, key, noise, labels, steps):
        m = self.config.method
        sigmas = sampling_sigmas(steps, m.sigma_min, m.sigma_max, m.rho)
        return consistency_sample(self.consistency_fn(params, labels), key, noise, sigmas, m.sigma_min)
