"""Samplers of the reverse process, by name, and `sample`, the one entry point that runs them.

    spec = SamplingSpec(sampler="unipc", steps=20, guidance=1.5)          # checked once, here
    denoise = make_denoiser(model_fn, schedule, "eps", labels, spec.guidance, null_label, spec.clip_denoised)
    out = sample(denoise, schedule, key, (64, 28, 28, 1), spec)           # out.samples, out.nfe, out.trajectory

Every sampler evaluates the denoiser on a time grid (timegrid.py) that ends at the schedule's t_min, runs its
whole loop inside one `lax.scan` (so `jax.jit` of a call compiles one program whatever the number of steps),
keeps its state in float32 whatever the network computes in, and ends with the data prediction at t_min.
`sampler_table()` lists them (name, network evaluations, default grid) from their `SamplerSpec` records.

NFE counts network evaluations per sample (`SAMPLERS[name].nfe(N)`; `steps_for_nfe` inverts it); a guided call on
a doubled batch counts once. The multi-stage samplers' N counts grid times, between which each step spends its
stages; the last evaluation, at t_min, is the data prediction.
All of them work on every path of schedules.py, variance-preserving or rectified flow (`check_fits` names the
one combination that cannot: euler/heun from t = 1 of the rectified-flow path, where s = sigma / alpha is
infinite). On the rectified-flow path `ddim` is Euler's method in t for dx/dt = u and `midpoint` the midpoint
rule in t, the two textbook flow-matching samplers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jgen.config import InputError, OptionError
from jgen.diffusion import ddim, dpm_solver, edm, midpoint, unipc
from jgen.diffusion.guidance import Denoiser
from jgen.diffusion.inpaint import make_projector
from jgen.diffusion.sampler_core import SAMPLERS, Recorder, SamplerOutput, SamplingSpec
from jgen.diffusion.schedules import Schedule, start_std
from jgen.diffusion.timegrid import check_spacing, starts_at_infinite_noise, time_grid

# The sampler modules: importing each runs its @register_sampler, so SAMPLERS holds every sampler once this module
# is imported. A new sampler is one module and one entry here.
SAMPLER_MODULES = (ddim, dpm_solver, edm, midpoint, unipc)


class Given(NamedTuple):
    """Arrays a draw starts from or must keep, beside the network: each optional, each of the samples' shape."""

    noise: jax.Array | None = None  # the start x_T itself instead of a fresh draw (e.g. codes from ddim_invert)
    known: jax.Array | None = None  # inpainting (spec.inpaint): values kept where mask = 1 (inpaint.py)
    mask: jax.Array | None = None  # 1 = known, 0 = to fill in


def check_start(spec: SamplingSpec, schedule: Schedule) -> None:
    """OptionError for a sampler that works in s = sigma / alpha (euler, heun) on a grid that starts at t = 1 of the
    rectified-flow path, where alpha = 0 and s is infinite: `sample`'s one guard (its result would be NaN)."""
    if SAMPLERS[spec.sampler].noise_level and starts_at_infinite_noise(spec.spacing, spec.steps, schedule):
        raise OptionError(
            "sampler",
            spec.sampler,
            "it works in the noise level s = sigma / alpha, which is infinite at t = 1 of the rectified_flow path, "
            f"where the {spec.spacing!r} grid starts; use it with spacing 'karras' (its default) or 'logsnr_uniform', "
            f"or sample on {spec.spacing!r} with 'ddim' (Euler in t) or 'midpoint'",
            fix={"spacing": "karras"},
        )


def check_fits(spec: SamplingSpec, schedule: Schedule) -> None:
    """OptionError when `spec` cannot run on `schedule` (what a valid spec can still get wrong there): the sampler
    cannot start where the grid does (`check_start`), or a grid of discrete steps is longer than the schedule's T.
    The door (`Method.sampling_spec`) calls it when a request is made, before any work."""
    check_start(spec, schedule)
    check_spacing(spec.spacing, spec.steps, schedule)


def sample(
    denoise: Denoiser,
    schedule: Schedule,
    key: jax.Array,
    shape: Sequence[int],
    spec: SamplingSpec,
    given: Given | None = None,
) -> SamplerOutput:
    """Draw samples [shape] (float32) by running `spec.sampler` with the denoiser (`guidance.make_denoiser`).

    Pure and traceable: jit it with `spec` static to compile the whole loop once per spec. The start is
    x_T ~ N(0, I) times `schedules.start_std` (1 except at the first time of the noise-level grids on the
    rectified-flow path) from the first half of `key`; `given.noise` replaces it, as the state itself. With
    `spec.inpaint`, `given.known` and `given.mask` (1 = known) fill in the unknown region: after every step the known
    region is replaced by `known` noised to the current level (inpaint.py), and the result holds it exactly there.
    """
    given = given or Given()
    shape = tuple(int(s) for s in shape)
    check_start(spec, schedule)  # the grid itself is guarded by time_grid
    if spec.inpaint != (given.known is not None) or (given.known is None) != (given.mask is None):
        raise InputError("inpainting takes spec.inpaint=True with given.known and given.mask; plain sampling neither")
    for name, array in zip(Given._fields, given):
        if array is not None and array.shape != shape:
            raise InputError(f"given.{name} has shape {array.shape}; expected the samples' shape {shape}")
    k_noise, k_loop = jax.random.split(key)
    times = time_grid(schedule, spec.steps, spec.spacing, rho=spec.rho)
    noise = given.noise
    if noise is None:
        noise = start_std(schedule, times[0]) * jax.random.normal(k_noise, shape, jnp.float32)
    rec = Recorder(spec.trajectory_steps, spec.steps + 1)
    extra = {}
    if spec.inpaint:
        k_loop, k_fill = jax.random.split(k_loop)  # only here: plain sampling keeps its keys
        extra["project"] = make_projector(given.known, given.mask, k_fill)
    fn = SAMPLERS[spec.sampler].fn
    x, buf, nfe = fn(denoise, schedule, noise.astype(jnp.float32), k_loop, times, spec, rec, **extra)
    return SamplerOutput(x, nfe, rec.result(buf))


def steps_for_nfe(name: str, nfe: int) -> int:
    """The largest grid (>= 1 time) on which sampler `name` spends at most `nfe` network evaluations."""
    return SAMPLERS[name].steps_for_nfe(nfe)


def sampler_table() -> str:
    """The registered samplers as a Markdown table: name, network evaluations on N grid times, default steps and grid,
    inpainting, what it is."""
    rows = ["| sampler | NFE | default steps | default grid | inpaints | what |", "|---|---|---|---|---|---|"]
    for name in sorted(SAMPLERS):
        r = SAMPLERS[name]
        nfe = "N" if r.stages == 1 else f"{r.stages}N - {r.stages - 1}"
        rows.append(f"| `{name}` | {nfe} | {r.steps} | {r.spacing} | {'yes' if r.inpaint else ''} | {r.about} |")
    return "\n".join(rows)


__all__ = ["Given", "SAMPLERS", "SamplerOutput", "SamplingSpec", "check_fits", "check_start", "sample", "sampler_table"]
