"""The GAN part of the course: charts 16 (samples as training goes on), 18 (forger vs detective) and 21 (GAN
training step by step), each from a GAN run's metrics.jsonl and the sample grids its loop wrote; and 20 (the ring's
geometric dynamics) and 25 (the optimal discriminator) from the files of the toy experiments of
`experiments/gan_toys.py` (configs gan_ring and gan_dstar).

The loop logs the mean of each train metric over the steps since the previous row (every train.log_every steps and at
the extra steps train.log_steps: gan_mnist's config asks for 1, 10, 100 and 1000, chart 21's rows) and
draws the same latents at every sample interval (a fixed key), so a grid at step s shows the generator at s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np

from course.common import (
    MissingData,
    at_or_after,
    draw_table,
    grid_images,
    metric_rows,
    new_figure,
    save,
    show_images,
)

GAN_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")
TABLE_STEPS = (0, 1, 10, 100, 1000)  # and the last step
SAMPLES_SHOWN = 8


# -- 21: GAN training, step by step -----------------------------------------------------------------------------
def gan_steps_data(
    runs: Mapping[str, str], run: str = "gan_mnist", steps: Sequence[int] = TABLE_STEPS, num_images: int = SAMPLES_SHOWN
) -> dict:
    """Chart 21's data from `runs[run]`:

    table: one row per logged row that holds a requested step (and the last one): {"steps": the requested steps
      it answers, "window": (first, last) training steps the logged means cover, "step": its logged step,
      d_loss, g_loss, d_real, d_fake: the values of that metrics.jsonl row}. Step 0 (before any update) is answered
      by the first row: D(x) and D(G(z)) are measured before each update.
    curve: {"step": [R], each GAN_KEYS: [R]}: every train row.
    samples: grid step -> images [n, H, W, C]: for each table row, the first sample grid at or after its step.
    """
    workdir = runs[run]
    rows = metric_rows(workdir, "train", GAN_KEYS)
    logged = [r["step"] for r in rows]
    wanted = sorted({s for s in steps if s <= logged[-1]} | {logged[-1]})
    table: list[dict] = []
    for s in wanted:
        i = logged.index(at_or_after(logged, max(s, 1)))
        if table and table[-1]["step"] == logged[i]:
            table[-1]["steps"].append(s)
            continue
        window = (logged[i - 1] + 1 if i else 1, logged[i])
        table.append({"steps": [s], "window": window, "step": logged[i], **{k: rows[i][k] for k in GAN_KEYS}})
    grids = grid_images(workdir)
    samples: dict[int, np.ndarray] = {}
    for row in table:
        g = at_or_after(list(grids), row["step"])
        if g is not None:
            samples.setdefault(g, grids[g][:num_images])
    curve = {"step": np.array(logged), **{k: np.array([r[k] for r in rows], np.float64) for k in GAN_KEYS}}
    return {"run": run, "table": table, "curve": curve, "samples": samples}


def _window(w: tuple[int, int]) -> str:
    return str(w[1]) if w[0] == w[1] else f"{w[0]}–{w[1]}"


def draw_gan_steps(data: dict, path: str) -> None:
    table, curve, samples = data["table"], data["curve"], data["samples"]
    plt, fig = new_figure(12, 9.5)
    gs = fig.add_gridspec(3, max(2, len(samples)), height_ratios=[1.25, 0.9, 0.8])
    half = max(2, len(samples)) // 2
    ax_l, ax_d = fig.add_subplot(gs[0, :half]), fig.add_subplot(gs[0, half:])
    marks = [r["step"] for r in table]
    for ax, keys, labels in (
        (ax_l, ("d_loss", "g_loss"), ("d_loss", "g_loss")),
        (ax_d, ("d_real", "d_fake"), ("D(x)", "D(G(z))")),
    ):
        for k, label in zip(keys, labels):
            (line,) = ax.plot(curve["step"], curve[k], lw=1.2, label=label)
            ax.plot(marks, [r[k] for r in table], "o", color=line.get_color(), ms=5)
        ax.set_xlabel("training step")
        ax.set_xscale("symlog", linthresh=max(1, int(curve["step"][0])))
        ax.legend(fontsize=8)
    ax_l.set_title("losses (dots: the table's rows)", fontsize=10)
    ax_d.set_title("the discriminator's output (0.5: it cannot tell)", fontsize=10)
    ax_d.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax_d.set_ylim(0, 1)
    header = ["step", "row: mean over steps", "d_loss", "g_loss", "D(x)", "D(G(z))"]
    cells = [[", ".join(map(str, r["steps"])), _window(r["window"]), *(r[k] for k in GAN_KEYS)] for r in table]
    draw_table(fig.add_subplot(gs[1, :]), header, cells)
    for j, (step, images) in enumerate(samples.items()):
        show_images(
            fig.add_subplot(gs[2, j]), images, ncol=int(np.ceil(len(images) / 2)), title=f"samples at step {step}"
        )
    fig.suptitle(f"21 GAN training step by step ({data['run']}: metrics.jsonl rows, same latents in every grid)")
    save(fig, path)


# -- 18: forger vs detective --------------------------------------------------------------------------------------
def detective_data(
    runs: Mapping[str, str], run: str = "gan_mnist", num_grids: int = 4, num_images: int = SAMPLES_SHOWN
) -> dict:
    """Chart 18's data from `runs[run]`: train {"step", "d_real", "d_fake"} ([R] each, every train row), eval (the
    same over the test split at each evaluation, possibly empty) and samples: up to `num_grids` (grid step,
    images [n, H, W, C]) spread over the run's sample grids, first and last included."""
    workdir = runs[run]
    rows = metric_rows(workdir, "train", ("d_real", "d_fake"))
    train = {k: np.array([r[k] for r in rows]) for k in ("step", "d_real", "d_fake")}
    try:
        ev = metric_rows(workdir, "eval", ("d_real", "d_fake"))
    except MissingData:  # a run without evaluations still has its training curve
        ev = []
    evals = {k: np.array([r[k] for r in ev]) for k in ("step", "d_real", "d_fake")}
    grids = grid_images(workdir)
    steps = list(grids)
    pick = (
        sorted({steps[int(round(i))] for i in np.linspace(0, len(steps) - 1, min(num_grids, len(steps)))})
        if steps
        else []
    )
    return {"run": run, "train": train, "eval": evals, "samples": [(s, grids[s][:num_images]) for s in pick]}


def draw_detective(data: dict, path: str) -> None:
    n = max(1, len(data["samples"]))
    plt, fig = new_figure(max(8, 2.4 * n), 6.5)
    gs = fig.add_gridspec(2, n, height_ratios=[1.6, 1], hspace=0.35)
    ax = fig.add_subplot(gs[0, :])
    tr, ev = data["train"], data["eval"]
    ax.plot(tr["step"], tr["d_real"], label="D(x): real training images", color="tab:blue")
    ax.plot(tr["step"], tr["d_fake"], label="D(G(z)): the generator's images", color="tab:red")
    if len(ev["step"]):
        ax.plot(ev["step"], ev["d_real"], "s", color="tab:blue", label="D(x), test images")
        ax.plot(ev["step"], ev["d_fake"], "s", color="tab:red", mfc="none", label="D(G(z)), at evaluation")
    ax.axhline(0.5, color="grey", ls="--", lw=0.8, label="equilibrium: D = 1/2 everywhere")
    ax.set_ylim(0, 1)
    ax.set_xlabel("training step")
    ax.set_ylabel("D's probability of 'real'")
    ax.legend(fontsize=8, loc="upper right")
    for j, (step, images) in enumerate(data["samples"]):
        show_images(fig.add_subplot(gs[1, j]), images, ncol=int(np.ceil(len(images) / 2)), title=f"G at step {step}")
    fig.suptitle(f"18 Forger vs detective ({data['run']})")
    save(fig, path)


# -- 16: from noise to digits ---------------------------------------------------------------------------------
def mastery_data(runs: Mapping[str, str], run: str = "gan_mnist", num_images: int = SAMPLES_SHOWN) -> dict:
    """Chart 16's data: steps [G] of the run's sample grids and images [G, n, H, W, C]: the first `num_images`
    samples of each grid, the same latents at every step."""
    grids = grid_images(runs[run])
    if not grids:
        raise MissingData(f"{runs[run]}/samples has no sample grids (train.sample_every=-1?)")
    steps = list(grids)
    return {"run": run, "steps": np.array(steps), "images": np.stack([grids[s][:num_images] for s in steps])}


def draw_mastery(data: dict, path: str) -> None:
    steps, images = data["steps"], data["images"]
    plt, fig = new_figure(1.0 * images.shape[1] + 1.2, 1.0 * len(steps) + 0.8)
    axes = fig.subplots(len(steps), 1, squeeze=False)[:, 0]
    for ax, step, row in zip(axes, steps, images):
        show_images(ax, row, ncol=len(row))
        ax.set_ylabel(f"step {step}", rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(f"16 Samples as training goes on ({data['run']}: the same latents at every step)", fontsize=10)
    save(fig, path)


# -- 25: why adversarial training works ---------------------------------------------------------------------------
def dstar_data(runs: Mapping[str, str], run: str = "gan_dstar") -> dict:
    """Chart 25's data: the toy experiment's files (experiments/gan_toys.py with gan_dstar's config): the grid x,
    p_data, p_g, D* = p_data / (p_data + p_g), the learned D against the fixed p_g and against p_g = p_data, both
    discriminators' losses per step; its numbers (dstar.json), and the JSD the optimum's loss implies:
    loss(D*) = 2 log 2 - 2 JSD(p_data, p_g)."""
    workdir = runs[run]
    with open(os.path.join(workdir, "dstar_curves.json")) as f:
        curves = {k: np.asarray(v, np.float64) for k, v in json.load(f).items()}
    with open(os.path.join(workdir, "dstar.json")) as f:
        numbers = json.load(f)
    return {
        "run": run,
        "curves": curves,
        "numbers": numbers,
        "jsd": (numbers["two_log_two"] - numbers["optimal_loss"]) / 2,
    }


def draw_dstar(data: dict, path: str) -> None:
    c, n = data["curves"], data["numbers"]
    plt, fig = new_figure(15, 4.3)
    axes = fig.subplots(1, 3)
    for ax, d, ref, title, pg in (
        (axes[0], c["d"], c["d_star"], "p_g ≠ p_data: learned D against D*", c["p_g"]),
        (axes[1], c["d_equal"], np.full_like(c["x"], 0.5), "p_g = p_data: D = 1/2", c["p_data"]),
    ):
        ax.fill_between(c["x"], c["p_data"], color="tab:blue", alpha=0.2, label="p_data")
        ax.fill_between(c["x"], pg, color="tab:orange", alpha=0.2, label="p_g")
        ax.plot(c["x"], ref, "k--", label="D* = p_data / (p_data + p_g)")
        ax.plot(c["x"], d, color="tab:red", label="learned D")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("x")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8, loc="upper left")
    axes[0].text(
        0.99,
        0.98,
        f"max |D - D*| = {n['max_abs_error_vs_dstar']:.3f}\nwhere there is mass",
        transform=axes[0].transAxes,
        ha="right",
        va="top",
        fontsize=8,
    )
    ax = axes[2]
    steps = np.arange(1, len(c["loss"]) + 1)
    ax.plot(steps, c["loss"], color="tab:red", alpha=0.6, lw=0.8, label="D's loss, p_g ≠ p_data")
    ax.plot(steps, c["loss_equal"], color="tab:green", alpha=0.6, lw=0.8, label="D's loss, p_g = p_data")
    ax.axhline(n["two_log_two"], color="k", ls="--", lw=1, label=f"2 log 2 = {n['two_log_two']:.4f}")
    ax.axhline(
        n["optimal_loss"],
        color="tab:red",
        ls=":",
        lw=1.2,
        label=f"loss of D* = 2 log 2 - 2 JSD = {n['optimal_loss']:.4f}",
    )
    ax.set_ylim(n["optimal_loss"] - 0.2, n["two_log_two"] + 0.2)
    ax.set_xlabel("discriminator step")
    ax.set_title(f"JSD(p_data, p_g) = {data['jsd']:.4f} nats", fontsize=10)
    ax.legend(fontsize=7.5)
    fig.suptitle(f"25 Why adversarial training works: the optimal discriminator, measured ({data['run']})")
    fig.tight_layout()
    save(fig, path)


# -- 20: GAN geometric dynamics ------------------------------------------------------------------------------------
def ring_dynamics_data(runs: Mapping[str, str], run: str = "gan_ring", num_shown: int = 4) -> dict:
    """Chart 20's data from the ring toy's files (experiments/gan_toys.py with gan_ring's config), at `num_shown`
    snapshots spread over training (first and last included): steps [S], samples [S, N, 2] (the same latents),
    d_grid [S, P, P]: D(x) on the grid grid_axis [P] x grid_axis (rows: y), push [S, P, P, 2]: the generator's
    gradient field -d g_loss(D(x)) / dx there, the mode centres means [K, 2] and each snapshot's ring.json row."""
    workdir = runs[run]
    with open(os.path.join(workdir, "ring.json")) as f:
        meta = json.load(f)
    with np.load(os.path.join(workdir, "ring_snapshots.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    pick = np.unique(np.round(np.linspace(0, len(arrays["steps"]) - 1, min(num_shown, len(arrays["steps"])))))
    pick = pick.astype(int)
    return {
        "run": run,
        "loss": meta["loss"],
        "steps": arrays["steps"][pick],
        "samples": arrays["samples"][pick],
        "d_grid": arrays["d_grid"][pick],
        "push": arrays["push"][pick],
        "grid_axis": arrays["grid_axis"],
        "means": arrays["means"],
        "rows": [meta["rows"][i] for i in pick],
    }


def draw_ring_dynamics(data: dict, path: str) -> None:
    s = len(data["steps"])
    plt, fig = new_figure(3.6 * s + 0.8, 4.0)
    axes = fig.subplots(1, s, squeeze=False)[0]
    ax_ = data["grid_axis"]
    xx, yy = np.meshgrid(ax_, ax_, indexing="xy")
    for ax, d, push, samples, row in zip(axes, data["d_grid"], data["push"], data["samples"], data["rows"]):
        filled = ax.contourf(xx, yy, d, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.55)
        ax.contour(xx, yy, d, levels=[0.5], colors="k", linewidths=0.8)
        norm = np.linalg.norm(push, axis=-1, keepdims=True)
        unit = push / np.maximum(norm, 1e-12)
        ax.quiver(xx, yy, unit[..., 0], unit[..., 1], color="0.25", alpha=0.6, scale=30, width=0.004)
        ax.scatter(samples[:, 0], samples[:, 1], s=1.5, color="tab:orange", alpha=0.6)
        ax.scatter(data["means"][:, 0], data["means"][:, 1], s=40, marker="x", color="k")
        ax.set_xlim(ax_[0], ax_[-1])
        ax.set_ylim(ax_[0], ax_[-1])
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(
            f"step {row['step']}: {row['modes_covered']}/{len(data['means'])} modes, "
            f"{100 * row['high_quality']:.0f}% high quality",
            fontsize=9,
        )
    fig.colorbar(filled, ax=list(axes), fraction=0.015, label="D(x): probability of real")
    fig.suptitle(
        f"20 GAN geometric dynamics ({data['run']}, {data['loss']} loss): D's contours (black: D = 1/2), "
        "the generator's push (arrows), its samples (orange), the 8 modes (x)",
        fontsize=10,
    )
    save(fig, path)
