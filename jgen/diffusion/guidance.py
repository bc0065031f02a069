"""Guidance: one denoiser x -> (x0_hat, eps_hat) built from a network, with classifier-free guidance, autoguidance
and the guidance interval.

Classifier-free guidance (Ho & Salimans 2022, written so that the scale reads as a dial):
    eps_guided = eps_uncond + w * (eps_cond - eps_uncond)
  w = 0: unconditional sampling (the null label only; one network pass)
  w = 1: plain conditional sampling (the labels only; one network pass)
  w > 1: extrapolated past the conditional model (stronger class adherence, less diversity)
For 0 < w != 1 the conditional and unconditional predictions come from ONE network call on a doubled batch.
The combination is the same in eps, x0, v, flow-velocity or EDM's F space, because at fixed (x_t, t) each is
affine in the other and the weights (1 - w, w) sum to one.

Autoguidance (Karras et al. 2024) guides with a weaker version of the same model instead of the unconditional one:
    D = D_guide + w (D_main - D_guide),
both conditioned on the same labels (or both unconditional); `guide` is the guiding model's own denoiser (its own
parameterisation, the same schedule), and the combination is made on (x0_hat, eps_hat). With the guide equal to the
main model it is the main model exactly, whatever w.

The guidance interval (Kynkaenniemi et al. 2024) applies the guidance only at noise levels s in (s_lo, s_hi], with s
= sigma / alpha (EDM's sigma, the paper's variable; the same on every path); outside it the denoiser is the plain
(unguided) model, computed alone. With no interval (None) the guidance applies everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jgen.diffusion.parameterization import Parameterization, check_path, resolve, x0_to_eps
from jgen.diffusion.schedules import Schedule

ModelFn = Callable[[jax.Array, jax.Array, "jax.Array | None"], jax.Array]  # (x [B,...], t [B], labels [B]) -> pred
Denoiser = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def in_interval(alpha, sigma, interval: tuple[float, float]) -> jax.Array:
    """Whether the noise level s = sigma / alpha lies in (lo, hi] (a bool array; s = inf where alpha = 0)."""
    s = sigma / alpha
    return (s > interval[0]) & (s <= interval[1])


def make_denoiser(
    model_fn: ModelFn,
    schedule: Schedule,
    parameterization: str | Parameterization = "eps",
    labels: jax.Array | None = None,
    guidance: float = 1.0,
    null_label: int | None = None,
    clip_denoised: bool = False,
    guidance_interval: tuple[float, float] | None = None,
    guide: Denoiser | None = None,
) -> Denoiser:
    """Wrap a network into `denoise(x, t, alpha, sigma) -> (x0_hat, eps_hat)` with t, alpha, sigma scalars, on the
    path of `schedule` (ValueError for a parameterisation that cannot be used there: `path_mismatch`). The network
    is fed what the parameterisation's `net_input` makes of (x, t) (x and t themselves, or EDM's c_in y and
    c_noise) and its output is converted by the record's `to_x0_eps`.

    labels None: unconditional. With `null_label` (a class-conditional network) the network is called with
    that label; without it (an unconditional network) with labels=None. labels [B] must be integer class indices.
    `guidance` (a request's `SamplingSpec.guidance`, checked there) is a Python number: it decides, at trace time,
    how many passes are made. With `guide` (autoguidance: the guiding model's unclipped denoiser, conditioned on the
    same labels) it weighs the main model against the guide instead of the conditional against the unconditional
    model. `guidance_interval` (s_lo, s_hi): the guidance applies only where s = sigma / alpha is in (s_lo, s_hi]
    (None: everywhere); outside it the plain model runs alone (`jax.lax.cond`).
    `clip_denoised`: clip x0_hat to [-1, 1] (data in the model range) and recompute eps_hat to match.
    """
    record = resolve(parameterization)
    check_path(record, schedule.path)
    guidance = float(guidance)
    if labels is not None and null_label is None:
        raise ValueError("labels were given but the model has no null label: it is not class-conditional")
    if labels is not None and not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise ValueError(f"labels must be integer class indices; got dtype {jnp.result_type(labels)}")

    def call(x, t, alpha, sigma, lab):  # a bfloat16 network's prediction is combined and solved with in float32
        x_in, c = record.net_input(x, t, alpha, sigma)
        return model_fn(x_in, jnp.full((x.shape[0],), c, jnp.float32), lab).astype(jnp.float32)

    def predict(x, t, alpha, sigma, w: float):  # the network's output, classifier-free guided with scale w
        if labels is not None and labels.shape != (x.shape[0],):
            raise ValueError(f"labels have shape {labels.shape}; expected ({x.shape[0]},), one label per sample")
        if labels is None or w == 0.0:
            null = None if null_label is None else jnp.full((x.shape[0],), null_label, jnp.int32)
            return call(x, t, alpha, sigma, null)
        if w == 1.0:
            return call(x, t, alpha, sigma, labels)
        null = jnp.full_like(labels, null_label)
        both = call(jnp.concatenate([x, x]), t, alpha, sigma, jnp.concatenate([labels, null]))  # one pass, [2B, ...]
        cond, uncond = jnp.split(both, 2)
        return uncond + w * (cond - uncond)

    def plain(x, t, alpha, sigma):  # the unguided model: conditional on the labels, if any
        return record.to_x0_eps(predict(x, t, alpha, sigma, 1.0), x, alpha, sigma)

    def guided(x, t, alpha, sigma):
        if guide is None:
            return record.to_x0_eps(predict(x, t, alpha, sigma, guidance), x, alpha, sigma)
        if guidance == 1.0:  # the main model alone, one pass
            return plain(x, t, alpha, sigma)
        x0_m, eps_m = plain(x, t, alpha, sigma)
        x0_g, eps_g = guide(x, t, alpha, sigma)
        return x0_g + guidance * (x0_m - x0_g), eps_g + guidance * (eps_m - eps_g)

    def denoise(x, t, alpha, sigma):
        if guidance_interval is None:
            x0, eps = guided(x, t, alpha, sigma)
        else:
            x0, eps = jax.lax.cond(in_interval(alpha, sigma, guidance_interval), guided, plain, x, t, alpha, sigma)
        if clip_denoised:
            x0 = jnp.clip(x0, -1.0, 1.0)
            eps = x0_to_eps(x, x0, alpha, sigma)
        return x0, eps

    return denoise
