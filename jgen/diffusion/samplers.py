"""Samplers of the reverse process, by name: ddpm, ddim, dpm_solver (DPM-Solver++ 2M), heun (EDM).

Every sampler runs its whole loop inside `lax.scan`, so `jax.jit` of a call compiles one program whatever the
number of steps. A sampler takes a denoiser (x, t, alpha, sigma) -> (x0_hat, eps_hat) (see guidance.py), the
schedule, the starting noise x_T (at t = 1) and a key, and ends with a final jump to clean data (alpha = 1,
sigma = 0) using the last x0 prediction.

Network evaluations (NFE, one per denoiser call; a guided call on a doubled batch counts once):
  ddpm        N            ancestral sampling with the posterior variance (DDIM with eta = 1)
  ddim        N            eta = 0 deterministic (the probability-flow ODE, first order), eta = 1 = ddpm
  dpm_solver  N            DPM-Solver++(2M) (Lu et al. 2022), data prediction, multistep, first order at the ends
  heun        2N - 1       EDM Heun (Karras et al. 2022, Alg. 1, no churn), Karras noise levels, Euler last step
`trajectory_steps` picks states to keep: 0 is x_T, k the state after k steps, N the final sample.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion.guidance import Denoiser, ModelFn, make_denoiser
from jgen.diffusion.schedules import Schedule, alpha_sigma, karras_times, sampling_times

DEFAULT_STEPS = {"ddpm": 1000, "ddim": 50, "dpm_solver": 20, "heun": 18}


class SamplerOutput(NamedTuple):
    samples: jax.Array            # [B, ...] in the model's data space
    nfe: int                      # network evaluations per sample
    trajectory: jax.Array | None  # [K, B, ...] states at the requested trajectory_steps, or None


class _Recorder:
    """Keeps the states x_k (k = 0..num_states-1) named in `steps` in a buffer carried through a scan."""

    def __init__(self, steps: Sequence[int], num_states: int):
        steps = [int(s) for s in steps]
        bad = [s for s in steps if not 0 <= s < num_states]
        if bad:
            raise ValueError(f"trajectory_steps {bad} out of range: allowed 0..{num_states - 1} "
                             f"(0 = the starting noise, {num_states - 1} = the final sample)")
        self.k = len(steps)
        table = np.full((num_states,), self.k, np.int32)  # slot k is a scratch slot for states not kept
        table[steps] = np.arange(self.k)
        self.table = jnp.asarray(table)

    def init(self, x: jax.Array) -> jax.Array:
        return self.write(jnp.zeros((self.k + 1, *x.shape), x.dtype), 0, x)

    def write(self, buf: jax.Array, index, x: jax.Array) -> jax.Array:
        if self.k == 0:
            return buf
        return jax.lax.dynamic_update_index_in_dim(buf, x, self.table[index], 0)

    def result(self, buf: jax.Array) -> jax.Array | None:
        return buf[: self.k] if self.k else None


SamplerFn = Callable[..., tuple[jax.Array, jax.Array, int]]
SAMPLERS: dict[str, SamplerFn] = {}


def register_sampler(name: str) -> Callable[[SamplerFn], SamplerFn]:
    def deco(fn: SamplerFn) -> SamplerFn:
        if name in SAMPLERS:
            raise ValueError(f"sampler {name!r} is registered twice")
        SAMPLERS[name] = fn
        return fn
    return deco


def sampler_names() -> list[str]:
    return sorted(SAMPLERS)


def _grid(schedule: Schedule, times: jax.Array) -> tuple[jax.Array, jax.Array]:
    """alpha, sigma at the given times with the clean end point (1, 0) appended: [N + 1] each."""
    alpha, sigma = alpha_sigma(schedule, times)
    return jnp.append(alpha, 1.0), jnp.append(sigma, 0.0)


def _ddim_loop(denoise: Denoiser, schedule: Schedule, x: jax.Array, key: jax.Array, steps: int, eta: float,
               rec: _Recorder):
    times = sampling_times(schedule, steps)
    alphas, sigmas = _grid(schedule, times)

    def body(carry, i):
        x, buf = carry
        a_t, s_t, a_s, s_s = alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1]
        x0, eps = denoise(x, times[i], a_t, s_t)
        # DDIM (Song et al. 2021, eq. 12): c is the std of the fresh noise; eta = 1 gives the DDPM posterior.
        c = eta * (s_s / s_t) * jnp.sqrt(jnp.maximum(1.0 - (a_t / a_s) ** 2, 0.0))
        z = jax.random.normal(jax.random.fold_in(key, i), x.shape, x.dtype)
        x = a_s * x0 + jnp.sqrt(jnp.maximum(s_s ** 2 - c ** 2, 0.0)) * eps + c * z
        return (x, rec.write(buf, i + 1, x)), None

    (x, buf), _ = jax.lax.scan(body, (x, rec.init(x)), jnp.arange(steps))
    return x, buf, steps


@register_sampler("ddpm")
def ddpm(denoise, schedule, x, key, steps, eta, rec):
    """Ancestral sampling: x_s ~ q(x_s | x_t, x0_hat) on `steps` steps of the grid (all T for the original DDPM)."""
    del eta
    return _ddim_loop(denoise, schedule, x, key, steps, 1.0, rec)


@register_sampler("ddim")
def ddim(denoise, schedule, x, key, steps, eta, rec):
    """DDIM: deterministic for eta = 0; eta interpolates towards ancestral sampling (eta = 1)."""
    return _ddim_loop(denoise, schedule, x, key, steps, eta, rec)


@register_sampler("dpm_solver")
def dpm_solver(denoise, schedule, x, key, steps, eta, rec):
    """DPM-Solver++(2M): second-order multistep solver of the probability-flow ODE in data prediction.

    With lambda = log(alpha / sigma) and h = lambda_s - lambda_t, one step from t to s is
      x_s = (sigma_s / sigma_t) x_t - alpha_s (exp(-h) - 1) D,
    D = x0_hat for the first and the last step (the last one jumps to sigma = 0), otherwise
    D = (1 + 1/(2r)) x0_hat_t - 1/(2r) x0_hat_prev with r = h_prev / h.
    """
    del key, eta
    times = sampling_times(schedule, steps)
    alphas, sigmas = _grid(schedule, times)
    lams = jnp.log(alphas[:-1]) - jnp.log(sigmas[:-1])  # [N], finite; the clean end point has lambda = inf

    def body(carry, i):
        x, x0_prev, h_prev, buf = carry
        a_t, s_t, a_s, s_s = alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1]
        x0, _ = denoise(x, times[i], a_t, s_t)
        last = i == steps - 1
        h = jnp.where(last, 1.0, lams[jnp.minimum(i + 1, steps - 1)] - lams[i])
        r = h_prev / h
        d2 = (1.0 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
        d = jnp.where((i == 0) | last, x0, d2)
        exp_neg_h = (s_s * a_t) / (s_t * a_s)  # exp(lambda_t - lambda_s), 0 at the clean end point
        x = (s_s / s_t) * x - a_s * (exp_neg_h - 1.0) * d
        return (x, x0, h, rec.write(buf, i + 1, x)), None

    init = (x, jnp.zeros_like(x), jnp.ones(()), rec.init(x))
    (x, _, _, buf), _ = jax.lax.scan(body, init, jnp.arange(steps))
    return x, buf, steps


@register_sampler("heun")
def heun(denoise, schedule, x, key, steps, eta, rec):
    """EDM's deterministic 2nd-order Heun sampler on y = x / alpha, whose ODE is dy/ds = (y - D(y; s)) / s with
    s = sigma / alpha; Karras noise levels (rho = 7); the last step (to s = 0) is an Euler step, so NFE = 2N - 1."""
    del key, eta
    times = karras_times(schedule, steps)
    alphas, sigmas = alpha_sigma(schedule, times)
    s_levels = sigmas / alphas  # [N], decreasing

    def d_of(y, i):  # data prediction at noise level s_levels[i], from the VE variable y
        return denoise(alphas[i] * y, times[i], alphas[i], sigmas[i])[0]

    def body(carry, i):
        y, buf = carry
        s_i, s_n = s_levels[i], s_levels[i + 1]
        d1 = (y - d_of(y, i)) / s_i
        y_euler = y + (s_n - s_i) * d1
        d2 = (y_euler - d_of(y_euler, i + 1)) / s_n
        y = y + (s_n - s_i) * 0.5 * (d1 + d2)
        return (y, rec.write(buf, i + 1, alphas[i + 1] * y)), None

    y = x / alphas[0]
    (y, buf), _ = jax.lax.scan(body, (y, rec.init(x)), jnp.arange(steps - 1))
    x0 = d_of(y, steps - 1)  # Euler step to s = 0 lands on the data prediction
    return x0, rec.write(buf, steps, x0), 2 * steps - 1


def sample(model_fn: ModelFn, schedule: Schedule, key: jax.Array, shape: Sequence[int], *,
           sampler: str = "dpm_solver", steps: int | None = None, labels: jax.Array | None = None,
           guidance: float = 1.0, null_label: int | None = None, parameterization: str = "eps", eta: float = 0.0,
           clip_denoised: bool = False, noise: jax.Array | None = None,
           trajectory_steps: Sequence[int] = ()) -> SamplerOutput:
    """Draw samples [shape] by running `sampler` on the network `model_fn(x, t, labels) -> prediction`.

    Pure and traceable: wrap the call in `jax.jit` (sampler, steps, guidance, eta, shape static) to compile the
    whole loop. `noise` replaces the N(0, I) start x_T (e.g. from `ddim_invert`); `labels` [B] with
    `null_label` enable classifier-free guidance with scale `guidance` (0: unconditional, 1: conditional).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler {sampler!r} is unknown; choose one of {sampler_names()}")
    steps = DEFAULT_STEPS[sampler] if steps is None and sampler in DEFAULT_STEPS else steps
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps={steps!r}: must be an integer >= 1")
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta={eta!r}: must be in [0, 1] (0: deterministic DDIM, 1: ancestral)")
    if not (np.isfinite(float(guidance)) and float(guidance) >= 0):
        raise ValueError(f"guidance={guidance!r}: must be a finite number >= 0 (0: unconditional, 1: conditional)")
    if labels is not None and not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise ValueError(f"labels must be integer class indices; got dtype {jnp.result_type(labels)}")
    shape = tuple(int(s) for s in shape)
    if labels is not None and labels.shape != (shape[0],):
        raise ValueError(f"labels have shape {labels.shape}; expected ({shape[0]},), one label per sample")
    denoise = make_denoiser(model_fn, parameterization, labels, guidance, null_label, clip_denoised)
    k_noise, k_loop = jax.random.split(key)
    if noise is None:
        noise = jax.random.normal(k_noise, shape, jnp.float32)
    elif noise.shape != shape:
        raise ValueError(f"noise has shape {noise.shape}; expected {shape}")
    rec = _Recorder(trajectory_steps, int(steps) + 1)
    x, buf, nfe = SAMPLERS[sampler](denoise, schedule, noise, k_loop, int(steps), float(eta), rec)
    return SamplerOutput(x, nfe, rec.result(buf))
