"""What a denoiser predicts, and conversions between the predictions.

With x_t = alpha x_0 + sigma eps a network may predict
  eps   the noise                     x_0 = (x_t - sigma eps) / alpha
  x0    the clean data                eps = (x_t - alpha x_0) / sigma
  v     alpha eps - sigma x_0         x_0 = alpha x_t - sigma v,  eps = sigma x_t + alpha v  (Salimans & Ho 2022;
                                      variance-preserving paths, alpha^2 + sigma^2 = 1)
  flow  u = eps - x_0, the velocity   x_0 = x_t - sigma u,  eps = x_t + alpha u  (flow matching, Lipman et al.
        dx_t/dt of the rectified-     2023; rectified flow, Liu et al. 2023; the rectified-flow path
        flow path                     alpha = 1 - t, sigma = t, where alpha + sigma = 1)
and the score of q(x_t) is -eps / sigma. `alpha` and `sigma` broadcast against x (scalars or [B, 1, 1, 1]).
`path_mismatch` says which parameterisation cannot be used on which path.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jgen.diffusion.schedules import RECTIFIED_FLOW, VARIANCE_PRESERVING

PARAMETERIZATIONS = ("eps", "x0", "v", "flow")
LOSS_WEIGHTINGS = ("none", "min_snr")


def path_mismatch(parameterization: str, path: str) -> str:
    """Why `parameterization` cannot be used on a schedule with this `path` ('' when it can)."""
    if parameterization == "flow" and path != RECTIFIED_FLOW:
        return (
            "the flow velocity u = eps - x0 is the velocity of the rectified_flow path x_t = (1 - t) x0 + t eps; "
            "its conversions need alpha + sigma = 1"
        )
    if parameterization == "v" and path != VARIANCE_PRESERVING:
        return "v = alpha eps - sigma x0 converts back to x0 and eps only where alpha^2 + sigma^2 = 1"
    if parameterization == "eps" and path == RECTIFIED_FLOW:
        return (
            "x0 = (x_t - t eps) / (1 - t) is undefined at t = 1 (alpha = 0), where sampling starts on the "
            "rectified_flow path"
        )
    return ""


def check_path(parameterization: str, path: str) -> None:
    """Raise ValueError when `parameterization` is unknown or cannot be used on `path` (see `path_mismatch`)."""
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization {parameterization!r} is unknown; choose one of {PARAMETERIZATIONS}")
    why = path_mismatch(parameterization, path)
    if why:
        raise ValueError(f"parameterization {parameterization!r} cannot be used on the {path} path: {why}")


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
    if parameterization == "flow":
        return x_t - sigma * pred, x_t + alpha * pred
    raise ValueError(f"parameterization {parameterization!r} is unknown; choose one of {PARAMETERIZATIONS}")


def from_x0_eps(x0: jax.Array, eps: jax.Array, alpha, sigma, parameterization: str) -> jax.Array:
    """(x0, eps) -> what a network in `parameterization` should output: the regression target."""
    if parameterization == "eps":
        return eps
    if parameterization == "x0":
        return x0
    if parameterization == "v":
        return v_target(x0, eps, alpha, sigma)
    if parameterization == "flow":
        return eps - x0
    raise ValueError(f"parameterization {parameterization!r} is unknown; choose one of {PARAMETERIZATIONS}")


def loss_weight(log_snr: jax.Array, parameterization: str, weighting: str, gamma: float = 5.0) -> jax.Array:
    """Per-example weight on the squared error of the prediction.

    'none': 1 (the "simple" loss of DDPM in the chosen parameterisation).
    'min_snr': min-SNR-gamma (Hang et al. 2023): the loss equals min(SNR, gamma) * ||x0_hat - x0||^2, so
    the weight on the eps error is min(SNR, gamma) / SNR, on the v error min(SNR, gamma) / (SNR + 1), on
    the x0 error min(SNR, gamma), and on the flow error min(SNR, gamma) sigma^2 (x0 error = sigma u error), with
    sigma = sigmoid(-log SNR / 2) on the rectified-flow path, where the flow parameterisation lives.
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
    if parameterization == "flow":
        return clipped * jax.nn.sigmoid(-0.5 * log_snr) ** 2
    raise ValueError(f"parameterization {parameterization!r} is unknown; choose one of {PARAMETERIZATIONS}")
