"""`python -m jgen ema`: an EMA of any length, reconstructed after training from a run's post-hoc EMA snapshots.

    out = reconstruct_ema("runs/ddpm", sigma_rel=0.08)        # -> runs/ddpm/posthoc_ema/sigma_rel_0.080_step_...
    python -m jgen eval --workdir <out> --num_samples 1000        # any door reads it as a run

The snapshots (`<workdir>/ema_snapshots/`, written by the loop when `train.posthoc_ema.sigma_rels` is set) are
combined with EDM2's least-squares weights (`jgen.train.posthoc_ema.solve_weights`). The result is written as a
run directory of its own: the run's config and newest checkpoint with `ema_params` replaced by the reconstruction
(and without the profiles), plus `posthoc_ema.json` saying how it was made. The training run is only read, so
`sample`, `eval`, `compare` and `Pipeline` score a reconstructed EMA exactly as they score the run's own EMA.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

import jax
import numpy as np

from jgen.config import InputError, to_json
from jgen.run.workdir import load_run, read_config
from jgen.train import checkpoint as ckpt
from jgen.train import ema_snapshots
from jgen.train import posthoc_ema as phema

log = logging.getLogger("jgen")
RESULT_DIR = "posthoc_ema"
PROVENANCE = "posthoc_ema.json"
HOW_TO_TRAIN = (
    "train it with --config.train.posthoc_ema.sigma_rels='(0.05, 0.10)' --config.train.posthoc_ema.snapshot_every=100"
)


def default_out(workdir: str, sigma_rel: float, step: int) -> str:
    """Where `reconstruct_ema` writes by default: <workdir>/posthoc_ema/sigma_rel_<x.xxx>_step_<step>."""
    return os.path.join(workdir, RESULT_DIR, f"sigma_rel_{sigma_rel:.3f}_step_{step}")


def reconstruct_ema(workdir: str, sigma_rel: float, step: int | None = None, out: str | None = None) -> dict:
    """Reconstruct the power-function EMA of width `sigma_rel` at snapshot `step` (default: the newest) from the
    snapshots of `workdir` up to that step, and write it as a run directory `out` (default `default_out`). Returns a
    summary {out, sigma_rel, gamma, step, snapshots, relative_residual, weights}.

    Raises FileNotFoundError for a directory that is not a run, InputError for a run without snapshots, a
    `sigma_rel` outside (0, SIGMA_REL_MAX] or a `step` that is not a snapshot step."""
    read_config(workdir)  # FileNotFoundError (one line) unless `workdir` is a run directory
    snaps = ema_snapshots.list_snapshots(workdir)
    if not snaps:
        raise InputError(f"{workdir!r} has no post-hoc EMA snapshots ({ema_snapshots.SNAPSHOT_DIR}/): {HOW_TO_TRAIN}")
    if not (isinstance(sigma_rel, (int, float)) and 0.0 < sigma_rel <= phema.SIGMA_REL_MAX):
        raise InputError(
            f"--sigma_rel={sigma_rel!r}: must be in (0, {phema.SIGMA_REL_MAX:.4f}] (the widest power-function "
            "profile), e.g. --sigma_rel=0.1"
        )
    step = max(snaps) if step is None else step
    if step not in snaps:
        raise InputError(
            f"--step={step}: {workdir!r} has snapshots at {len(snaps)} steps from {min(snaps)} to {max(snaps)} "
            f"({ema_snapshots.SNAPSHOT_DIR}/step_*.npz); pass one of them, or leave --step out for the newest"
        )
    out = out or default_out(workdir, sigma_rel, step)
    _check_out(out, workdir)
    used = {s: p for s, p in snaps.items() if s <= step}
    gammas_of = {s: ema_snapshots.snapshot_gammas(p) for s, p in used.items()}
    steps = [s for s in used for _ in gammas_of[s]]
    gammas = [g for s in used for g in gammas_of[s]]
    gamma = phema.gamma_from_sigma_rel(sigma_rel)
    weights, residual = phema.solve_weights(steps, gammas, step, gamma)

    total, k = None, 0
    for path in used.values():  # streamed: one snapshot file in memory at a time
        profiles = ema_snapshots.read_snapshot(path)
        part = phema.combine(weights[k : k + len(profiles)], profiles)
        total = part if total is None else jax.tree.map(np.add, total, part)
        k += len(profiles)

    run = load_run(workdir)
    paths, treedef = jax.tree_util.tree_flatten_with_path(run.state.ema_params)
    names = [ema_snapshots.leaf_name(p) for p, _ in paths]
    if sorted(names) != sorted(total):
        raise InputError(
            f"the snapshots of {workdir!r} do not hold this run's parameters (their arrays: {len(total)}, the "
            f"model's: {len(names)}); they belong to another model: delete {ema_snapshots.SNAPSHOT_DIR}/ and retrain"
        )
    ema = jax.tree_util.tree_unflatten(
        treedef, [total[n].astype(np.asarray(x).dtype) for n, (_, x) in zip(names, paths)]
    )
    state = run.state.replace(ema_params=ema, power_ema=())

    config = run.config.copy_and_resolve_references()
    config.train.posthoc_ema.sigma_rels = ()  # the derived run holds one EMA, not the profiles
    config.train.posthoc_ema.snapshot_every = 0
    summary = {
        "out": out,
        "source": os.path.abspath(workdir),
        "source_checkpoint_step": run.step,
        "sigma_rel": float(sigma_rel),
        "gamma": gamma,
        "step": int(step),
        "snapshots": len(used),
        "profiles": len(steps),
        "relative_residual": residual,
        "weights": [float(w) for w in weights],
    }
    _write_run(out, config, state, summary)
    log.info("reconstructed sigma_rel=%g at step %d from %d profiles -> %s", sigma_rel, step, len(steps), out)
    return summary


def _check_out(out: str, workdir: str) -> None:
    """InputError unless `out` may be (re)written: not the run itself or a folder holding it, and, when it exists,
    an earlier reconstruction (it holds posthoc_ema.json), never another run or folder."""
    a, w = os.path.abspath(out), os.path.abspath(workdir)
    if a == w or w.startswith(a.rstrip(os.sep) + os.sep):
        raise InputError(f"--out={out!r} would replace the training run {workdir!r}; pass a new directory")
    if os.path.exists(out) and not os.path.exists(os.path.join(out, PROVENANCE)):
        raise InputError(
            f"--out={out!r} exists and is not a post-hoc EMA reconstruction (no {PROVENANCE}); pass a new directory"
        )


def _write_run(out: str, config, state, summary: dict) -> None:
    """Write config.json, the checkpoint and posthoc_ema.json into a temporary folder beside `out`, then put it in
    place of `out` (an interrupted write leaves `out` as it was)."""
    tmp = f"{out.rstrip(os.sep)}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with open(os.path.join(tmp, "config.json"), "w") as f:
        f.write(to_json(config))
    with open(os.path.join(tmp, PROVENANCE), "w") as f:
        json.dump(summary, f, indent=2)
    manager = ckpt.make_manager(tmp, max_to_keep=1)
    ckpt.save(manager, state, None)
    manager.close()
    if os.path.exists(out):
        shutil.rmtree(out)
    os.replace(tmp, out)
