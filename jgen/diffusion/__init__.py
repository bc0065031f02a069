"""Diffusion: schedules and the forward process, parameterisations, guidance, samplers, inversion, likelihood.

Pure functions of arrays and keys. The diffusion Method (jgen/methods/diffusion.py) composes them; images are
generated through `jgen.sampling.generate`, like every other family's.
"""

from __future__ import annotations

from jgen.diffusion.guidance import make_denoiser
from jgen.diffusion.inversion import ddim_invert
from jgen.diffusion.likelihood import LikelihoodOutput, ode_likelihood
from jgen.diffusion.samplers import (
    DEFAULT_SPACING,
    DEFAULT_STEPS,
    SAMPLERS,
    SamplerOutput,
    register_sampler,
    sample,
    sampler_names,
    sampler_options,
)
from jgen.diffusion.schedules import (
    Schedule,
    alpha_sigma,
    cosine_schedule,
    linear_schedule,
    log_snr,
    make_schedule,
    q_sample,
)
from jgen.diffusion.timegrid import SPACINGS, time_grid

__all__ = [
    "Schedule",
    "linear_schedule",
    "cosine_schedule",
    "make_schedule",
    "alpha_sigma",
    "log_snr",
    "q_sample",
    "time_grid",
    "SPACINGS",
    "make_denoiser",
    "sample",
    "sampler_options",
    "SamplerOutput",
    "SAMPLERS",
    "DEFAULT_STEPS",
    "DEFAULT_SPACING",
    "register_sampler",
    "sampler_names",
    "ddim_invert",
    "ode_likelihood",
    "LikelihoodOutput",
]
