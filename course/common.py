"""What every chart shares: the runs charts read (name -> the config that trains it), whether a run is ready, the
images a run's loop wrote, and the drawing helpers (image panels, tables, saving a figure).

A run is named by its directory under `--runs` (e.g. "gan_mnist") and made by the config of the same name in
experiments/configs/. Charts read runs only through the public API: `jgen.run` (config, checkpoints), the loop's
files (`read_metrics`, `sample_grids`), `Pipeline` and `jgen.sampling.generate`.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Sequence

import numpy as np

from jgen.config import cache_dir
from jgen.data import get_source
from jgen.metrics.feature_nets import FEATURE_NETS, MNIST_CLASSIFIER
from jgen.run import Run, read_config, run_progress
from jgen.train.writer import read_metrics, sample_grids
from jgen.viz import grid_cells, image_grid, pyplot, read_png

DPI = 120


class MissingData(Exception):
    """The runs a chart needs exist but lack what it reads (e.g. no sample-quality rows); the message says how to
    make it. The chart is skipped, not failed."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """How a run directory is made: its config file and the runs it is built on (config field -> run name); a toy
    experiment's is made by `script` instead of `python -m jgen train`, and is finished once it holds `output`;
    `overrides` are config fields set on the command line (field, value), e.g. the seed runs' seed and steps."""

    config: str
    built_on: tuple[tuple[str, str], ...] = ()
    script: str = ""
    output: str = ""
    overrides: tuple[tuple[str, object], ...] = ()


def _spec(name: str, *built_on: tuple[str, str]) -> RunSpec:
    return RunSpec(f"experiments/configs/{name}.py", built_on)


def _toy(name: str, output: str) -> RunSpec:
    return RunSpec(f"experiments/configs/{name}.py", script="experiments/gan_toys.py", output=output)


# Every run a chart may read, by directory name.
RUNS: dict[str, RunSpec] = {
    "ae_mnist": _spec("ae_mnist"),
    "vae_mnist": _spec("vae_mnist"),
    "vae_2d_mnist": _spec("vae_2d_mnist"),
    "gmm_mnist": _spec("gmm_mnist"),
    "gan_mnist": _spec("gan_mnist"),
    "ddpm_mnist": _spec("ddpm_mnist"),
    "flow_mnist": _spec("flow_mnist"),
    "edm_mnist": _spec("edm_mnist"),
    "meanflow_mnist": _spec("meanflow_mnist"),
    "shortcut_mnist": _spec("shortcut_mnist"),
    "consistency_mnist": _spec("consistency_mnist"),
    "ect_mnist": _spec("ect_mnist", ("train.init_from", "edm_mnist")),
    "meanflow_ft_mnist": _spec("meanflow_ft_mnist", ("train.init_from", "flow_mnist")),
    "meanflow_ft_2step_mnist": _spec("meanflow_ft_2step_mnist", ("train.init_from", "flow_mnist")),
    "ldm_autoencoder": _spec("ldm_autoencoder"),
    "ldm_mnist": _spec("ldm_mnist", ("method.first_stage_workdir", "ldm_autoencoder")),
    "ar_mnist": _spec("ar_mnist"),
    "charlm": _spec("charlm"),
    "gan_dstar": _toy("gan_dstar", "dstar_curves.json"),
    "gan_ring": _toy("gan_ring", "ring_snapshots.npz"),
}
IMAGE_FAMILIES = (
    "ae_mnist",
    "vae_mnist",
    "gmm_mnist",
    "gan_mnist",
    "ddpm_mnist",
    "flow_mnist",
    "ldm_mnist",
    "ar_mnist",
)

# Chart 29's seed runs: each image family's default config at a small step count, trained with seeds 0, 1 and 2
# (FID's spread over seeds measures training stability). The latent diffusion runs share the default run's first
# stage (ldm_autoencoder) and vary the seed of the diffusion model only. All 24 took 38 minutes of wall time on 2 CPU
# cores (measured by `make figures` on a fresh clone; three seeds together: ae 1.2 min, vae 3.6, gmm 0.9, gan 3.5,
# ddpm 8.5, flow 7.2, ldm 7.6, ar 5.4, the seed-0 runs with their sample-quality rows the longest).
SEED_STEPS = {
    "ae_mnist": 1000,
    "vae_mnist": 1000,
    "gmm_mnist": 15,
    "gan_mnist": 1000,
    "ddpm_mnist": 300,
    "flow_mnist": 300,
    "ldm_mnist": 1000,
    "ar_mnist": 100,
}
SEEDS = (0, 1, 2)


def seed_run(family: str, seed: int) -> str:
    """The run name (directory under --runs) of `family`'s seed run: seeds/<family>_s<seed>."""
    return f"seeds/{family}_s{seed}"


# Chart 26 reads the seed-0 runs, which also log FID/IS/precision/recall of 250 samples four times during training
# (twice for the autoregressive model, whose sampling costs 784 network calls per image); logging draws its own keys
# and leaves the training trajectory as it is.
QUALITY_LOGS = {f: 2 if f == "ar_mnist" else 4 for f in SEED_STEPS}


def _seed_overrides(family: str, seed: int) -> tuple[tuple[str, object], ...]:
    steps = SEED_STEPS[family]
    quality = (("eval.sample_metrics_every", max(1, steps // QUALITY_LOGS[family])), ("eval.num_samples", 250))
    return (("seed", seed), ("train.steps", steps)) + (quality if seed == 0 else ())


RUNS.update(
    {seed_run(f, s): dataclasses.replace(RUNS[f], overrides=_seed_overrides(f, s)) for f in SEED_STEPS for s in SEEDS}
)


def train_argv(name: str, runs_dir: str) -> list[str]:
    """The arguments after `python` that make run `name` in `runs_dir/name` alone (the runs it is built on must exist
    already: `train_commands` lists them first); rerunning them resumes an unfinished run."""
    spec = RUNS[name]
    program = [spec.script] if spec.script else ["-m", "jgen", "train"]
    built_on = [f"--config.{field}={os.path.join(runs_dir, dep)}" for field, dep in spec.built_on]
    overrides = [f"--config.{field}={value}" for field, value in spec.overrides]
    return [*program, "--config", spec.config, "--workdir", os.path.join(runs_dir, name), *built_on, *overrides]


def shell_command(argv: Sequence[str]) -> str:
    """The shell command `python argv...` (what the skip messages print and --train_missing runs)."""
    return shlex.join(["python", *argv])


def train_commands(name: str, runs_dir: str) -> list[str]:
    """The shell commands that make run `name` under `runs_dir` (the runs it is built on first); rerunning one
    resumes."""
    cmds = [c for _, dep in RUNS[name].built_on for c in train_commands(dep, runs_dir)]
    return cmds + [shell_command(train_argv(name, runs_dir))]


def unfinished(workdir: str) -> str | None:
    """Why the training run in `workdir` is not finished (no run directory, no checkpoint, unfinished), or None."""
    try:
        latest, total = run_progress(workdir)
    except FileNotFoundError:
        return "no run directory"
    if latest is None:
        return "no checkpoint yet"
    if latest < total:
        return f"unfinished (step {latest} of {total})"
    return None


def run_missing(name: str, workdir: str) -> str | None:
    """Why run `name` in `workdir` cannot be drawn from (no run directory, no checkpoint, unfinished), or None when
    it is finished."""
    spec = RUNS[name]
    if spec.script:
        return None if os.path.exists(os.path.join(workdir, spec.output)) else f"no {spec.output}"
    return unfinished(workdir)


# -- the feature network that scores samples -------------------------------------------------------------------
# The MNIST runs score samples (FID, IS, precision/recall, class histograms) with the MNIST classifier, which lives
# in the feature-network cache, not under --runs; the seed-0 runs need it while they train (their sample-quality
# rows), charts 28, 29 and 31 while they draw.
def logs_sample_quality(name: str) -> bool:
    """Whether run `name` scores samples while it trains (and so needs the classifier before it starts)."""
    return bool(dict(RUNS[name].overrides).get("eval.sample_metrics_every"))


def classifier_argv() -> list[str]:
    """The arguments after `python` that train (or resume) the MNIST classifier in its cache folder."""
    return [
        "-m",
        "jgen",
        "train",
        "--config",
        FEATURE_NETS[MNIST_CLASSIFIER].trained_by,
        "--workdir",
        cache_dir(MNIST_CLASSIFIER),
    ]


def classifier_missing() -> str | None:
    """Why the MNIST classifier cannot score samples yet (see `unfinished`), or None when it is trained."""
    return unfinished(cache_dir(MNIST_CLASSIFIER))


# -- what the loop wrote ----------------------------------------------------------------------------------------
def image_shape(workdir: str) -> tuple[int, int, int]:
    """(H, W, C) of the images a run models (from its config's data source)."""
    return tuple(get_source(read_config(workdir).data)[2].shape)


def grid_images(workdir: str, name: str = "samples") -> dict[int, np.ndarray]:
    """step -> the images [N, H, W, C] in [0, 1] of each <name>_step_*.png grid the run's loop wrote."""
    hw = image_shape(workdir)[:2]
    return {step: grid_cells(read_png(path), hw) for step, path in sample_grids(workdir, name).items()}


def pick_test_images(run: Run, num: int, one_per_class: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(images [n, H, W, C], labels [n]) of up to `num` test examples at evenly spaced indices (test splits are often
    sorted by class); with `one_per_class`, the first of each class among 20 * num spread candidates, by class."""
    src = run.test_source
    spread = lambda k: np.unique(np.round(np.linspace(0, len(src) - 1, min(k, len(src)))).astype(int))  # noqa: E731
    idx = spread(num)
    if one_per_class:
        first: dict[int, int] = {}
        for i in spread(20 * num):
            first.setdefault(int(src[int(i)]["label"]), int(i))
        idx = [first[c] for c in sorted(first)][:num]
    examples = [src[int(i)] for i in idx]
    return np.stack([e["image"] for e in examples]), np.array([int(e["label"]) for e in examples])


def metric_rows(workdir: str, split: str, keys: Sequence[str]) -> list[dict]:
    """The run's metrics rows of `split` that hold every one of `keys` (MissingData naming the run if none do)."""
    rows = [r for r in read_metrics(workdir, split) if all(k in r for k in keys)]
    if not rows:
        raise MissingData(f"{workdir}/metrics.jsonl has no {split!r} rows with {list(keys)}")
    return rows


def at_or_after(steps: Sequence[int], wanted: int) -> int | None:
    """The first of the increasing `steps` that is >= wanted (None if none is)."""
    return next((s for s in steps if s >= wanted), None)


# -- drawing ----------------------------------------------------------------------------------------------------
def new_figure(width: float, height: float, **kwargs):
    """(pyplot, figure) on the Agg backend."""
    plt = pyplot()
    return plt, plt.figure(figsize=(width, height), **kwargs)


def save(fig, path: str) -> None:
    """Write the figure as PNG (creating the folder) and close it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    pyplot().close(fig)


def show_images(ax, images: np.ndarray, ncol: int | None = None, title: str | None = None) -> None:
    """Images [N, H, W, C] in [0, 1] as one grid on `ax` (grey for one channel), without axes."""
    grid = image_grid(images, ncol=ncol)
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)


def draw_table(ax, header: Sequence[str], rows: Sequence[Sequence], title: str | None = None) -> None:
    """A table on `ax` (numbers to 4 significant digits; None as a dash)."""

    def fmt(v):
        if v is None:
            return "—"
        if isinstance(v, (float, np.floating)):
            return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"
        return str(v)

    ax.axis("off")
    table = ax.table(
        cellText=[[fmt(v) for v in r] for r in rows], colLabels=list(header), loc="center", cellLoc="center"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.3)
    if title:
        ax.set_title(title, fontsize=9)
