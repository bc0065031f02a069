"""Orbax checkpoints of the TrainState, the data iterator and the loop's open log window.

`restore_latest` falls back past damaged checkpoints: each one that does not restore is reported in one line
(step, folder, cause) and moved aside to `<workdir>/damaged_checkpoints/` (never deleted), and the newest one that
restores is used. Stale temporary folders of a save that was killed are removed when the run reopens. A save that
fails (a full disk) raises `CheckpointWriteError` saying that the previous checkpoint is intact.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import time

import jax
import orbax.checkpoint as ocp

from jgen.config import InputError
from jgen.train.lock import checkpoints_locked
from jgen.train.state import TrainState

log = logging.getLogger("jgen")
TMP_MARK = ".orbax-checkpoint-tmp"


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written; the previous one is intact."""


class NoRestorableCheckpoint(InputError):
    """Checkpoints exist but none restores into this model."""


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def remove_stale_temporaries(workdir: str) -> list[str]:
    """Delete the temporary folders a killed save leaves behind (they never hold a finished checkpoint)."""
    root = checkpoint_dir(workdir)
    removed = []
    if os.path.isdir(root) and jax.process_index() == 0:
        for name in sorted(os.listdir(root)):
            if TMP_MARK in name:
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
                removed.append(name)
    return removed


def make_manager(workdir: str, max_to_keep: int = 2) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def one_line(e: BaseException) -> str:
    """The innermost cause of an exception chain, as one line of at most 300 characters."""
    seen = []
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    inner = seen[-1]
    text = " ".join(str(inner).split()) or type(inner).__name__
    return f"{type(inner).__name__}: {text}"[:300]


def _is_disk_full(e: BaseException) -> bool:
    while e is not None:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "RESOURCE_EXHAUSTED" in str(e) or "No space left" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def save(
    manager: ocp.CheckpointManager, state: TrainState, data_state: dict | None, loop_state: dict | None = None
) -> None:
    """Write `state`, the data iterator's position and the loop's open log window under the step number."""
    step = int(jax.device_get(state.step))
    args = {"state": ocp.args.StandardSave(state)}
    if data_state is not None:
        args["data"] = ocp.args.JsonSave(data_state)
    if loop_state is not None:
        args["loop"] = ocp.args.JsonSave(loop_state)
    previous = manager.latest_step()
    # readers (sample, eval) wait for the save and its rotation; orbax's own traceback stays out of the terminal
    lock = (
        checkpoints_locked(str(manager.directory), exclusive=True)
        if jax.process_index() == 0
        else contextlib.nullcontext()
    )
    try:
        with lock, _quiet_orbax():
            manager.save(step, args=ocp.args.Composite(**args), force=True)
            manager.wait_until_finished()
    except Exception as e:  # orbax/tensorstore raise many types; all mean "this save did not happen"
        what = "the disk is full" if _is_disk_full(e) else one_line(e)
        kept = (
            "no earlier checkpoint exists"
            if previous is None
            else f"the previous checkpoint (step {previous}) is intact"
        )
        raise CheckpointWriteError(
            f"could not write the checkpoint of step {step} to {manager.directory}: {what}. "
            f"Nothing else was lost: {kept}; make room and rerun the same command to "
            "resume"
        ) from e


def restore(
    manager: ocp.CheckpointManager, target: TrainState, step: int | None = None, with_data: bool = True
) -> tuple[TrainState, dict | None, dict | None]:
    """Restore into the structure, shapes and shardings of `target` (concrete or abstract arrays):
    (state, data iterator state or None, loop state or None)."""
    step = manager.latest_step() if step is None else step
    replicated = jax.sharding.NamedSharding(jax.sharding.Mesh(jax.devices(), ("data",)), jax.sharding.PartitionSpec())

    def spec(x):  # keep the target's sharding; replicate over this machine's devices where it has none
        sharding = getattr(x, "sharding", None)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding if sharding is not None else replicated)

    args = {"state": ocp.args.StandardRestore(jax.tree.map(spec, target))}
    step_dir = os.path.join(str(manager.directory), str(step))
    for item in ("data", "loop") if with_data else ():
        if os.path.isdir(os.path.join(step_dir, item)):  # older checkpoints have no "loop" item
            args[item] = ocp.args.JsonRestore()
    restored = manager.restore(step, args=ocp.args.Composite(**args))
    return (
        restored["state"],
        restored.get("data") if "data" in args else None,
        restored.get("loop") if "loop" in args else None,
    )


def _quiet_orbax():
    """Orbax logs a long traceback for every failed read; the fallback reports each failure in one line instead."""

    class Quiet:
        def __enter__(self):
            self.levels = {n: logging.getLogger(n).level for n in ("absl", "orbax", "asyncio")}
            for n in self.levels:
                logging.getLogger(n).setLevel(logging.CRITICAL)

        def __exit__(self, *exc):
            for n, level in self.levels.items():
                logging.getLogger(n).setLevel(level)

    return Quiet()


def restore_latest(
    workdir: str, manager: ocp.CheckpointManager, target: TrainState, with_data: bool = True, move_aside: bool = True
) -> tuple[TrainState, dict | None, dict | None] | None:
    """The newest checkpoint that restores (None when there is none at all).

    A checkpoint that fails while an older one restores is damaged: reported in one line and, with `move_aside`,
    moved to `<workdir>/damaged_checkpoints/`. When none restores, NoRestorableCheckpoint lists each step's cause
    (a model that changed since the run was made, or damaged files)."""
    steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
        return None
    failures = []
    with _quiet_orbax():
        for step in steps:
            try:
                out = restore(manager, target, step, with_data)
            except Exception as e:  # orbax/tensorstore raise many types for a bad file
                failures.append((step, one_line(e)))
                continue
            break
        else:
            detail = "; ".join(f"step {s}: {c}" for s, c in failures)
            raise NoRestorableCheckpoint(
                f"no checkpoint in {manager.directory} restores into this model ({detail}). If the model's code or "
                "config changed since this run was made, use the config that made it or train in a new "
                "--workdir; if the files are damaged, train in a new --workdir (nothing here needs deleting)."
            )
    for step, cause in failures:
        where = os.path.join(str(manager.directory), str(step))
        if move_aside and jax.process_index() == 0:
            aside = os.path.join(os.path.abspath(workdir), "damaged_checkpoints", f"{step}-{int(time.time())}")
            os.makedirs(os.path.dirname(aside), exist_ok=True)
            shutil.move(where, aside)
            where = f"{where} (moved to {aside})"
        log.warning("checkpoint at step %d is damaged and was skipped: %s: %s", step, where, cause)
    if failures and move_aside:
        manager.reload()
    return out
