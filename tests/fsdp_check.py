"""Run by tests/test_sharding.py in a process with 8 fake CPU devices; prints one JSON object.

The tiny VAE takes the same STEPS steps from the same initial state on a data=8 mesh (parameters replicated) and on
a (8 / FSDP) x FSDP mesh, with the loop's own jit-compiled step; the fsdp state is checkpointed with orbax and
restored into fsdp/2 and fsdp=1 layouts (tests/test_sharding.py's slow test resumes a whole run under another fsdp
size).

    XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu python -m tests.fsdp_check WORKDIR [FSDP STEPS]

FSDP defaults to 4 and STEPS to 4.
"""

import json
import sys

import jax
import numpy as np

from jgen.data import get_source, make_train_iterator
from jgen.run import build_method, validate
from jgen.train import checkpoint as ckpt
from jgen.train.loop import jitted_train_step
from jgen.train.sharding import batch_sharding, bytes_per_device, make_mesh, state_sharding
from tests.conftest import tiny_config


def main(workdir: str, fsdp_size: int = 4, steps: int = 4) -> dict:
    config = tiny_config("vae")
    validate(config)
    train, _, info = get_source(config.data)
    method = build_method(config, info, train)
    it = make_train_iterator(train, config.seed, config.data.batch_size)
    batches = [next(it) for _ in range(steps)]
    key = jax.random.PRNGKey(config.seed)

    def layout(fsdp):  # the loop's mesh and TrainState layout for this fsdp size
        mesh = make_mesh(fsdp)
        example = jax.device_put(batches[0], batch_sharding(mesh))
        return mesh, state_sharding(mesh, jax.eval_shape(method.init_state, key, example))

    out, states = {"devices": jax.device_count()}, {}
    start = jax.device_get(jax.jit(method.init_state)(key, batches[0]))  # the loop's init is jit with out_shardings
    for fsdp in (1, fsdp_size):
        mesh, shardings = layout(fsdp)
        step = jitted_train_step(method, mesh, state_shardings=shardings)
        state = jax.device_put(start, shardings)
        losses = []
        for b in batches:
            state, metrics = step(state, jax.device_put(b, batch_sharding(mesh)))
            losses.append(float(metrics["loss"]))
        leaves = jax.tree.leaves(state.params)
        out[f"fsdp{fsdp}"] = {
            "mesh": dict(mesh.shape),
            "losses": losses,
            "bytes": {k: bytes_per_device(getattr(state, k)) for k in ("params", "opt_state", "ema_params")},
            "sharded_leaves": sum(not x.sharding.is_fully_replicated for x in leaves),
            "leaves": len(leaves),
            "shard_shapes": sorted({str(x.addressable_shards[0].data.shape) for x in leaves}),
            # each array of the parameters and optimizer state: (shape, bytes, bytes on one device)
            "arrays": [
                (x.shape, x.nbytes, bytes_per_device(x)) for x in jax.tree.leaves((state.params, state.opt_state))
            ],
        }
        states[fsdp] = state

    manager = ckpt.make_manager(workdir)
    ckpt.save(manager, states[fsdp_size], None)
    saved = jax.tree.map(np.asarray, states[fsdp_size])
    for fsdp in (fsdp_size // 2, 1):
        _, shardings = layout(fsdp)
        target = jax.tree.map(
            lambda x, sh: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh), states[fsdp_size], shardings
        )
        restored = ckpt.restore(manager, target, with_data=False)[0]
        same = all(np.array_equal(np.asarray(a), b) for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(saved)))
        laid_out = all(a.sharding == b for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(shardings)))
        out[f"restored_fsdp{fsdp}"] = {
            "equal": same,
            "sharding_as_asked": laid_out,
            "param_bytes": bytes_per_device(restored.params),
        }
    manager.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], *(int(a) for a in sys.argv[2:]))))
