"""One adversarial update, shared by the image GAN method and the toy experiments: a pure function of params.

`n_critic` discriminator updates on the same real batch (fresh latents each), then one generator update against
the updated discriminator. Penalties: WGAN-GP for loss "wgan_gp" (weight gp_weight), R1 on real data for any
loss when r1_gamma > 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jgen.gan.losses import discriminator_loss, generator_loss, gradient_penalty, r1_penalty


@dataclasses.dataclass(frozen=True)
class Players:
    generate: Callable[[Any, jax.Array], jax.Array]  # (g_params, z [B, latent]) -> x [B, ...]
    discriminate: Callable[[Any, jax.Array], jax.Array]  # (d_params, x [B, ...]) -> logits [B]
    tx_g: optax.GradientTransformation
    tx_d: optax.GradientTransformation
    loss: str
    latent_dim: int
    n_critic: int = 1
    gp_weight: float = 10.0
    r1_gamma: float = 0.0

    def latents(self, key: jax.Array, num: int) -> jax.Array:
        return jax.random.normal(key, (num, self.latent_dim))  # [num, latent]


def discriminator_objective(p: Players, d_params, g_params, real: jax.Array, key: jax.Array):
    """(mean D loss with penalties, {d_real, d_fake}: mean sigmoid of the logits on real and generated data)."""
    k_z, k_gp = jax.random.split(key)
    fake = jax.lax.stop_gradient(p.generate(g_params, p.latents(k_z, real.shape[0])))
    r, f = p.discriminate(d_params, real), p.discriminate(d_params, fake)
    loss = jnp.mean(discriminator_loss(p.loss, r, f))
    d_fn = lambda x: p.discriminate(d_params, x)  # noqa: E731
    if p.loss == "wgan_gp":
        loss = loss + p.gp_weight * jnp.mean(gradient_penalty(d_fn, real, fake, k_gp))
    if p.r1_gamma > 0:
        loss = loss + p.r1_gamma * jnp.mean(r1_penalty(d_fn, real))
    return loss, {"d_real": jnp.mean(jax.nn.sigmoid(r)), "d_fake": jnp.mean(jax.nn.sigmoid(f))}


def generator_objective(p: Players, g_params, d_params, key: jax.Array, num: int) -> jax.Array:
    fake = p.generate(g_params, p.latents(key, num))
    return jnp.mean(generator_loss(p.loss, p.discriminate(d_params, fake)))


def adversarial_update(p: Players, params: dict, opt_state: dict, real: jax.Array, key: jax.Array):
    """params / opt_state: {"generator": ..., "discriminator": ...} -> (params, opt_state, metrics).

    metrics: d_loss, d_real, d_fake, d_grad_norm (of the last critic update, measured before it is applied),
    g_loss, g_grad_norm.
    """
    g_params = params["generator"]
    k_d, k_g = jax.random.split(key)

    def critic_step(carry, i):
        d_params, d_opt = carry
        (loss, aux), grads = jax.value_and_grad(discriminator_objective, argnums=1, has_aux=True)(
            p, d_params, g_params, real, jax.random.fold_in(k_d, i)
        )
        updates, d_opt = p.tx_d.update(grads, d_opt, d_params)
        return (optax.apply_updates(d_params, updates), d_opt), {
            "d_loss": loss,
            "d_grad_norm": optax.tree.norm(grads),
            **aux,
        }

    (d_params, d_opt), d_metrics = jax.lax.scan(
        critic_step, (params["discriminator"], opt_state["discriminator"]), jnp.arange(p.n_critic)
    )
    d_metrics = jax.tree.map(lambda v: v[-1], d_metrics)

    g_loss, g_grads = jax.value_and_grad(generator_objective, argnums=1)(p, g_params, d_params, k_g, real.shape[0])
    g_updates, g_opt = p.tx_g.update(g_grads, opt_state["generator"], g_params)
    g_params = optax.apply_updates(g_params, g_updates)
    metrics = {"g_loss": g_loss, "g_grad_norm": optax.tree.norm(g_grads), **d_metrics}
    return ({"generator": g_params, "discriminator": d_params}, {"generator": g_opt, "discriminator": d_opt}, metrics)
