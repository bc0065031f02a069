"""GAN objectives as pure functions of discriminator logits, and the gradient penalties.

Every loss returns per-example values [B]; callers take the mean. D(x) = sigmoid(logit) where the loss has a
probabilistic reading. log D = -softplus(-logit) and log(1 - D) = -softplus(logit) keep them finite for any logit.

| kind             | discriminator minimises                  | generator minimises     |
|------------------|------------------------------------------|-------------------------|
| "minimax"        | -log D(x) - log(1 - D(G(z)))             | log(1 - D(G(z)))        |
| "non_saturating" | same as minimax                          | -log D(G(z))            |
| "hinge"          | relu(1 - D(x)) + relu(1 + D(G(z)))       | -D(G(z))                |
| "wgan_gp"        | D(G(z)) - D(x)  (+ gradient penalty)     | -D(G(z))                |

(for hinge and wgan_gp, D(.) is the raw logit / critic value.)
"""

from __future__ import annotations

from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp

LOSSES = ("minimax", "non_saturating", "hinge", "wgan_gp")


def _check(kind: str) -> None:
    if kind not in LOSSES:
        raise ValueError(f"GAN loss {kind!r} is not known; choose one of {LOSSES}")


def discriminator_loss(kind: str, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """Per-example discriminator loss [B] from logits on a real and a generated batch (each [B])."""
    _check(kind)
    chex.assert_equal_shape([real_logits, fake_logits])
    if kind in ("minimax", "non_saturating"):
        return jax.nn.softplus(-real_logits) + jax.nn.softplus(fake_logits)
    if kind == "hinge":
        return jax.nn.relu(1.0 - real_logits) + jax.nn.relu(1.0 + fake_logits)
    return fake_logits - real_logits  # wgan_gp: the critic's Wasserstein estimate, negated


def generator_loss(kind: str, fake_logits: jax.Array) -> jax.Array:
    """Per-example generator loss [B] from the discriminator's logits on generated samples."""
    _check(kind)
    if kind == "minimax":
        return -jax.nn.softplus(fake_logits)  # log(1 - D(G(z))): saturates when D rejects the fakes
    if kind == "non_saturating":
        return jax.nn.softplus(-fake_logits)  # -log D(G(z))
    return -fake_logits


def _input_grads(d_fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """d D(x_i) / d x_i for each example: [B, ...]. d_fn maps [B, ...] -> [B] with examples independent."""
    return jax.grad(lambda v: jnp.sum(d_fn(v)))(x)


def _per_example_sq_norm(g: jax.Array) -> jax.Array:
    return jnp.sum(jnp.square(g).reshape(g.shape[0], -1), axis=1)  # [B]


def gradient_penalty(
    d_fn: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array, key: jax.Array
) -> jax.Array:
    """WGAN-GP (Gulrajani et al. 2017): (||grad D(x_hat)|| - 1)^2 at x_hat = u real + (1 - u) fake, u ~ U(0, 1).

    Per-example values [B]; multiply the mean by the penalty weight (10 in the paper).
    """
    chex.assert_equal_shape([real, fake])
    u = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
    x_hat = u * real + (1.0 - u) * fake
    norm = jnp.sqrt(_per_example_sq_norm(_input_grads(d_fn, x_hat)) + 1e-12)
    return jnp.square(norm - 1.0)


def r1_penalty(d_fn: Callable[[jax.Array], jax.Array], real: jax.Array) -> jax.Array:
    """R1 (Mescheder et al. 2018): 0.5 ||grad_x D(x)||^2 on real data, per example [B]; weight it by gamma."""
    return 0.5 * _per_example_sq_norm(_input_grads(d_fn, real))
