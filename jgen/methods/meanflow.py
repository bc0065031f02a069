"""MeanFlow (Geng et al. 2025): one- and few-step generation from a network of the average velocity u(z, r, t).

The backbone (`model.kind`: unet | dit) sees z_t, t and the interval t - r (its second time input); the loss
regresses u on the stop-gradient MeanFlow target v - (t - r) du/dt, du/dt by `jax.jvp` through the network along
(v, 0, 1) (jgen/diffusion/meanflow.py). Times: two logit-normal draws sorted into r <= t, and r = t for a fraction
1 - `interval_fraction` of the examples (flow matching). Loss: the squared error summed over pixels, weighted by the
adaptive weight 1 / (error + weight_eps)^weight_power (stop-gradient). With `cfg_scale` w > 1, the velocity of the
kept-label examples is w v + (1 - w) u(z_t, t, t | null label) (the paper's training-time guidance: the network
learns the guided field, still 1 NFE). The backbones embed 1000 x their time inputs; MeanFlow's default `time_scale`
0.001 makes that the sinusoids of t and t - r themselves, as MeanFlow's networks have them: their t-derivative,
which the JVP target carries, stays of order 1 (at 1000 t it is ~1000x larger and the targets diverge).
Sampling: `steps` jumps z_r = z_t - (t - r) u(z_t, r, t) on a uniform grid.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jgen.config import fail, require_number
from jgen.diffusion.few_step import flow_path
from jgen.diffusion.meanflow import adaptive_weight, meanflow_sample, meanflow_target, sample_interval
from jgen.methods.few_step import FewStep
from jgen.methods.registry import register


@register("meanflow")
class MeanFlow(FewStep):
    @classmethod
    def defaults(cls) -> ml_collections.ConfigDict:
        d = super().defaults()
        d.method.update(
            {
                "interval_fraction": 0.25,  # examples with r < t (the rest: r = t, flow matching)
                "logit_mean": -0.4,
                "logit_std": 1.0,  # the times: sigmoid(logit_mean + logit_std n), two per example
                "weight_power": 1.0,
                "weight_eps": 1e-3,  # adaptive weight 1 / (error + eps)^power
                "cfg_scale": 1.0,  # training-time guidance w (1: none)
                "time_scale": 0.001,  # the backbone sees time_scale * (t, t - r)
            }
        )
        return d

    @classmethod
    def check(cls, config) -> None:
        super().check(config)
        m = config.method
        require_number("method.interval_fraction", m.interval_fraction, 0.0, 1.0)
        require_number("method.logit_mean", m.logit_mean)
        require_number("method.logit_std", m.logit_std, 1e-6)
        require_number("method.weight_power", m.weight_power, 0.0, 2.0)
        require_number("method.weight_eps", m.weight_eps, 1e-12)
        require_number("method.cfg_scale", m.cfg_scale, 1.0, fix="1 (no guidance) or more, e.g. 2.0")
        require_number("method.time_scale", m.time_scale, 1e-6, 1.0)
        if m.cfg_scale != 1.0 and not (m.conditional and m.label_dropout > 0):
            fail(
                "method.cfg_scale",
                m.cfg_scale,
                "training-time guidance needs a conditional model with method.label_dropout > 0",
                "--config.method.cfg_scale=1.0, or --config.method.label_dropout=0.1",
            )

    def average_velocity(self, params, labels, train: bool = False, key=None):
        """The network as u(z [B, H, W, C], r [B], t [B]) -> [B, H, W, C]: the backbone at (z, s t, s (t - r)),
        s = method.time_scale."""
        net, s = self.network(params, labels, train, key), self.config.method.time_scale
        return lambda z, r, t: net(z, s * t, s * (t - r))

    def per_example_losses(self, params, batch, key, train):
        m = self.config.method
        x0 = self.encode_x0(batch["image"])  # [B, H, W, C] (latents [B, h, w, c] with a first stage)
        b = x0.shape[0]
        k_rt, k_eps, k_drop, k_net = jax.random.split(key, 4)
        r, t = sample_interval(k_rt, b, m.interval_fraction, m.logit_mean, m.logit_std)  # [B] each
        z, v = flow_path(x0, jax.random.normal(k_eps, x0.shape, x0.dtype), t)
        labels, dropped = self.train_labels(batch, k_drop, train)
        if m.cfg_scale != 1.0:  # where the label is kept, the guided velocity w v + (1 - w) u(z, t, t; null label)
            u_null = self.average_velocity(params, jnp.full((b,), self.null_label), train, k_net)(z, t, t)
            guided = m.cfg_scale * v + (1.0 - m.cfg_scale) * jax.lax.stop_gradient(u_null)
            v = jnp.where(dropped[:, None, None, None], v, guided)
        u, target = meanflow_target(self.average_velocity(params, labels, train, k_net), z, r, t, v)
        sq = jnp.sum((u - target) ** 2, axis=(1, 2, 3))  # [B]
        weight = adaptive_weight(sq, m.weight_power, m.weight_eps)
        return {"loss": weight * sq, "mse": sq / (x0[0].size)}

    def draw(self, params, key, noise, labels, steps):
        return meanflow_sample(self.average_velocity(params, labels), noise, steps)
