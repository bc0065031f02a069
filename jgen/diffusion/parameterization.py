"""What a denoiser predicts, and conversions between the predictions: one record per parameterisation.

With x_t = alpha x_0 + sigma eps a network may predict
  eps   the noise                     x_0 = (x_t - sigma eps) / alpha
  x0    the clean data                eps = (x_t - alpha x_0) / sigma
  v     alpha eps - sigma x_0         x_0 = alpha x_t - sigma v,  eps = sigma x_t + alpha v  (Salimans & Ho 2022;
                                      variance-preserving paths, alpha^2 + sigma^2 = 1)
  flow  u = eps - x_0, the velocity   x_0 = x_t - sigma u,  eps = x_t + alpha u  (flow matching, Lipman et al.
        dx_t/dt of the rectified-     2023; rectified flow, Liu et al. 2023; the rectified-flow path
        flow path                     alpha = 1 - t, sigma = t, where alpha + sigma = 1)
  edm   F of EDM's preconditioned     D(y; s) = c_skip(s) y + c_out(s) F(c_in(s) y; c_noise(s)) with y = x_t / alpha
        denoiser (Karras et al.       and the noise level s = sigma / alpha (EDM's sigma), Table 1:
        2022)                           c_skip = sd^2 / (s^2 + sd^2),  c_out = s sd / sqrt(s^2 + sd^2),
                                        c_in = 1 / sqrt(s^2 + sd^2),   c_noise = ln(s) / 4      (sd = sigma_data)
and the score of q(x_t) is -eps / sigma. `alpha` and `sigma` broadcast against x (scalars or [B, 1, 1, 1]).

Each parameterisation is a `Parameterization` record in `PARAMETERIZATIONS` (by name; `resolve` turns a name into
the record with its default settings, `from_config` reads a method section's): how the network's inputs are made
from (x_t, t) (`net_input`: the network sees x_t and t, except EDM's, which sees c_in y and c_noise, a continuous
function of the noise level), how its output converts to (x0_hat, eps_hat) (`to_x0_eps`), the regression target
(`target`), the min-SNR weight, and the paths it cannot be used on (`path_mismatch`). The method and the denoiser
call the record and never ask which one it is.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from jgen.diffusion.schedules import RECTIFIED_FLOW, VARIANCE_PRESERVING, Schedule, alpha_sigma, alpha_sigma_at_level

LOSS_WEIGHTINGS = ("none", "min_snr")
SIGMA_DATA = 0.5  # EDM's sigma_data: the data's std it assumes (images in [-1, 1])


@dataclasses.dataclass(frozen=True)
class Parameterization(abc.ABC):
    """What a network predicts (one subclass per name, registered with `@register_parameterization`). Frozen and
    hashable: its settings (EDM's sigma_data) are fields. Every method is a pure function of arrays."""

    name: ClassVar[str] = ""

    @classmethod
    def from_config(cls, method: Any) -> Parameterization:
        """The record with the settings of a `config.method` section (the fields it reads)."""
        return cls()

    def path_mismatch(self, path: str) -> str:
        """Why this parameterisation cannot be used on a schedule with this `path` ('' when it can)."""
        return ""

    def net_input(self, x_t: jax.Array, t: jax.Array, alpha, sigma) -> tuple[jax.Array, jax.Array]:
        """(what the network is fed [B, ...], its conditioning scalar, t's shape) at x_t, t, (alpha, sigma): by
        default x_t and t themselves."""
        return x_t, t

    def undo_net_input(self, x: jax.Array, c: jax.Array, schedule: Schedule) -> tuple[jax.Array, Any, Any]:
        """The inverse of `net_input` on `schedule`: (x_t, alpha, sigma) that a network input (x, c) stands for, c a
        scalar. Exact networks (analytic.py) use it to know the point they are asked about."""
        alpha, sigma = alpha_sigma(schedule, c)
        return x, alpha, sigma

    @abc.abstractmethod
    def to_x0_eps(self, pred: jax.Array, x_t: jax.Array, alpha, sigma) -> tuple[jax.Array, jax.Array]:
        """A network output -> (x0_hat, eps_hat)."""

    @abc.abstractmethod
    def target(self, x0: jax.Array, eps: jax.Array, alpha, sigma) -> jax.Array:
        """(x0, eps) -> what the network should output: the regression target."""

    @abc.abstractmethod
    def min_snr_weight(self, log_snr: jax.Array, clipped: jax.Array, snr: jax.Array) -> jax.Array:
        """The weight on this prediction's squared error that makes it min(SNR, gamma) ||x0_hat - x0||^2
        (`clipped` = min(SNR, gamma))."""


PARAMETERIZATIONS: dict[str, type[Parameterization]] = {}  # by name, filled by @register_parameterization


def register_parameterization(name: str) -> Callable[[type[Parameterization]], type[Parameterization]]:
    def deco(cls: type[Parameterization]) -> type[Parameterization]:
        if name in PARAMETERIZATIONS:
            raise ValueError(f"parameterization {name!r} is registered twice")
        cls.name = name
        PARAMETERIZATIONS[name] = cls
        return cls

    return deco


def resolve(parameterization: str | Parameterization) -> Parameterization:
    """A record as it is, or a name as its record with the default settings (ValueError for an unknown name)."""
    if isinstance(parameterization, Parameterization):
        return parameterization
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization {parameterization!r} is unknown; choose one of {tuple(PARAMETERIZATIONS)}")
    return PARAMETERIZATIONS[parameterization]()


def from_config(method: Any) -> Parameterization:
    """The record `config.method.parameterization` names, with the section's settings (EDM's sigma_data)."""
    return PARAMETERIZATIONS[method.parameterization].from_config(method)


# -- the records -----------------------------------------------------------------------------------------------------


@register_parameterization("eps")
@dataclasses.dataclass(frozen=True)
class Eps(Parameterization):
    """The noise eps (DDPM)."""

    def path_mismatch(self, path):
        if path == RECTIFIED_FLOW:
            return (
                "x0 = (x_t - t eps) / (1 - t) is undefined at t = 1 (alpha = 0), where sampling starts on the "
                "rectified_flow path"
            )
        return ""

    def to_x0_eps(self, pred, x_t, alpha, sigma):
        return eps_to_x0(x_t, pred, alpha, sigma), pred

    def target(self, x0, eps, alpha, sigma):
        return eps

    def min_snr_weight(self, log_snr, clipped, snr):
        return clipped / snr


@register_parameterization("x0")
@dataclasses.dataclass(frozen=True)
class X0(Parameterization):
    """The clean data x0."""

    def to_x0_eps(self, pred, x_t, alpha, sigma):
        return pred, x0_to_eps(x_t, pred, alpha, sigma)

    def target(self, x0, eps, alpha, sigma):
        return x0

    def min_snr_weight(self, log_snr, clipped, snr):
        return clipped


@register_parameterization("v")
@dataclasses.dataclass(frozen=True)
class V(Parameterization):
    """v = alpha eps - sigma x0 (Salimans & Ho 2022)."""

    def path_mismatch(self, path):
        if path != VARIANCE_PRESERVING:
            return "v = alpha eps - sigma x0 converts back to x0 and eps only where alpha^2 + sigma^2 = 1"
        return ""

    def to_x0_eps(self, pred, x_t, alpha, sigma):
        return alpha * x_t - sigma * pred, sigma * x_t + alpha * pred

    def target(self, x0, eps, alpha, sigma):
        return v_target(x0, eps, alpha, sigma)

    def min_snr_weight(self, log_snr, clipped, snr):
        return clipped / (snr + 1.0)


@register_parameterization("flow")
@dataclasses.dataclass(frozen=True)
class Flow(Parameterization):
    """The rectified-flow velocity u = eps - x0."""

    def path_mismatch(self, path):
        if path != RECTIFIED_FLOW:
            return (
                "the flow velocity u = eps - x0 is the velocity of the rectified_flow path x_t = (1 - t) x0 + t eps; "
                "its conversions need alpha + sigma = 1"
            )
        return ""

    def to_x0_eps(self, pred, x_t, alpha, sigma):
        return x_t - sigma * pred, x_t + alpha * pred

    def target(self, x0, eps, alpha, sigma):
        return eps - x0

    def min_snr_weight(self, log_snr, clipped, snr):
        # x0 error = sigma u error, sigma = sigmoid(-log SNR / 2) on the rectified-flow path
        return clipped * jax.nn.sigmoid(-0.5 * log_snr) ** 2


@register_parameterization("edm")
@dataclasses.dataclass(frozen=True)
class EDM(Parameterization):
    """EDM's preconditioned denoiser (Karras et al. 2022, Table 1) around any network F.

    In EDM's variables y = x_t / alpha = x0 + s eps and s = sigma / alpha (the noise level; any path's y and s are
    those of EDM's variance-exploding process), D(y; s) = c_skip y + c_out F(c_in y; c_noise) with the coefficients
    of `coefficients`. The network is fed c_in y, of unit variance for data of std sigma_data, and conditioned on
    c_noise = ln(s) / 4 (continuous in the noise level, whatever the time grid). Its regression target is
    F* = (x0 - c_skip y) / c_out, and the unit-weighted squared error on F is EDM's loss: ||F - F*||^2 =
    lambda(s) ||D - x0||^2 with lambda(s) = 1 / c_out^2 = (s^2 + sd^2) / (s sd)^2.
    The conversions are written in (alpha, sigma) with r = sqrt(sigma^2 + alpha^2 sd^2) = alpha / c_in, so that
    nothing divides by alpha or sigma:
        net input  x_t / r                              c_noise   (ln sigma - ln alpha) / 4
        x0_hat     alpha sd^2 x_t / r^2 + sigma sd F / r  eps_hat  sigma x_t / r^2 - alpha sd F / r
        target     F* = (sigma x0 - alpha sd^2 eps) / (sd r)
    """

    sigma_data: float = SIGMA_DATA

    @classmethod
    def from_config(cls, method):
        return cls(sigma_data=float(method.sigma_data))

    def coefficients(self, s: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """(c_skip, c_out, c_in, c_noise) at noise levels s (Table 1's EDM column)."""
        sd2 = self.sigma_data**2
        return (
            sd2 / (s**2 + sd2),
            s * self.sigma_data * jax.lax.rsqrt(s**2 + sd2),
            jax.lax.rsqrt(s**2 + sd2),
            (jnp.log(s) / 4.0),
        )

    def loss_weight_on_denoiser(self, s: jax.Array) -> jax.Array:
        """EDM's lambda(s) = (s^2 + sd^2) / (s sd)^2: the weight on ||D - x0||^2 equal to unit weight on F's error."""
        return (s**2 + self.sigma_data**2) / (s * self.sigma_data) ** 2

    def path_mismatch(self, path):
        if path == RECTIFIED_FLOW:
            return (
                "its conditioning c_noise = ln(sigma / alpha) / 4 is infinite at t = 1 of the rectified_flow path "
                "(alpha = 0), where the time grids start; EDM's noise levels are the same on every path"
            )
        return ""

    def _r(self, alpha, sigma):
        return jnp.sqrt(sigma**2 + (alpha * self.sigma_data) ** 2)

    def net_input(self, x_t, t, alpha, sigma):
        c_noise = (jnp.log(sigma) - jnp.log(alpha)) / 4.0  # [] or [B, 1, ...] like alpha -> t's shape
        c_noise = jnp.broadcast_to(jnp.reshape(c_noise, jnp.shape(c_noise)[: jnp.ndim(t)]), jnp.shape(t))
        return x_t / self._r(alpha, sigma), c_noise

    def undo_net_input(self, x, c, schedule):
        alpha, sigma = alpha_sigma_at_level(schedule, jnp.exp(4.0 * c))
        return x * self._r(alpha, sigma), alpha, sigma

    def to_x0_eps(self, pred, x_t, alpha, sigma):
        sd, r = self.sigma_data, self._r(alpha, sigma)
        return alpha * sd**2 * x_t / r**2 + sigma * sd * pred / r, sigma * x_t / r**2 - alpha * sd * pred / r

    def target(self, x0, eps, alpha, sigma):
        return (sigma * x0 - alpha * self.sigma_data**2 * eps) / (self.sigma_data * self._r(alpha, sigma))

    def min_snr_weight(self, log_snr, clipped, snr):
        # x0 error = c_out F error, c_out^2 = s^2 sd^2 / (s^2 + sd^2) with s^2 = 1 / SNR
        sd2 = self.sigma_data**2
        return clipped * sd2 / (1.0 + sd2 * snr)


# -- the functional interface: a name (default settings) or a record ----------------------------------------------


def path_mismatch(parameterization: str | Parameterization, path: str) -> str:
    """Why `parameterization` cannot be used on a schedule with this `path` ('' when it can)."""
    return resolve(parameterization).path_mismatch(path)


def check_path(parameterization: str | Parameterization, path: str) -> None:
    """Raise ValueError when `parameterization` is unknown or cannot be used on `path` (see `path_mismatch`)."""
    record = resolve(parameterization)
    why = record.path_mismatch(path)
    if why:
        raise ValueError(f"parameterization {record.name!r} cannot be used on the {path} path: {why}")


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


def to_x0_eps(
    pred: jax.Array, x_t: jax.Array, alpha, sigma, parameterization: str | Parameterization
) -> tuple[jax.Array, jax.Array]:
    """A network output in `parameterization` -> (x0_hat, eps_hat)."""
    return resolve(parameterization).to_x0_eps(pred, x_t, alpha, sigma)


def from_x0_eps(x0: jax.Array, eps: jax.Array, alpha, sigma, parameterization: str | Parameterization) -> jax.Array:
    """(x0, eps) -> what a network in `parameterization` should output: the regression target."""
    return resolve(parameterization).target(x0, eps, alpha, sigma)


def loss_weight(
    log_snr: jax.Array, parameterization: str | Parameterization, weighting: str, gamma: float = 5.0
) -> jax.Array:
    """Per-example weight on the squared error of the prediction.

    'none': 1 (the "simple" loss of DDPM in the chosen parameterisation; for `edm` EDM's own loss, lambda(s) on
    the denoiser's error).
    'min_snr': min-SNR-gamma (Hang et al. 2023): the loss equals min(SNR, gamma) * ||x0_hat - x0||^2, so
    the weight on the eps error is min(SNR, gamma) / SNR, on the v error min(SNR, gamma) / (SNR + 1), on
    the x0 error min(SNR, gamma), on the flow error min(SNR, gamma) sigma^2 (x0 error = sigma u error), with
    sigma = sigmoid(-log SNR / 2) on the rectified-flow path, where the flow parameterisation lives, and on EDM's
    F error min(SNR, gamma) c_out^2.
    """
    if weighting == "none":
        return jnp.ones_like(log_snr)
    if weighting != "min_snr":
        raise ValueError(f"loss weighting {weighting!r} is unknown; choose one of {LOSS_WEIGHTINGS}")
    snr = jnp.exp(log_snr)
    return resolve(parameterization).min_snr_weight(log_snr, jnp.minimum(snr, gamma), snr)
