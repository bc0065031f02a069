"""Diffusion: schedules and the forward process, parameterisations, guidance, samplers, inversion, likelihood.

Pure functions of arrays and keys. The diffusion Method (jgen/methods/diffusion.py) composes them; images are
generated through `jgen.sampling.generate`, like every other family's.
"""

from __future__ import annotations

from jgen.diffusion.guidance import make_denoiser
from jgen.diffusion.inversion import ddim_invert
from jgen.diffusion.likelihood import LikelihoodOutput, ode_likelihood
from jgen.diffusion.sampler_core import SAMPLERS, SamplerOutput, SamplerSpec, SamplingSpec, register_sampler
from jgen.diffusion.samplers import Given, check_fits, sample, sampler_table
from jgen.diffusion.schedules import SCHEDULES, Schedule, alpha_sigma, log_snr, make_schedule, q_sample
from jgen.diffusion.timegrid import SPACINGS, time_grid

__all__ = [
    "SAMPLERS",
    "SCHEDULES",
    "SPACINGS",
    "Given",
    "LikelihoodOutput",
    "SamplerOutput",
    "SamplerSpec",
    "SamplingSpec",
    "Schedule",
    "alpha_sigma",
    "check_fits",
    "ddim_invert",
    "log_snr",
    "make_denoiser",
    "make_schedule",
    "ode_likelihood",
    "q_sample",
    "register_sampler",
    "sample",
    "sampler_table",
    "time_grid",
]
