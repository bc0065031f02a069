"""A small Stable-Diffusion-style API over a run directory.

    pipe = Pipeline.from_workdir("runs/ldm")
    images = pipe(labels=[3, 7], num_samples_per_label=8, sampler="dpm_solver", steps=20,
                  guidance_scale=3.0, seed=0, save_to="grid.png")   # uint8 [16, H, W, C]

The same call works for every method that generates (AE, VAE, GAN, pixel or latent diffusion); sampler options
apply to the diffusion families. Same seed, same images. Generation goes through `jgen.sampling.generate`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jgen.run import Run, load_run
from jgen.sampling import generate
from jgen.viz import image_grid, save_png


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1] -> uint8 in 0..255 (rounded)."""
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class Pipeline:
    def __init__(self, run: Run):
        self.run = run
        self.config, self.method, self.state, self.info, self.workdir = (
            run.config, run.method, run.state, run.info, run.workdir)

    @classmethod
    def from_workdir(cls, workdir: str, step: int | None = None) -> "Pipeline":
        """Load the config and the latest (or given) checkpoint of a trained run."""
        return cls(load_run(workdir, step))

    @property
    def num_classes(self) -> int:
        return self.method.num_classes

    def __call__(self, labels: list[int] | None = None, num_samples_per_label: int = 8, sampler: str | None = None,
                 steps: int | None = None, guidance_scale: float | None = None, eta: float | None = None,
                 seed: int = 0, save_to: str | None = None, return_info: bool = False):
        """Generate uint8 images [N, H, W, C]: `num_samples_per_label` per label (label-major), or that many
        unconditional samples when `labels` is None. Optionally save a grid (one row per label) as PNG."""
        per = num_samples_per_label
        if isinstance(per, bool) or not isinstance(per, (int, np.integer)) or per < 1:
            raise ValueError(f"num_samples_per_label={per!r}: must be an integer >= 1")
        flat = None
        if labels is not None:
            arr = np.asarray(labels) if not isinstance(labels, (str, bytes)) else np.asarray([labels])
            if arr.ndim != 1 or arr.size == 0:
                raise ValueError(f"labels={labels!r}: must be a non-empty list of class labels (or None for "
                                 "unconditional samples)")
            flat = np.repeat(arr, per)  # label-major: per images of each label
        n = per if flat is None else len(flat)
        options = {"sampler": sampler, "steps": steps, "guidance": guidance_scale, "eta": eta}
        images, gen = generate(self.method, self.state.ema_params, self.state.model_state, n, seed=seed,
                               labels=flat, batch_size=n, **options)
        if save_to:
            save_png(save_to, image_grid(images, ncol=per if labels is not None else None))
        out = to_uint8(images)
        if return_info:
            return out, {"num_images": n, "nfe_per_image": gen.nfe_per_image, "seconds": gen.seconds}
        return out

    def interpolate(self, a: np.ndarray, b: np.ndarray, num: int = 10, **kwargs) -> np.ndarray:
        """A uint8 strip [num, H, W, C] from image a to image b ([H, W, C] in [0, 1]) through the model's latent space."""
        if "interpolate" not in self.method.capabilities:
            raise ValueError(f"method {self.method.name!r} has no latent space to interpolate in")
        strip = self.method.interpolate(self.state.ema_params, jnp.asarray(a), jnp.asarray(b), num, **kwargs)
        return to_uint8(np.asarray(strip))
