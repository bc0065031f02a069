"""The library's sampling steps in one call for the sampler tests: a network, its parameterisation and the request's
options -> `sample`'s output. What a user does in three lines (SamplingSpec, make_denoiser, sample), kept in one
place so that each test states only what it varies."""

import jax

from jgen.diffusion import Given, SamplingSpec, make_denoiser, sample


def draw(
    fn,
    schedule,
    key: jax.Array,
    shape,
    parameterization: str = "eps",
    labels=None,
    null_label=None,
    noise=None,
    inpaint=None,
    **options,
):
    """`sample` with `SamplingSpec(**options)`, the denoiser of network `fn`, the start `noise` and `inpaint` =
    (known, mask) (each None: not given)."""
    spec = SamplingSpec(**options, inpaint=inpaint is not None)
    denoise = make_denoiser(fn, schedule, parameterization, labels, spec.guidance, null_label, spec.clip_denoised)
    known, mask = (None, None) if inpaint is None else inpaint
    return sample(denoise, schedule, key, shape, spec, Given(noise, known, mask))
