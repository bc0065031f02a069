"""Compiled memory of the training step with and without `model.remat` (and in each compute dtype).

    python benchmarks/remat_memory.py                                  # ddpm_cifar10 at batch 8, float32
    python benchmarks/remat_memory.py --batch 16 --dtypes float32,bfloat16
    python benchmarks/remat_memory.py --config experiments/configs/ddpm_mnist.py --batch 64

The step is the training loop's own (`jgen.train.loop.jitted_train_step`) on one device, lowered from abstract
shapes (`jax.eval_shape`: no parameters are allocated and no data is read) and compiled for this machine's backend;
XLA's `memory_analysis()` of the compiled program gives the figures. "temp" is the scratch space the step needs
beyond its inputs and outputs (activations kept for the backward pass live there); the peak estimate is
arguments + outputs - donated (aliased) bytes + temp. "saved" is backend-independent: the bytes the forward pass
keeps for the backward pass (the leaves of `jax.vjp`'s closure of the loss, weights included), which remat is
meant to shrink. XLA's CPU backend does not turn that into a smaller compiled peak (its schedule recomputes early;
see jax-ml/jax#19822), so on a CPU the temp column may not drop; on a GPU/TPU it should. Compiling the
35.7M-parameter CIFAR-10 UNet takes minutes on a CPU.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jgen.data import DataInfo  # noqa: E402
from jgen.run import build_method, load_config, validate  # noqa: E402
from jgen.train.loop import jitted_train_step  # noqa: E402
from jgen.train.sharding import make_mesh  # noqa: E402

CIFAR10 = DataInfo("cifar10", (32, 32, 3), 10, 50_000, 10_000)
MNIST = DataInfo("mnist", (28, 28, 1), 10, 4_000, 1_000)


def step_memory(config, info: DataInfo, batch: int) -> dict[str, float]:
    """MiB figures of the compiled train step of `config` at `batch` examples on one device, the MiB its forward
    pass saves for the backward pass, and the compile seconds."""
    method = build_method(config, info, None)
    abstract_batch = {
        "image": jax.ShapeDtypeStruct((batch, *info.shape), np.float32),
        "label": jax.ShapeDtypeStruct((batch,), np.int32),
    }
    key = jax.random.PRNGKey(0)
    state = jax.eval_shape(method.init_state, key, abstract_batch)

    def backward_closure(params, batch):
        return jax.vjp(lambda p: method.loss_fn(p, state.model_state, batch, key)[0], params)[1]

    saved = jax.eval_shape(backward_closure, state.params, abstract_batch)
    saved_bytes = sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(saved))
    mesh = make_mesh(1, jax.devices()[:1])
    t0 = time.perf_counter()
    compiled = jitted_train_step(method, mesh).lower(state, abstract_batch).compile()
    seconds = time.perf_counter() - t0
    m = compiled.memory_analysis()
    mib = {k: getattr(m, f"{k}_size_in_bytes") / 2**20 for k in ("argument", "output", "alias", "temp")}
    mib["peak"] = mib["argument"] + mib["output"] - mib["alias"] + mib["temp"]
    mib["saved"] = saved_bytes / 2**20
    mib["compile_s"] = seconds
    return mib


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="experiments/configs/ddpm_cifar10.py")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--dtypes", default="float32")
    p.add_argument("overrides", nargs="*", help="config overrides field=value")
    a = p.parse_args()
    info = CIFAR10 if "cifar10" in os.path.basename(a.config) else MNIST
    print(
        f"{a.config} at batch {a.batch} on one {jax.devices()[0].platform} device; MiB "
        f"(peak = arguments + outputs - aliased + temp)"
    )
    print(
        f"{'dtype':>9} {'remat':>6} {'saved':>9} {'arguments':>10} {'outputs':>8} {'aliased':>8} {'temp':>9} "
        f"{'peak':>9} {'compile s':>9}"
    )
    for dtype in a.dtypes.split(","):
        for remat in (False, True):
            config = load_config(
                a.config, [*a.overrides, f"model.dtype={dtype}", f"model.remat={remat}", f"data.batch_size={a.batch}"]
            )
            validate(config, num_devices=1)
            m = step_memory(config, info, a.batch)
            print(
                f"{dtype:>9} {str(remat):>6} {m['saved']:9.1f} {m['argument']:10.1f} {m['output']:8.1f} "
                f"{m['alias']:8.1f} {m['temp']:9.1f} {m['peak']:9.1f} {m['compile_s']:9.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
