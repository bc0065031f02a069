"""A small Stable-Diffusion-style API over a run directory.

    pipe = Pipeline.from_workdir("runs/ldm")
    images = pipe(labels=[3, 7], num_samples_per_label=8, sampler="dpm_solver", steps=20,
                  guidance_scale=3.0, seed=0, save_to="grid.png")   # uint8 [16, H, W, C]

The same call works for every method that generates (VAE, GAN, pixel or latent diffusion); sampler options
apply to the diffusion families. Same seed, same images.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jgen.train.checkpoint import load_run
from jgen.viz import image_grid, save_png


class Pipeline:
    def __init__(self, config, method, state, info, workdir: str | None = None):
        self.config, self.method, self.state, self.info, self.workdir = config, method, state, info, workdir
        self._generate = jax.jit(method.generate, static_argnames=("num", "sampler", "steps", "guidance", "eta"))

    @classmethod
    def from_workdir(cls, workdir: str, step: int | None = None) -> "Pipeline":
        """Load the config and the latest (or given) checkpoint of a trained run."""
        config, method, state, info = load_run(workdir, step)
        return cls(config, method, state, info, workdir)

    @property
    def num_classes(self) -> int:
        return self.method.num_classes

    def _check(self, labels, num_samples_per_label, steps, guidance_scale) -> None:
        name = self.config.method.name
        if labels is not None:
            if self.num_classes == 0:
                raise ValueError(f"this {name!r} model is unconditional; call it without labels")
            bad = [l for l in labels if not (isinstance(l, (int, np.integer)) and 0 <= l < self.num_classes)]
            if bad:
                raise ValueError(f"labels {bad} are out of range: allowed are integers 0..{self.num_classes - 1}")
        if not (isinstance(num_samples_per_label, (int, np.integer)) and num_samples_per_label >= 1):
            raise ValueError(f"num_samples_per_label={num_samples_per_label!r}: must be an integer >= 1")
        if steps is not None and not (isinstance(steps, (int, np.integer)) and steps >= 1):
            raise ValueError(f"steps={steps!r}: must be an integer >= 1")
        if guidance_scale is not None and not guidance_scale >= 0:
            raise ValueError(f"guidance_scale={guidance_scale!r}: must be >= 0 (0: unconditional, 1: conditional, "
                             ">1: stronger guidance)")

    def __call__(self, labels: list[int] | None = None, num_samples_per_label: int = 8, sampler: str | None = None,
                 steps: int | None = None, guidance_scale: float | None = None, eta: float = 0.0, seed: int = 0,
                 save_to: str | None = None, return_info: bool = False):
        """Generate uint8 images [N, H, W, C]: `num_samples_per_label` per label (label-major), or that many
        unconditional samples when `labels` is None. Optionally save a grid (one row per label) as PNG."""
        self._check(labels, num_samples_per_label, steps, guidance_scale)
        n = num_samples_per_label * (len(labels) if labels else 1)
        label_arr = None if labels is None else jnp.repeat(jnp.asarray(labels, jnp.int32), num_samples_per_label)
        t0 = time.perf_counter()
        images, nfe = self._generate(self.state.ema_params, self.state.model_state, jax.random.PRNGKey(seed),
                                     num=n, labels=label_arr, sampler=sampler, steps=steps,
                                     guidance=None if guidance_scale is None else float(guidance_scale), eta=eta)
        images = np.asarray(jax.device_get(images))
        seconds = time.perf_counter() - t0
        out = (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if save_to:
            save_png(save_to, image_grid(images, ncol=num_samples_per_label if labels else None))
        if return_info:
            return out, {"num_images": n, "nfe_per_image": int(nfe), "seconds": seconds}
        return out

    def interpolate(self, a: np.ndarray, b: np.ndarray, num: int = 10, **kwargs) -> np.ndarray:
        """A uint8 strip [num, H, W, C] from image a to image b ([H, W, C] in [0, 1]) through the model's latent space."""
        if not hasattr(self.method, "interpolate"):
            raise ValueError(f"method {self.config.method.name!r} has no latent space to interpolate in")
        strip = self.method.interpolate(self.state.ema_params, jnp.asarray(a), jnp.asarray(b), num, **kwargs)
        return (np.clip(np.asarray(strip), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
