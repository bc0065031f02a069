"""Diffusion: schedules and the forward process, parameterisations, guidance, samplers, inversion.

    from jgen.diffusion import sample_images
    images, nfe = sample_images(method, state.ema_params, state.model_state, key, num=16,
                                labels=jnp.arange(16) % 10, sampler="dpm_solver", steps=20, guidance=2.0)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion.guidance import make_denoiser
from jgen.diffusion.inversion import ddim_invert
from jgen.diffusion.samplers import (DEFAULT_SPACING, DEFAULT_STEPS, SAMPLERS, SamplerOutput, register_sampler, sample,
                                     sampler_names, sampler_options)
from jgen.diffusion.schedules import (Schedule, alpha_sigma, cosine_schedule, linear_schedule, log_snr,
                                      make_schedule, q_sample)
from jgen.diffusion.timegrid import SPACINGS, time_grid


def sample_images(method, params, model_state, key: jax.Array, num: int, labels=None, sampler: str | None = None,
                  steps: int | None = None, guidance: float | None = None,
                  eta: float = 0.0) -> tuple[jax.Array, int]:
    """(images float32 [num, H, W, C] in [0, 1], network evaluations per image) from a diffusion Method.

    `labels`: None (unconditional) or `num` ints in [0, method.num_classes). sampler/steps/guidance None take the
    config's values. Checks its arguments on the host, then runs one jit-compiled sampling program (cached per
    static setting on the method).
    """
    if not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"num={num!r}: must be an integer >= 1")
    if sampler is not None and sampler not in SAMPLERS:
        raise ValueError(f"sampler {sampler!r} is unknown; choose one of {sampler_names()}")
    if steps is not None and (not isinstance(steps, (int, np.integer)) or steps < 1):
        raise ValueError(f"steps={steps!r}: must be an integer >= 1")
    if guidance is not None and not guidance >= 0:
        raise ValueError(f"guidance={guidance!r}: must be >= 0 (0: unconditional, 1: conditional, >1: guided)")
    if labels is not None:
        labels = np.asarray(labels)
        if method.num_classes == 0:
            raise ValueError("this model is unconditional: call sample_images with labels=None")
        if labels.shape != (num,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be {num} integers (one per image); got {labels.dtype} {labels.shape}")
        if labels.min() < 0 or labels.max() >= method.num_classes:
            raise ValueError(f"labels must be in [0, {method.num_classes - 1}]; got min {labels.min()}, "
                             f"max {labels.max()}")
        labels = jnp.asarray(labels, jnp.int32)
    static = (int(num), labels is None, sampler, steps, None if guidance is None else float(guidance), float(eta))

    def run(params, model_state, key, labels):
        return method.generate(params, model_state, key, int(num), labels, sampler, steps, static[4], float(eta))
    images, nfe = method.jitted(("sample_images", *static), run)(params, model_state, key, labels)
    return images, int(nfe)


__all__ = ["Schedule", "linear_schedule", "cosine_schedule", "make_schedule", "alpha_sigma", "log_snr", "q_sample",
           "time_grid", "SPACINGS", "make_denoiser", "sample", "sampler_options", "SamplerOutput", "SAMPLERS",
           "DEFAULT_STEPS", "DEFAULT_SPACING", "register_sampler", "sampler_names", "ddim_invert", "sample_images"]
