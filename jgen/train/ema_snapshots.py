"""Snapshots of the post-hoc EMA profiles: `<workdir>/ema_snapshots/step_XXXXXXX.npz`, one file per snapshot step.

A file holds, for each profile i, every parameter array under the name `profile<i>/<path>` (the path of the leaf in
the params tree, e.g. `profile0/params/conv_in/kernel`), and the float64 arrays `sigma_rels` [n] and `gammas` [n]
and the int64 `step` []. Files are written to a temporary name and renamed, so a file that exists is complete; a
resumed run recomputes the same steps bitwise and rewrites a snapshot it passes again with the same content.
"""

from __future__ import annotations

import os
import re
from typing import Any

import jax
import numpy as np

SNAPSHOT_DIR = "ema_snapshots"
_NAME = re.compile(r"step_(\d+)\.npz")
_TMP_MARK = ".tmp"


def snapshot_dir(workdir: str) -> str:
    return os.path.join(workdir, SNAPSHOT_DIR)


def leaf_name(path) -> str:
    """The name of a params-tree leaf in a snapshot file, from its key path."""
    return jax.tree_util.keystr(path, simple=True, separator="/")


def flat_arrays(tree: Any) -> dict[str, np.ndarray]:
    """{leaf_name: numpy array} of a host tree."""
    return {leaf_name(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def write_snapshot(workdir: str, step: int, sigma_rels, gammas, profiles: tuple) -> str:
    """Write the host `profiles` (one params tree per sigma_rel) of `step` atomically; returns the file's path."""
    folder = snapshot_dir(workdir)
    os.makedirs(folder, exist_ok=True)
    arrays = {f"profile{i}/{name}": x for i, tree in enumerate(profiles) for name, x in flat_arrays(tree).items()}
    path = os.path.join(folder, f"step_{step:07d}.npz")
    tmp = f"{path}{_TMP_MARK}{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(
            f,
            sigma_rels=np.asarray(sigma_rels, np.float64),
            gammas=np.asarray(gammas, np.float64),
            step=np.int64(step),
            **arrays,
        )
    os.replace(tmp, path)
    return path


def remove_stale_temporaries(workdir: str) -> list[str]:
    """Delete the temporary files a killed snapshot write left behind."""
    folder = snapshot_dir(workdir)
    if not os.path.isdir(folder) or jax.process_index() != 0:
        return []
    stale = sorted(n for n in os.listdir(folder) if _TMP_MARK in n)
    for name in stale:
        os.remove(os.path.join(folder, name))
    return stale


def list_snapshots(workdir: str) -> dict[int, str]:
    """step -> path of each finished snapshot file of a run directory, in step order."""
    folder = snapshot_dir(workdir)
    if not os.path.isdir(folder):
        return {}
    found = {int(m.group(1)): os.path.join(folder, n) for n in os.listdir(folder) if (m := _NAME.fullmatch(n))}
    return dict(sorted(found.items()))


def snapshot_gammas(path: str) -> np.ndarray:
    """float64 [n]: the exponents of the profiles a snapshot file holds (without reading its arrays)."""
    with np.load(path) as z:
        return np.asarray(z["gammas"], np.float64)


def read_snapshot(path: str) -> list[dict[str, np.ndarray]]:
    """The profiles of a snapshot file, each {leaf_name: array}, in the order of its `gammas`."""
    with np.load(path) as z:
        profiles: list[dict[str, np.ndarray]] = [{} for _ in z["gammas"]]
        for key in z.files:
            head, _, name = key.partition("/")
            if head.startswith("profile") and name:
                profiles[int(head[len("profile") :])][name] = z[key]
    return profiles
