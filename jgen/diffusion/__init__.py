"""Diffusion: schedules and the forward process, parameterisations, guidance, samplers, inversion.

Pure functions of arrays and keys. The diffusion Method (jgen/methods/diffusion.py) composes them; images are
generated through `jgen.sampling.generate`, like every other family's.
"""

from __future__ import annotations

from jgen.diffusion.guidance import make_denoiser
from jgen.diffusion.inversion import ddim_invert
from jgen.diffusion.samplers import DEFAULT_STEPS, SAMPLERS, SamplerOutput, register_sampler, sample, sampler_names
from jgen.diffusion.schedules import (Schedule, alpha_sigma, cosine_schedule, linear_schedule, log_snr,
                                      make_schedule, q_sample, sampling_times)

__all__ = ["Schedule", "linear_schedule", "cosine_schedule", "make_schedule", "alpha_sigma", "log_snr", "q_sample",
           "sampling_times", "make_denoiser", "sample", "SamplerOutput", "SAMPLERS", "DEFAULT_STEPS",
           "register_sampler", "sampler_names", "ddim_invert"]
