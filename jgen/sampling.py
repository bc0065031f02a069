"""`python -m jgen sample`: load a run, generate with the Pipeline, write a grid."""

from __future__ import annotations

from jgen.pipeline import Pipeline


def sample_from_workdir(workdir: str, out: str, num: int = 64, labels: list[int] | None = None,
                        sampler: str | None = None, steps: int | None = None, guidance: float | None = None,
                        eta: float = 0.0, seed: int = 0) -> dict:
    """Write a PNG grid of `num` samples (per label when `labels` are given: one row each); return what was done."""
    pipe = Pipeline.from_workdir(workdir)
    _, info = pipe(labels=labels, num_samples_per_label=num, sampler=sampler, steps=steps,
                   guidance_scale=guidance, eta=eta, seed=seed, save_to=out, return_info=True)
    return {"out": out, "workdir": workdir, "method": pipe.config.method.name, "sampler": sampler, "steps": steps,
            "guidance": guidance, "labels": labels, **info}
