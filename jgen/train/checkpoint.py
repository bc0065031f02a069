"""Orbax checkpoints of the TrainState and the data iterator (`jgen.run.load_run` reopens a finished run)."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

from jgen.train.state import TrainState


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def make_manager(workdir: str, max_to_keep: int = 2) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def save(manager: ocp.CheckpointManager, state: TrainState, data_state: dict | None) -> None:
    """Write `state` (and the data iterator's position) under its step number."""
    step = int(jax.device_get(state.step))
    args = {"state": ocp.args.StandardSave(state)}
    if data_state is not None:
        args["data"] = ocp.args.JsonSave(data_state)
    manager.save(step, args=ocp.args.Composite(**args), force=True)
    manager.wait_until_finished()


def restore(manager: ocp.CheckpointManager, target: TrainState, step: int | None = None,
            with_data: bool = True) -> tuple[TrainState, dict | None]:
    """Restore into the structure, shapes and shardings of `target` (concrete or abstract arrays)."""
    step = manager.latest_step() if step is None else step
    replicated = jax.sharding.NamedSharding(jax.sharding.Mesh(jax.devices(), ("data",)), jax.sharding.PartitionSpec())

    def spec(x):  # keep the target's sharding; replicate over this machine's devices where it has none
        sharding = getattr(x, "sharding", None)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding if sharding is not None else replicated)
    abstract = jax.tree.map(spec, target)
    args = {"state": ocp.args.StandardRestore(abstract)}
    if with_data:
        args["data"] = ocp.args.JsonRestore()
    try:
        restored = manager.restore(step, args=ocp.args.Composite(**args))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"the checkpoint at step {step} in {manager.directory} does not match this model/config "
            f"(different parameter tree or shapes). Use a new --workdir or the config it was made with. ({e})") from e
    return restored["state"], restored.get("data") if with_data else None
