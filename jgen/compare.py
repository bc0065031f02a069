"""`python -m jgen compare`: the quality / diversity / likelihood / speed table across trained runs.

For each run directory: generate `num_samples` images with its EMA parameters (class-balanced labels for
conditional models), measure FID, precision/recall and density/coverage against the test split with the MNIST
classifier's features, the Inception Score from its softmax, bits/dim where the model defines a likelihood
(the run's last evaluation), and sampling speed (images/s after compilation, network evaluations per image).
Writes compare.json, compare.md and compare.png to the output directory. `guidance_sweep` does the same for
one conditional diffusion run at several guidance scales.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jgen.data import get_source
from jgen.pipeline import Pipeline
from jgen.train.writer import read_metrics
from jgen.viz import pyplot

LIKELIHOOD_KEYS = ("bpd_iwae", "bpd")


def _balanced_labels(n: int, num_classes: int) -> list[int] | None:
    return None if num_classes == 0 else [i % num_classes for i in range(n)]


def generate_timed(pipe: Pipeline, num: int, seed: int, batch_size: int = 250, **kwargs) -> tuple[np.ndarray, dict]:
    """`num` images in [0, 1] ([N, H, W, C] float32) in fixed-size batches, plus images/s (after a warm-up
    batch that compiles) and NFE per image."""
    per_batch = min(batch_size, num)
    labels = _balanced_labels(num + per_batch, pipe.num_classes)
    warm = labels[:per_batch] if labels else None
    pipe(labels=warm, num_samples_per_label=1 if warm else per_batch, seed=seed + 10_000, **kwargs)
    out, seconds, nfe = [], 0.0, 1
    for i, start in enumerate(range(0, num, per_batch)):
        lab = labels[start:start + per_batch] if labels else None
        images, info = pipe(labels=lab, num_samples_per_label=1 if lab else per_batch, seed=seed + i,
                            return_info=True, **kwargs)
        out.append(images)
        seconds += info["seconds"]
        nfe = info["nfe_per_image"]
    images = np.concatenate(out)[:num].astype(np.float32) / 255.0
    return images, {"images_per_sec": len(images) / seconds, "nfe": nfe}


def _autoencoder_pipe_samples(pipe: Pipeline, num: int, seed: int) -> tuple[np.ndarray, dict]:
    """An autoencoder has no prior: sample z from a Gaussian fitted to the codes of the training images."""
    train, _, _ = get_source(pipe.config.data)
    params = pipe.state.ema_params
    codes = np.concatenate([np.asarray(pipe.method.encode(params, jnp.asarray(train.images[i:i + 500])))
                            for i in range(0, len(train), 500)])
    mean, cov = codes.mean(0), np.cov(codes, rowvar=False)
    z = np.random.default_rng(seed).multivariate_normal(mean, cov, size=num).astype(np.float32)
    decode = jax.jit(pipe.method.decode)
    decode(params, jnp.asarray(z[:10]))
    t0 = time.perf_counter()
    images = np.asarray(decode(params, jnp.asarray(z)))
    return images, {"images_per_sec": num / (time.perf_counter() - t0), "nfe": 1}


def _real(pipe: Pipeline, num: int) -> np.ndarray:
    from jgen.metrics.quality import real_images

    return real_images(get_source(pipe.config.data)[1], num)


def evaluate_run(workdir: str, num_samples: int, seed: int = 0, feature_net=None, real=None, **sampler_kwargs) -> dict:
    """One row of the table for a run directory; `real`: test images to compare with (default: its test split)."""
    from jgen.metrics.quality import images_quality

    pipe = Pipeline.from_workdir(workdir)
    if pipe.config.method.name == "autoencoder":
        images, speed = _autoencoder_pipe_samples(pipe, num_samples, seed)
    else:
        images, speed = generate_timed(pipe, num_samples, seed, **sampler_kwargs)
    real = real if real is not None else _real(pipe, num_samples)
    row = {"run": os.path.basename(os.path.normpath(workdir)), "method": pipe.config.method.name,
           "num_samples": len(images), **images_quality(real, images, feature_net, seed), **speed}
    evals = read_metrics(workdir, "eval")
    for k in LIKELIHOOD_KEYS:
        if evals and k in evals[-1]:
            row["bits_per_dim"] = evals[-1][k]
            row["bits_per_dim_kind"] = k
            break
    return row


def _markdown(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict], x: str, ys: list[str], path: str, xlabel: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(ys), figsize=(4.2 * len(ys), 3.4))
    for ax, y in zip(np.atleast_1d(axes), ys):
        xs = [r[x] for r in rows]
        vals = [r.get(y) for r in rows]
        if isinstance(xs[0], str):
            ax.bar(xs, [v if v is not None else 0 for v in vals])
            ax.tick_params(axis="x", rotation=30)
        else:
            ax.plot(xs, vals, "o-")
        if y == "images_per_sec":  # spans single-pass and many-step samplers: orders of magnitude
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(y)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _write(out_dir: str, name: str, rows: list[dict], columns: list[str], x: str, ys: list[str], xlabel: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(rows, f, indent=2)
    md = _markdown(rows, columns)
    with open(os.path.join(out_dir, f"{name}.md"), "w") as f:
        f.write(md)
    _plot(rows, x, ys, os.path.join(out_dir, f"{name}.png"), xlabel)
    return md


def compare_workdirs(workdirs: list[str], out_dir: str, num_samples: int = 1000, seed: int = 0) -> str:
    """Evaluate every run on the same test features; write compare.{json,md,png}; return the Markdown table."""
    from jgen.metrics.feature_nets import load_mnist_classifier

    net = load_mnist_classifier()
    real = _real(Pipeline.from_workdir(workdirs[0]), num_samples)
    rows = [evaluate_run(w, num_samples, seed, net, real) for w in workdirs]
    fid = f"fid_{net.name}"
    columns = ["run", "method", "num_samples", fid, f"is_{net.name}", f"precision_{net.name}", f"recall_{net.name}",
               f"coverage_{net.name}", "bits_per_dim", "images_per_sec", "nfe"]
    return _write(out_dir, "compare", rows, columns, "run", [fid, f"recall_{net.name}", "images_per_sec"], "run")


def guidance_sweep(workdir: str, scales: list[float], out_dir: str, num_samples: int = 1000, seed: int = 0,
                   sampler: str | None = None, steps: int | None = None) -> str:
    """FID and recall of a conditional diffusion run against the guidance scale: the quality/diversity trade-off."""
    from jgen.metrics.feature_nets import load_mnist_classifier

    net = load_mnist_classifier()
    real = _real(Pipeline.from_workdir(workdir), num_samples)
    rows = []
    for s in scales:
        row = evaluate_run(workdir, num_samples, seed, net, real, sampler=sampler, steps=steps, guidance_scale=s)
        rows.append({"guidance_scale": s, **row})
    fid = f"fid_{net.name}"
    columns = ["guidance_scale", "num_samples", fid, f"is_{net.name}", f"precision_{net.name}", f"recall_{net.name}",
               f"coverage_{net.name}", "images_per_sec", "nfe"]
    return _write(out_dir, "guidance_sweep", rows, columns, "guidance_scale", [fid, f"recall_{net.name}"],
                  "guidance scale")
