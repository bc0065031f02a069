"""What a denoiser predicts, and conversions between the predictions.

With x_t = alpha x_0 + sigma eps (alpha^2 + sigma^2 = 1) a network may predict
  eps  the noise                      x_0 = (x_t - sigma eps) / alpha
  x0   the clean data                 eps = (x_t - alpha x_0) / sigma
  v    alpha eps - sigma x_0          x_0 = alpha x_t - sigma v,  eps = sigma x_t + alpha v  (Salimans & Ho 2022)
and the score of q(x_t) is -eps / sigma. `alpha` and `sigma` broadcast against x (scalars or [B, 1, 1, 1]).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PARAMETERIZATIONS = ("eps", "x0", "v")
LOSS_WEIGHTINGS = ("none", "min_snr")


def check_parameterization(name: str) -> None:
    if name not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization {name!r} is unknown; choose one of {PARAMETERIZATIONS}")


def eps_to_x0(x_t: jax.Array, eps: jax.Array, alpha, sigma) -> jax.Array:
    return (x_t - sigma * eps) / alpha


def x0_to_eps(x_t: jax.Array, x0: jax.Array, alpha, sigma) -> jax.Array:
    return (x_t - alpha * x0) / sigma


def v_target(x0: jax.Array, eps: jax.Array, alpha, sigma) -> jax.Array:
    return alpha * eps - sigma * x0


def eps_to_score(eps: jax.Array, sigma) -> jax.Array:
    """grad_x log q_t(x) = -eps / sigma."""
    return -eps / sigma


def score_to_eps(score: jax.Array, sigma) -> jax.Array:
    return -sigma * score


def to_x0_eps(pred: jax.Array, x_t: jax.Array, alpha, sigma, parameterization: str) -> tuple[jax.Array, jax.Array]:
    """A network output in `parameterization` -> (x0_hat, eps_hat)."""
    if parameterization == "eps":
        return eps_to_x0(x_t, pred, alpha, sigma), pred
    if parameterization == "x0":
        return pred, x0_to_eps(x_t, pred, alpha, sigma)
    if parameterization == "v":
        return alpha * x_t - sigma * pred, sigma * x_t + alpha * pred
    raise ValueError(f"parameterization {parameterization!r} is unknown; choose one of {PARAMETERIZATIONS}")


def from_x0_eps(x0: jax.Array, eps: jax.Array, alpha, sigma, parameterization: str) -> jax.Array:
    """(x0, eps) -> what a network in `parameterization` should output: the regression target."""
    if parameterization == "eps":
        return eps
    if parameterization == "x0":
        return x0
    if parameterization == "v":
        return v_target(x0, eps, alpha, sigma)
    raise ValueError(f"parameterization {parameterization!r} is unknown; choose one of {PARAMETERIZATIONS}")


def loss_weight(log_snr: jax.Array, parameterization: str, weighting: str, gamma: float = 5.0) -> jax.Array:
    """Per-example weight on the squared error of the prediction.

    'none': 1 (the "simple" loss of DDPM in the chosen parameterisation).
    'min_snr': min-SNR-gamma (Hang et al. 2023): the loss equals min(SNR, gamma) * ||x0_hat - x0||^2, so
    the weight on the eps error is min(SNR, gamma) / SNR, on the v error min(SNR, gamma) / (SNR + 1) and on
    the x0 error min(SNR, gamma).
    """
    if weighting == "none":
        return jnp.ones_like(log_snr)
    if weighting != "min_snr":
        raise ValueError(f"loss weighting {weighting!r} is unknown; choose one of {LOSS_WEIGHTINGS}")
    snr = jnp.exp(log_snr)
    clipped = jnp.minimum(snr, gamma)
    if parameterization == "eps":
        return clipped / snr
    if parameterization == "v":
        return clipped / (snr + 1.0)
    if parameterization == "x0":
        return clipped
    raise ValueError(f"parameterization {parameterization!r} is unknown; choose one of {PARAMETERIZATIONS}")
