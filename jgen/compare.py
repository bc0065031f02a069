"""`python -m jgen compare`: the quality / diversity / likelihood / speed table across trained runs.

For each run directory: generate `num_samples` images with its EMA parameters (class-balanced labels for
conditional models), measure FID, precision/recall and density/coverage against the test split with the MNIST
classifier's features, the Inception Score from its softmax, bits/dim where the model defines a likelihood
(the run's last evaluation; with `likelihood_images`, diffusion's probability-flow ODE on that many test images,
marked "exact (ODE)" against the VAE's "bound"), and sampling speed (images/s after compilation, network
evaluations per image).
Writes compare.json, compare.md and compare.png to the output directory. `guidance_sweep` does the same for
one conditional diffusion run at several guidance scales.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Hashable

import jax
import numpy as np

from jgen.config import InputError
from jgen.metrics.feature_nets import MNIST_CLASSIFIER
from jgen.metrics.quality import real_images
from jgen.run import evaluate_run, load_feature_net, load_run
from jgen.train.writer import read_metrics
from jgen.viz import pyplot

log = logging.getLogger("jgen")


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
    log.info("wrote %s.md, %s.json and %s.png", *[os.path.join(out_dir, name)] * 3)
    return md


def _row(run, num_samples: int, seed: int, net, real, likelihood_images: int = 0, spec: Hashable = None) -> dict:
    if "likelihood" not in run.method.capabilities:  # the others report their evaluations' bits/dim
        likelihood_images = 0
    row = evaluate_run(run, num_samples, seed, net, real, timed=True, likelihood_images=likelihood_images, spec=spec)
    row.pop("workdir")
    return row


TEXT_PROMPT, TEXT_TOKENS, TEXT_SAMPLES = "The ", 200, 8


def text_row(run, seed: int = 0) -> dict:
    """A language model's row: test perplexity and bits/char from its last evaluation, and sampling speed
    (tokens/s of `TEXT_SAMPLES` KV-cached continuations of `TEXT_TOKENS` tokens, after a compiling warm-up)."""
    evals = read_metrics(run.workdir, "eval")
    last = evals[-1] if evals else {}
    tokens = min(TEXT_TOKENS, run.method.net.max_len - len(TEXT_PROMPT) + 1)  # what the context holds

    def sample(k):
        return run.method.generate_text(run.state.ema_params, jax.random.PRNGKey(k), TEXT_PROMPT, TEXT_SAMPLES, tokens)

    sample(seed + 1)
    t0 = time.perf_counter()
    sample(seed)
    seconds = time.perf_counter() - t0
    return {
        "run": os.path.basename(os.path.normpath(run.workdir)),
        "method": run.method.name,
        "step": run.step,
        "perplexity": last.get("perplexity"),
        "bits_per_char": last.get("bpc"),
        "tokens_per_sec": TEXT_SAMPLES * tokens / seconds,
    }


def compare_workdirs(
    workdirs: list[str],
    out_dir: str,
    num_samples: int = 1000,
    seed: int = 0,
    likelihood_images: int = 0,
    feature_net: str = MNIST_CLASSIFIER,
    **options,
) -> str:
    """Evaluate every run: image models on the same test features of `feature_net` (compare.{json,md,png}),
    language models on their test perplexity and speed (compare_text.{json,md,png}). Returns the Markdown table(s).
    `likelihood_images` > 0: runs with an on-demand likelihood (diffusion) report bits/dim on that many test images.
    `options`: sampling options (sampler, steps, ...) for every image run that takes them (each row says its
    sampling); refused when no run takes one. Every request is checked before any run samples."""
    runs = [load_run(w) for w in workdirs]
    image_runs = [r for r in runs if "sample" in r.method.capabilities]
    text_runs = [r for r in runs if "text" in r.method.capabilities]
    other = [r.workdir for r in runs if r not in image_runs and r not in text_runs]
    if other:
        raise InputError(f"{other} hold runs that generate nothing (e.g. the classifier); leave them out")
    given = {k: v for k, v in options.items() if v is not None}
    unused = sorted(k for k in given if not any(k in r.method.generate_options for r in image_runs))
    if unused:
        methods = sorted({r.method.name for r in image_runs})
        raise InputError(f"--{unused[0]} applies to none of these runs (methods {methods}); leave it out")
    specs = [
        r.method.sampling_spec(**{k: v for k, v in given.items() if k in r.method.generate_options}) for r in image_runs
    ]
    if likelihood_images and not any("likelihood" in r.method.capabilities for r in image_runs):
        raise InputError(
            f"likelihood_images={likelihood_images}: none of these runs has an on-demand likelihood "
            "(diffusion's ODE is one); leave it out"
        )
    tables = []
    if image_runs:
        net = load_feature_net(feature_net)
        real = real_images(image_runs[0].test_source, num_samples)
        rows = [
            {**_row(run, num_samples, seed, net, real, likelihood_images, spec), "sampling": _sampling(spec)}
            for run, spec in zip(image_runs, specs)
        ]
        columns = ["run", "method", "sampling", "num_samples", *_quality_columns(net.name), "bits_per_dim"]
        columns += ["bits_per_dim_kind"]
        columns += ["images_per_sec", "nfe"]
        plotted = [f"fid_{net.name}", f"recall_{net.name}", "images_per_sec"]
        tables.append(_write(out_dir, "compare", rows, columns, "run", plotted, "run"))
    if text_runs:
        rows = [text_row(run, seed) for run in text_runs]
        columns = ["run", "method", "step", "perplexity", "bits_per_char", "tokens_per_sec"]
        tables.append(_write(out_dir, "compare_text", rows, columns, "run", ["perplexity", "tokens_per_sec"], "run"))
    return "\n".join(tables)


def guidance_sweep(
    workdir: str,
    scales: list[float],
    out_dir: str,
    num_samples: int = 1000,
    seed: int = 0,
    feature_net: str = MNIST_CLASSIFIER,
    **options,
) -> str:
    """FID and recall (on `feature_net`'s features) of a conditional diffusion run against the guidance scale: the
    quality/diversity trade-off. `options`: the run's other sampling options (sampler, steps, ...), the same at
    every scale."""
    run = load_run(workdir)
    specs = [run.method.sampling_spec(**options, guidance=s) for s in scales]  # every request checked first
    net = load_feature_net(feature_net)
    real = real_images(run.test_source, num_samples)
    rows = [
        {"guidance_scale": s, **_row(run, num_samples, seed, net, real, spec=spec)} for s, spec in zip(scales, specs)
    ]
    columns = ["guidance_scale", "num_samples", *_quality_columns(net.name), "images_per_sec", "nfe"]
    plotted = [f"fid_{net.name}", f"recall_{net.name}"]
    return _write(out_dir, "guidance_sweep", rows, columns, "guidance_scale", plotted, "guidance scale")


def _sampling(spec: Hashable) -> str | None:
    """A sampling spec in a few words for a table cell (None: a single-pass generator)."""
    if spec is None:
        return None
    fields = dataclasses.asdict(spec) if dataclasses.is_dataclass(spec) else {}
    shown = [f"{k} {fields[k]}" for k in ("sampler", "steps", "spacing", "guidance") if k in fields]
    return ", ".join(shown) or str(spec)


def _quality_columns(net: str) -> list[str]:
    """The sample-quality columns of a table on feature net `net`'s features."""
    return [f"{metric}_{net}" for metric in ("fid", "is", "precision", "recall", "coverage")]
