"""The device mesh and how the loop lays arrays out on it: batches over every device, parameters over "fsdp".

The mesh is 2-D, ("data", "fsdp") = (devices / fsdp, fsdp), `jax.devices()` in their order, so that each process's
devices hold consecutive rows of a batch (`config.parallel.fsdp`; 1 gives plain data parallelism).
- A batch is split along its first axis over both mesh axes: every device holds B / devices examples.
- Each array of `params`, `opt_state`, `ema_params` and `power_ema` (post-hoc EMA profiles) is split over "fsdp"
  along its largest axis that fsdp divides (the last such axis on a tie) and replicated over "data"; an array with
  no such axis (a scalar, a bias of odd length) is replicated. Adam's moments have their parameter's shape, so they
  are split like it.
- `step`, `key` and `model_state` are replicated.
`jax.jit` compiles the train step with these layouts (FSDP, or ZeRO-3): XLA all-gathers each parameter where the
step uses it and reduce-scatters its gradient, so each device keeps about 1/fsdp of the parameters, optimizer state
and EMA between steps. Evaluation and sampling gather the EMA parameters to every device first (`gather`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jgen.config import is_integer
from jgen.train.state import TrainState

DATA, FSDP = "data", "fsdp"


def make_mesh(fsdp: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """The (devices / fsdp) x fsdp mesh with axes ("data", "fsdp") over `devices` (default: all of them)."""
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if not is_integer(fsdp, 1) or n % fsdp:
        raise ValueError(f"fsdp={fsdp!r}: must be a positive integer dividing the device count ({n})")
    return Mesh(np.array(devices).reshape(n // fsdp, fsdp), (DATA, FSDP))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, steps_per_call: int = 1) -> NamedSharding:
    """A call's input batch: [B, ...] split over every mesh axis, or [K, B, ...] with the K steps unsplit."""
    axes = tuple(mesh.axis_names)
    return NamedSharding(mesh, P(axes) if steps_per_call == 1 else P(None, axes))


def fsdp_spec(shape: Sequence[int], fsdp: int) -> P:
    """The PartitionSpec of an array of `shape` over an "fsdp" axis of size `fsdp`: its largest axis that `fsdp`
    divides (the last one on a tie) on "fsdp", the rest unsplit; P() (replicated) when no axis qualifies."""
    if fsdp == 1:
        return P()
    divisible = [i for i, d in enumerate(shape) if d >= fsdp and d % fsdp == 0]
    if not divisible:
        return P()
    axis = max(divisible, key=lambda i: (shape[i], i))
    return P(*([None] * axis), FSDP)


def state_sharding(mesh: Mesh, state: TrainState) -> TrainState:
    """A TrainState of NamedShardings for `state` (concrete or `jax.eval_shape`'s abstract arrays): params,
    opt_state, ema_params and power_ema split over "fsdp" by `fsdp_spec`, everything else replicated."""
    size = dict(mesh.shape).get(FSDP, 1)
    repl = replicated(mesh)

    def split(tree: Any) -> Any:
        return jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(x.shape, size)), tree)

    return state.replace(
        step=repl,
        params=split(state.params),
        opt_state=split(state.opt_state),
        ema_params=split(state.ema_params),
        power_ema=split(state.power_ema),
        model_state=jax.tree.map(lambda _: repl, state.model_state),
        key=repl,
    )


def gather(tree: Any, mesh: Mesh) -> Any:
    """`tree` replicated on every device of `mesh` (a no-op for arrays that already are)."""
    return jax.device_put(tree, replicated(mesh))


def bytes_per_device(tree: Any) -> int:
    """Bytes one device holds of the arrays of `tree` (sharded arrays: their shard; all shards are equal here)."""
    total = 0
    for x in jax.tree.leaves(tree):
        sharding = getattr(x, "sharding", None)
        shape = sharding.shard_shape(x.shape) if sharding is not None else x.shape
        total += math.prod(shape) * np.dtype(x.dtype).itemsize
    return total
