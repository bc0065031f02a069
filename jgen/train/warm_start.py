"""Starting a run from another run's parameters (`train.init_from`): fine-tuning, e.g. consistency training from a
trained EDM model (ECT's initialisation) or MeanFlow from a flow-matching model.

`overlay` is pure: the fresh initialisation with every array the source holds at the same path and shape replaced
by the source's. Arrays only the fresh model has (e.g. MeanFlow's interval embedding on a flow model) keep their
initialisation; arrays only the source has are ignored. The run layer loads the source and the loop applies the
overlay once, to a run that starts from step 0 (a resumed run restores its own checkpoint instead).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jgen.config import InputError


def _path_name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def overlay(fresh: Any, source: Any, where: str = "the source run") -> tuple[Any, list[str], list[str]]:
    """(fresh with the source's arrays where path and shape agree, the paths copied, the paths kept fresh).
    InputError when a shared path has another shape (a different model: its config must match) or when no path is
    shared at all (nothing would be copied)."""
    src = {_path_name(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(source)[0]}
    copied, kept = [], []

    def pick(path, x):
        name = _path_name(path)
        if name not in src:
            kept.append(name)
            return x
        if tuple(src[name].shape) != tuple(x.shape):
            raise InputError(
                f"train.init_from: parameter {name} has shape {tuple(src[name].shape)} in {where} but "
                f"{tuple(x.shape)} in this model; give this run the source's model fields (model.*)"
            )
        copied.append(name)
        return src[name].astype(x.dtype)

    out = jax.tree_util.tree_map_with_path(pick, fresh)
    if not copied:
        raise InputError(
            f"train.init_from: {where} shares no parameter with this model (another backbone?); "
            "start from a run of the same model.kind"
        )
    return out, copied, kept
