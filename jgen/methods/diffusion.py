"""Diffusion (DDPM) and flow matching in pixel space: eps / v / x0 / flow prediction, classifier-free guidance.

Training (Ho et al. 2020, "simple" loss): x0 = images in [-1, 1], a time t from `method.time_sampling` (a discrete
step i ~ U{0..T-1} at t = (i + 1) / T on the DDPM schedules, t ~ U[1/T, 1] on `rectified_flow`),
x_t = alpha_t x0 + sigma_t eps, and the network (`model.kind`: unet | dit) regresses the target of
`config.method.parameterization` (eps | v | x0 | flow | edm) with squared error, optionally weighted by min-SNR-gamma.
Flow matching (Lipman et al. 2023, Liu et al. 2023) is schedule `rectified_flow` (x_t = (1 - t) x0 + t eps) with
parameterization `flow` (the velocity u = eps - x0): the same network, loop and samplers.
EDM (Karras et al. 2022) is parameterization `edm` (the network is F of the preconditioned denoiser D = c_skip y +
c_out F(c_in y; c_noise), fed c_in y and conditioned on c_noise = ln(s) / 4, s = sigma / alpha; `method.sigma_data`)
with time_sampling `log_normal` (ln s ~ N(p_mean, p_std^2)): its unit-weighted loss on F is EDM's
lambda(s) ||D - x0||^2. The parameterisation is a record (jgen/diffusion/parameterization.py) that this method
calls; nothing here asks which one it is.
With `conditional`, labels are replaced by the null label (index num_classes) with probability
`label_dropout`, which trains the unconditional model that classifier-free guidance needs.
Sampling uses the sampler named in config.method.sampler (see jgen/diffusion/samplers.py) on the time grid
config.method.spacing ("default": the sampler's own; see jgen/diffusion/timegrid.py); guidance scale 0 is
unconditional, 1 conditional, > 1 guided (see jgen/diffusion/guidance.py).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jgen.config import InputError, OptionError, fail, require_choice, require_int, require_number
from jgen.data import from_model_range, to_model_range
from jgen.diffusion import parameterization as param_lib
from jgen.diffusion.guidance import Denoiser, make_denoiser
from jgen.diffusion.inversion import ddim_invert
from jgen.diffusion.likelihood import ode_likelihood
from jgen.diffusion.samplers import SAMPLERS, Given, SamplerOutput, SamplingSpec, check_fits, sample
from jgen.diffusion.schedules import (
    SCHEDULES,
    TIME_SAMPLINGS,
    Schedule,
    alpha_sigma,
    log_snr,
    make_schedule,
    sample_times,
    schedule_path,
)
from jgen.diffusion.trajectory import forward_strip, strip, trajectory_steps
from jgen.methods.base import Batch, Method, slerp
from jgen.methods.registry import register
from jgen.metrics.likelihood import dequantized_bits_per_dim, uniform_dequantize
from jgen.nn.backbones import backbone_defaults, check_backbone, make_backbone
from jgen.nn.unet import init_params
from jgen.viz import image_grid

# SamplingSpec field -> the config.method field that holds its configured value
CONFIG_FIELDS = {
    "sampler": "sampler",
    "steps": "sample_steps",
    "spacing": "spacing",
    "guidance": "guidance",
    "eta": "eta",
    "clip_denoised": "clip_denoised",
}
# what a user's request may set (`Diffusion.sampling_spec`, `--sampler`, `Pipeline(...)`); the rest of a
# SamplingSpec (trajectory_steps, inpaint) is set by the code that asks for it
SAMPLING_OPTIONS = tuple(
    f.name for f in dataclasses.fields(SamplingSpec) if f.name not in ("trajectory_steps", "inpaint")
)


def configured_spec(m: ml_collections.ConfigDict, schedule: Schedule, **options) -> SamplingSpec:
    """The SamplingSpec of config section `m` (`config.method`) with `options` (None: not given) in place of its
    values, checked against `schedule` (`check_fits`). Another sampler than the configured one runs on its own
    steps and grid unless `options` name them."""
    given = {k: v for k, v in options.items() if v is not None}
    values = {field: m[name] for field, name in CONFIG_FIELDS.items()}
    if given.get("sampler", m.sampler) != m.sampler:
        values.update(steps=None, spacing="default")
    spec = SamplingSpec(**{**values, **given})
    check_fits(spec, schedule)
    return spec


@register("diffusion")
class Diffusion(Method):
    capabilities = frozenset({"sample", "interpolate", "likelihood", "inpaint", "autoguidance"})
    generate_options = SAMPLING_OPTIONS

    @classmethod
    def defaults(cls) -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(
            {
                "method": {
                    "schedule": "linear",
                    "timesteps": 1000,
                    "parameterization": "eps",
                    "loss_weighting": "none",
                    "min_snr_gamma": 5.0,
                    "conditional": True,
                    "label_dropout": 0.1,
                    "sampler": "dpm_solver",
                    "sample_steps": 20,
                    "guidance": 1.0,
                    "eta": 0.0,
                    "clip_denoised": True,
                    "spacing": "default",  # the sampler's own time grid (see jgen/diffusion/timegrid.py)
                    "time_sampling": "uniform",
                    "logit_mean": 0.0,
                    "logit_std": 1.0,  # training times (logit_normal)
                    "p_mean": -1.2,
                    "p_std": 1.2,  # training noise levels (log_normal: EDM's P_mean, P_std)
                    "sigma_data": 0.5,  # the data's std that EDM's preconditioning assumes (parameterization edm)
                },
                "model": backbone_defaults(),
            }
        )  # model.kind: unet | dit (jgen/nn/backbones.py)

    @classmethod
    def check(cls, config) -> None:
        super().check(config)
        m = config.method

        def bad(field, value, allowed, fix=""):
            fail(f"method.{field}", value, allowed, fix)

        require_choice("method.schedule", m.schedule, SCHEDULES)
        require_int("method.timesteps", m.timesteps, 2)
        require_choice("method.parameterization", m.parameterization, param_lib.PARAMETERIZATIONS)
        mismatch = param_lib.path_mismatch(m.parameterization, schedule_path(m.schedule))
        if mismatch:
            fix = (
                "--config.method.parameterization=flow (or x0)"
                if m.schedule == "rectified_flow"
                else "--config.method.schedule=rectified_flow (or a parameterization of eps, v, x0)"
            )
            fail(
                "method.parameterization",
                m.parameterization,
                f"it cannot be used with method.schedule={m.schedule!r}: {mismatch}",
                fix,
            )
        require_choice("method.time_sampling", m.time_sampling, TIME_SAMPLINGS)
        require_number("method.logit_mean", m.logit_mean)
        require_number("method.logit_std", m.logit_std, 1e-6)
        require_number("method.p_mean", m.p_mean)
        require_number("method.p_std", m.p_std, 1e-6)
        require_number("method.sigma_data", m.sigma_data, 1e-6)
        require_choice("method.loss_weighting", m.loss_weighting, param_lib.LOSS_WEIGHTINGS)
        if not m.min_snr_gamma > 0:
            bad("min_snr_gamma", m.min_snr_gamma, "must be > 0")
        if not 0.0 <= m.label_dropout < 1.0:
            bad("label_dropout", m.label_dropout, "must be in [0, 1)")
        check_backbone(config.model, cls.defaults().model)
        try:  # the configured sampling settings are a request like any other, made once here
            configured_spec(m, make_schedule(m.schedule, m.timesteps))
        except OptionError as e:
            field = CONFIG_FIELDS.get(e.name, e.name)
            fix = " ".join(f"--config.method.{CONFIG_FIELDS[k]}={v}" for k, v in e.fix.items())
            fail(f"method.{field}", m[field], e.allowed, fix)
        if m.sample_steps > m.timesteps:
            bad("sample_steps", m.sample_steps, f"must be an integer in [1, timesteps={m.timesteps}]")

    def sampling_spec(self, inpaint: bool = False, **options) -> SamplingSpec:
        """A sampling request as a checked `SamplingSpec`: `options` (SAMPLING_OPTIONS; None: not given) over the
        config's settings (`configured_spec`); `inpaint` for `inpaint`'s requests. OptionError names a value this
        model cannot sample with."""
        self.refuse_unknown_options(options)
        guide = options.get("guide")
        if guide is not None and guide not in self._guides:
            raise OptionError(
                "guide",
                guide,
                "no such guiding model is attached: load one with --guide_workdir RUN (jgen sample, "
                "jgen eval) or Pipeline.load_guide(RUN)",
            )
        return configured_spec(self.config.method, self.schedule, inpaint=inpaint, **options)

    def spec_for_nfe(self, nfe: int) -> SamplingSpec:
        """The configured sampler on the largest grid within `nfe` evaluations (`SamplerSpec.steps_for_nfe`; a
        guided call on the doubled batch counts once, as everywhere in jgen)."""
        configured = self.sampling_spec()
        return self.sampling_spec(steps=SAMPLERS[configured.sampler].steps_for_nfe(nfe))

    def __init__(self, config, info, resources=None):
        super().__init__(config, info, resources)
        m = config.method
        self.schedule = make_schedule(m.schedule, m.timesteps)
        self.param = param_lib.from_config(m)  # the parameterisation's record, with its settings
        self._num_classes = info.num_classes if m.conditional else 0
        self.net = make_backbone(config.model, self._num_classes, info.shape)
        self.null_label = self._num_classes if m.conditional else None
        self._guides: dict[str, tuple[Diffusion, object]] = {}  # autoguidance's guiding models, by name

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def init_variables(self, key, batch):
        x = self.encode_x0(batch["image"])
        labels = batch["label"] if self._num_classes else None
        return init_params(self.net, key, x, jnp.full((x.shape[0],), 0.5), labels), {}

    # -- the space diffusion runs in (pixels here; latents in LatentDiffusion) --------------------------------
    def encode_x0(self, images: jax.Array) -> jax.Array:
        """Data images [B, H, W, C] in [0, 1] -> x0 the diffusion models: [-1, 1] pixels."""
        return to_model_range(images)

    def decode_x0(self, x: jax.Array) -> jax.Array:
        """x0 (or any x_t) -> images in [0, 1]."""
        return from_model_range(x)

    # -- pure pieces -------------------------------------------------------------------------------------
    def model_fn(self, params):
        """The network as (x [B,H,W,C], t [B], labels [B] | None) -> prediction in config's parameterisation."""
        return lambda x, t, labels: self.net.apply({"params": params}, x, t, labels)

    def per_example_losses(self, params, batch: Batch, key: jax.Array, train: bool) -> dict[str, jax.Array]:
        """Weighted loss and unweighted eps-space error at a random step per example, each [B]."""
        m = self.config.method
        x0 = self.encode_x0(batch["image"])  # [B, H, W, C] (latents [B, h, w, c] for latent diffusion)
        b = x0.shape[0]
        k_t, k_eps, k_drop, k_net = jax.random.split(key, 4)
        t = sample_times(self.schedule, k_t, b, m.time_sampling, m.logit_mean, m.logit_std, m.p_mean, m.p_std)  # [B]
        eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
        alpha, sigma = (a[:, None, None, None] for a in alpha_sigma(self.schedule, t))
        x_t = alpha * x0 + sigma * eps
        labels = None
        if self._num_classes:
            labels = batch["label"].astype(jnp.int32)
            if train and m.label_dropout > 0:
                drop = jax.random.bernoulli(k_drop, m.label_dropout, (b,))
                labels = jnp.where(drop, self.null_label, labels)
        x_in, c = self.param.net_input(x_t, t, alpha, sigma)  # x_t and t, or EDM's c_in y and c_noise
        pred = self.net.apply({"params": params}, x_in, c, labels, train=train, rngs={"dropout": k_net})
        target = self.param.target(x0, eps, alpha, sigma)
        weight = param_lib.loss_weight(log_snr(self.schedule, t), self.param, m.loss_weighting, m.min_snr_gamma)  # [B]
        sq = jnp.mean((pred - target) ** 2, axis=(1, 2, 3))
        _, eps_hat = self.param.to_x0_eps(pred, x_t, alpha, sigma)
        return {"loss": weight * sq, "mse_eps": jnp.mean((eps_hat - eps) ** 2, axis=(1, 2, 3))}

    def loss_fn(self, params, model_state, batch: Batch, key):
        out = self.per_example_losses(params, batch, key, train=True)
        return jnp.mean(out["loss"]), ({"mse_eps": jnp.mean(out["mse_eps"])}, model_state)

    def eval_step(self, params, model_state, batch: Batch, key):
        return self.per_example_losses(params, batch, key, train=False)

    # -- likelihood, on demand (jgen.run.evaluate_likelihood): ~100 network evaluations per image ---------------
    def likelihood_metric(self):
        return "bpd_ode", "exact (ODE)"

    def likelihood_step(self, params, model_state, batch: Batch, key, **ode_options):
        """Per-example NLL (nats) and bits/dim [B] of images under the probability-flow ODE of the unconditional
        model (jgen/diffusion/likelihood.py; `ode_options`: steps, solver, divergence, num_probes). Pixels are
        dequantised as the VAE's, y = (k + u) / 256, and modelled as x = 2 y - 1: bits/dim = (-log p(x) +
        D log 128) / (D log 2), an upper bound on the discrete model's, comparable with the VAE's."""
        k_data, k_ode = jax.random.split(key)
        x = to_model_range(uniform_dequantize(batch["image"], k_data))
        out = ode_likelihood(
            self.model_fn(params),
            self.schedule,
            x,
            k_ode,
            null_label=self.null_label,
            parameterization=self.param,
            **ode_options,
        )
        nll = -out.log_likelihood
        return {"nll_ode": nll, "bpd_ode": dequantized_bits_per_dim(nll, math.prod(x.shape[1:]), data_width=2.0)}

    # -- sampling: every request arrives as a SamplingSpec, checked where it was made ---------------------------
    def denoiser(
        self,
        params,
        labels: jax.Array | None,
        guidance: float,
        clip_denoised: bool,
        guidance_interval: tuple[float, float] | None = None,
        guide: Denoiser | None = None,
    ) -> Denoiser:
        """The network as the samplers' denoiser (guidance.py), with classifier-free guidance towards `labels`, or
        autoguidance by the denoiser `guide`, applied in `guidance_interval` (None: everywhere)."""
        if labels is not None and not self._num_classes:
            raise InputError("this diffusion model is unconditional (method.conditional=False); sample without labels")
        return make_denoiser(
            self.model_fn(params),
            self.schedule,
            self.param,
            labels,
            guidance,
            self.null_label,
            clip_denoised,
            guidance_interval,
            guide,
        )

    def attach_guide(self, name: str, guide: Diffusion, params) -> None:
        """Make `guide` (another diffusion run's method) with `params` (its EMA parameters) autoguidance's guiding
        model for requests with `spec.guide = name` (the run layer loads it: `jgen.run.attach_guide`). It must
        model the same data on the same schedule with the same classes; its parameterisation and network may
        differ (a smaller config, an earlier checkpoint)."""
        mine, theirs = self.config.method, guide.config.method
        why = ""
        if not isinstance(guide, Diffusion) or guide.name != self.name:
            why = f"it is a {guide.name!r} run; autoguidance needs a {self.name!r} run"
        elif (theirs.schedule, theirs.timesteps) != (mine.schedule, mine.timesteps):
            why = f"its schedule is {theirs.schedule}/{theirs.timesteps}, this run's {mine.schedule}/{mine.timesteps}"
        elif tuple(guide.info.shape) != tuple(self.info.shape) or guide.num_classes != self.num_classes:
            why = (
                f"it models {guide.num_classes} classes of shape {tuple(guide.info.shape)}, this run "
                f"{self.num_classes} of shape {tuple(self.info.shape)}"
            )
        if why:
            raise InputError(f"guide {name!r} cannot guide this run: {why}; name a run of the same setup")
        self._guides[name] = (guide, params)

    def run_sampler(
        self, params, key, num: int, labels: jax.Array | None, spec: SamplingSpec, given: Given | None = None
    ) -> SamplerOutput:
        """The sampler's output in the model range [-1, 1] (pure; jit it with `num` and `spec` static)."""
        guide = None
        if spec.guide is not None:  # autoguidance: the attached guiding model, on the same labels, unclipped
            guide_method, guide_params = self._guides[spec.guide]
            guide = guide_method.denoiser(guide_params, labels, 1.0, False)
        denoise = self.denoiser(params, labels, spec.guidance, spec.clip_denoised, spec.guidance_interval, guide)
        return sample(denoise, self.schedule, key, (num, *self.info.shape), spec, given)

    def generate(self, params, model_state, key, num, labels=None, spec: SamplingSpec | None = None):
        """(images [num, H, W, C] in [0, 1], NFE) for the request `spec` (None: the configured sampling)."""
        out = self.run_sampler(params, key, num, labels, self.sampling_spec() if spec is None else spec)
        return self.decode_x0(out.samples), out.nfe

    def inpaint(self, params, key, images: jax.Array, mask: jax.Array, labels, spec: SamplingSpec):
        """Fill in images [B, H, W, C] in [0, 1] where mask [B, H, W, C] is 0, keeping them where it is 1: the
        sampler runs with the known pixels replaced at every step (jgen/diffusion/inpaint.py; `spec.inpaint`).
        (images [B, H, W, C] in [0, 1] equal to `images` where mask = 1, NFE). Pure; jit it with `spec` static."""
        given = Given(known=self.encode_x0(images), mask=mask)
        out = self.run_sampler(params, key, images.shape[0], labels, spec, given)
        return jnp.where(mask.astype(bool), images, self.decode_x0(out.samples)), out.nfe  # exact, not 2x-1 rounded

    def _labels_and_guidance(self, label: int | None, num: int):
        """Inversion/decoding condition: `label` at guidance 1, or the unconditional model (null label, guidance 0)."""
        if label is not None and not (self._num_classes and 0 <= label < self._num_classes):
            raise InputError(
                f"label={label!r}: allowed are 0..{self._num_classes - 1} for a conditional model, "
                "None for an unconditional one"
            )
        if not self._num_classes:
            return None, 1.0
        return jnp.full((num,), self.null_label if label is None else label, jnp.int32), float(label is not None)

    def encode(
        self, params, images: jax.Array, steps: int = 50, label: int | None = None, fixed_point_iters: int = 2
    ) -> jax.Array:
        """DDIM(eta=0) inversion of images [B, H, W, C] in [0, 1] -> noise codes x_T (pure). Fixed-point
        iterations per step make the inversion (nearly) exact."""
        labels, guidance = self._labels_and_guidance(label, images.shape[0])
        return ddim_invert(
            self.model_fn(params),
            self.schedule,
            self.encode_x0(images),
            steps=steps,
            labels=labels,
            guidance=guidance,
            null_label=self.null_label,
            parameterization=self.param,
            clip_denoised=False,
            fixed_point_iters=fixed_point_iters,
        )[0]

    def decode(self, params, codes: jax.Array, steps: int = 50, label: int | None = None) -> jax.Array:
        """Deterministic DDIM(eta=0) decoding of codes x_T -> images in [0, 1] (pure; inverse of `encode`)."""
        labels, guidance = self._labels_and_guidance(label, codes.shape[0])
        spec = SamplingSpec(sampler="ddim", steps=steps, guidance=guidance)
        out = self.run_sampler(params, jax.random.PRNGKey(0), codes.shape[0], labels, spec, Given(noise=codes))
        return self.decode_x0(out.samples)

    def interpolate(
        self, params, a: jax.Array, b: jax.Array, num: int = 10, label: int | None = None, steps: int = 50
    ) -> jax.Array:
        """Images a, b ([H, W, C] in [0, 1]) -> [num, H, W, C]: their DDIM codes, spherically interpolated and
        decoded, so the ends reproduce a and b and the middle stays on the data manifold. With `label`
        (conditional models) inversion and decoding are conditioned on it; otherwise unconditional."""
        self._labels_and_guidance(label, 1)  # check the label on the host
        program = self.jitted("interpolate_codes", self.interpolate_codes, static_argnames=("num", "label", "steps"))
        return program(params, jnp.asarray(a), jnp.asarray(b), num=num, label=label, steps=steps)

    def interpolate_codes(self, params, a: jax.Array, b: jax.Array, num: int, label: int | None, steps: int):
        """`interpolate`'s pure part: encode a and b, slerp their codes, decode ([num, H, W, C])."""
        z = self.encode(params, jnp.stack([a, b]), steps, label)
        return self.decode(params, slerp(z[0], z[1], num), steps, label)

    def visualize(self, state, batch, key):
        params = state.ema_params
        k_s, k_t, k_f = jax.random.split(key, 3)
        if self._num_classes:
            labels = jnp.tile(jnp.arange(self._num_classes, dtype=jnp.int32), 8)  # one column per class
            ncol = self._num_classes
        else:
            labels, ncol = None, 8
        spec = self.sampling_spec()
        draw = self.jitted("generate", self.generate, static_argnames=("num", "spec"))
        images, _ = draw(params, state.model_state, k_s, num=8 * ncol, labels=labels, spec=spec)

        keep = trajectory_steps(spec.steps, 10)
        run = self.jitted("run_sampler", self.run_sampler, static_argnames=("num", "spec"))
        traj_labels = None if labels is None else labels[:8]
        path = run(params, k_t, num=8, labels=traj_labels, spec=dataclasses.replace(spec, trajectory_steps=keep))
        spread = batch["image"][:: max(1, len(batch["image"]) // 8)][:8]  # different classes in a spread batch
        fwd = forward_strip(self.schedule, self.encode_x0(jnp.asarray(spread)), k_f, 10)
        return {
            "samples": image_grid(np.asarray(images), ncol=ncol),
            "trajectory": image_grid(
                np.asarray(self.decode_x0(jnp.asarray(strip(path.trajectory)))), ncol=len(keep)
            ),  # [K, 8, H, W, C] -> one row per sample
            "forward": image_grid(np.asarray(self.decode_x0(jnp.asarray(fwd))), ncol=10),
        }
