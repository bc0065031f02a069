"""Classifier-free guidance: one denoiser x -> (x0_hat, eps_hat) built from a class-conditional network.

Convention (Ho & Salimans 2022, written so that the scale reads as a dial):
    eps_guided = eps_uncond + w * (eps_cond - eps_uncond)
  w = 0: unconditional sampling (the null label only; one network pass)
  w = 1: plain conditional sampling (the labels only; one network pass)
  w > 1: extrapolated past the conditional model (stronger class adherence, less diversity)
For 0 < w != 1 the conditional and unconditional predictions come from ONE network call on a doubled batch.
The combination is the same in eps, x0, v, flow-velocity or EDM's F space, because at fixed (x_t, t) each is
affine in the other and the weights (1 - w, w) sum to one.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jgen.diffusion.parameterization import Parameterization, check_path, resolve, x0_to_eps
from jgen.diffusion.schedules import Schedule

ModelFn = Callable[[jax.Array, jax.Array, "jax.Array | None"], jax.Array]  # (x [B,...], t [B], labels [B]) -> pred
Denoiser = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def make_denoiser(
    model_fn: ModelFn,
    schedule: Schedule,
    parameterization: str | Parameterization = "eps",
    labels: jax.Array | None = None,
    guidance: float = 1.0,
    null_label: int | None = None,
    clip_denoised: bool = False,
) -> Denoiser:
    """Wrap a network into `denoise(x, t, alpha, sigma) -> (x0_hat, eps_hat)` with t, alpha, sigma scalars, on the
    path of `schedule` (ValueError for a parameterisation that cannot be used there: `path_mismatch`). The network
    is fed what the parameterisation's `net_input` makes of (x, t) (x and t themselves, or EDM's c_in y and
    c_noise) and its output is converted by the record's `to_x0_eps`.

    labels None: unconditional. With `null_label` (a class-conditional network) the network is called with
    that label; without it (an unconditional network) with labels=None. labels [B] must be integer class indices.
    `guidance` (a request's `SamplingSpec.guidance`, checked there) is a Python number: it decides, at trace time,
    how many passes are made.
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

    def denoise(x, t, alpha, sigma):
        x0, eps = record.to_x0_eps(predict(x, t, alpha, sigma, guidance), x, alpha, sigma)
        if clip_denoised:
            x0 = jnp.clip(x0, -1.0, 1.0)
            eps = x0_to_eps(x, x0, alpha, sigma)
        return x0, eps

    return denoise
