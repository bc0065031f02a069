"""A small Stable-Diffusion-style API over a run directory.

    pipe = Pipeline.from_workdir("runs/ldm")
    images = pipe(labels=[3, 7], num_samples_per_label=8, sampler="dpm_solver", steps=20,
                  guidance=3.0, seed=0, save_to="grid.png")   # uint8 [16, H, W, C]

The same call works for every method that generates (AE, VAE, GAN, pixel or latent diffusion); sampler options
apply to the diffusion families. Same seed, same images. Generation goes through `jgen.sampling.generate`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jgen.config import InputError, check_int, check_output, check_seed
from jgen.diffusion.inpaint import check_mask
from jgen.run import Run, attach_guide, load_run
from jgen.sampling import check_request, generate
from jgen.viz import image_grid, save_png


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1] -> uint8 in 0..255 (rounded)."""
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class Pipeline:
    def __init__(self, run: Run):
        self.run = run
        self.config, self.method, self.state, self.info, self.workdir = (
            run.config,
            run.method,
            run.state,
            run.info,
            run.workdir,
        )

    @classmethod
    def from_workdir(cls, workdir: str, step: int | None = None) -> Pipeline:
        """Load the config and the latest (or given) checkpoint of a trained run."""
        return cls(load_run(workdir, step))

    def load_guide(self, workdir: str, step: int | None = None) -> str:
        """Load the run `workdir` (its newest checkpoint, or `step`) as autoguidance's guiding model; pass the name
        this returns as `guide=` to a call, with `guidance` the weight w of D_guide + w (D_main - D_guide)."""
        return attach_guide(self.run, workdir, step)

    @property
    def num_classes(self) -> int:
        return self.method.num_classes

    def __call__(
        self,
        labels: list[int] | None = None,
        num_samples_per_label: int = 8,
        seed: int = 0,
        save_to: str | None = None,
        return_info: bool = False,
        **options,
    ):
        """Generate uint8 images [N, H, W, C]: `num_samples_per_label` per label (label-major), or that many
        unconditional samples when `labels` is None. Optionally save a grid (one row per label) as PNG.
        `options`: the method's sampling options (`pipe.method.generate_options`: a diffusion model's sampler, steps,
        guidance, eta, spacing, ...; the autoregressive model's temperature, top_k, top_p), None: the run's own."""
        per = check_int("num_samples_per_label", num_samples_per_label)
        check_seed("seed", seed)
        if save_to:
            check_output("save_to", save_to, ".png")
        spec = self.method.sampling_spec(**options)
        flat = None
        if labels is not None:
            arr = np.asarray(labels) if not isinstance(labels, (str, bytes)) else np.asarray([labels])
            if arr.ndim != 1 or arr.size == 0:
                raise InputError(
                    f"labels={labels!r}: must be a non-empty list of class labels (or None for unconditional samples)"
                )
            flat = np.repeat(arr, per)  # label-major: per images of each label
        n = per if flat is None else len(flat)
        images, gen = generate(
            self.method, self.state.ema_params, self.state.model_state, n, spec, seed=seed, labels=flat, batch_size=n
        )
        if save_to:
            save_png(save_to, image_grid(images, ncol=per if labels is not None else None))
        out = to_uint8(images)
        if return_info:
            sampling = dataclasses.asdict(spec) if dataclasses.is_dataclass(spec) else None
            return out, {
                "num_images": n,
                "nfe_per_image": gen.nfe_per_image,
                "seconds": gen.seconds,
                "sampling": sampling,
            }
        return out

    def text(self, prompt: str, num_samples: int = 1, num_tokens: int = 200, seed: int = 0, **options) -> list[str]:
        """`num_samples` continuations of `prompt` by a language model (`options`: temperature, top_k, top_p)."""
        if "text" not in self.method.capabilities:
            raise InputError(f"this {self.method.name!r} run models images, not text: call the pipeline for images")
        spec = self.method.sampling_spec(**options)
        return self.method.generate_text(
            self.state.ema_params, jax.random.PRNGKey(seed), prompt, num_samples, num_tokens, spec
        )

    def _check_image(self, name: str, image) -> np.ndarray:
        """`image` as float32 in [0, 1]: uint8 images (what `pipe(...)` returns) are divided by 255, floats must be
        in [0, 1] already."""
        x = np.asarray(image)
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        want = tuple(self.info.shape)
        if x.shape != want:
            fix = f"; add the channel axis: {name}[..., None]" if x.shape == want[:2] else ""
            raise InputError(f"{name} has shape {x.shape}; this model's images are {list(want)} ([H, W, C]){fix}")
        if not np.all(np.isfinite(x)):
            raise InputError(f"{name} has non-finite pixels (NaN or inf)")
        if x.min() < 0.0 or x.max() > 1.0:
            fix = (
                ": divide 8-bit images by 255 (or pass them as uint8)"
                if x.max() > 1.0 and x.max() <= 255.0 and x.min() >= 0
                else ""
            )
            raise InputError(f"{name} has values in [{x.min():.4g}, {x.max():.4g}]; images must be in [0, 1]{fix}")
        return x

    def inpaint(
        self,
        images: np.ndarray,
        mask: np.ndarray,
        labels: list[int] | None = None,
        seed: int = 0,
        **options,
    ) -> np.ndarray:
        """Fill in `images` ([B, H, W, C], uint8 as `pipe(...)` returns them, or in [0, 1]) where `mask` (same shape,
        or [B, H, W]) is 0, keeping them where it is 1: uint8 [B, H, W, C]. A diffusion model's sampler runs with the
        known pixels, noised to the current level, put back after every step (jgen/diffusion/inpaint.py; samplers
        ddpm, ddim, dpm_solver*).
        `labels` ([B]) condition a class-conditional model; the other arguments are as for a call."""
        if "inpaint" not in self.method.capabilities:
            raise InputError(
                f"method {self.method.name!r} cannot inpaint: inpainting replaces pixels inside a "
                "pixel-space diffusion model's sampler (train method diffusion)"
            )
        x = np.asarray(images)
        if x.ndim != 4:
            raise InputError(
                f"images has shape {x.shape}; expected a batch [B, H, W, C] of this model's "
                f"{list(self.info.shape)} images"
            )
        x = np.stack([self._check_image(f"images[{i}]", im) for i, im in enumerate(x)])
        m = np.asarray(mask, np.float32)
        m = m[..., None] if m.shape == x.shape[:3] else m
        spec = self.method.sampling_spec(inpaint=True, **options)
        flat = check_request(self.method, len(x), labels)
        check_mask(m, x.shape)
        run = self.method.jitted("inpaint", self.method.inpaint, static_argnames=("spec",))
        labels = None if flat is None else jnp.asarray(flat)
        out, _ = run(self.state.ema_params, jax.random.PRNGKey(seed), jnp.asarray(x), jnp.asarray(m), labels, spec=spec)
        return to_uint8(np.asarray(out))

    def interpolate(self, a: np.ndarray, b: np.ndarray, num: int = 10, **kwargs) -> np.ndarray:
        """A uint8 strip [num, H, W, C] from image a to image b ([H, W, C], uint8 as `pipe(...)` returns them, or in
        [0, 1]) through the model's latent space."""
        if "interpolate" not in self.method.capabilities:
            raise InputError(f"method {self.method.name!r} has no latent space to interpolate in")
        num = check_int("num", num, 2, " (the strip includes both ends)")
        a, b = self._check_image("a", a), self._check_image("b", b)
        strip = self.method.interpolate(self.state.ema_params, jnp.asarray(a), jnp.asarray(b), num, **kwargs)
        return to_uint8(np.asarray(strip))
