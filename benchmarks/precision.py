"""Train step time and loss in each compute dtype (`model.dtype`), on the same data from the same seed.

    python benchmarks/precision.py                                   # ddpm_mnist, batch 64, 60 steps
    python benchmarks/precision.py --steps 200 --dtypes float32,bfloat16 data.batch_size=128

The step is the training loop's own (`jgen.train.loop.jitted_train_step`) on this machine's devices, fed the same
host batches for every dtype. Reported per dtype: compile seconds, the median seconds of a step (after compilation),
and the mean train loss over the first and the last 10 steps. bfloat16 pays off on accelerators with bfloat16
matrix units (TPU, recent GPUs); XLA's CPU backend mostly emulates it, so on a CPU it may well be slower.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jgen.data import get_source, make_train_iterator  # noqa: E402
from jgen.run import build_method, load_config, validate  # noqa: E402
from jgen.train.loop import jitted_train_step  # noqa: E402
from jgen.train.sharding import batch_sharding, make_mesh, state_sharding  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="experiments/configs/ddpm_mnist.py")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("overrides", nargs="*", help="config overrides field=value")
    a = p.parse_args()
    base = load_config(a.config, a.overrides)
    train, _, info = get_source(base.data)
    it = make_train_iterator(train, base.seed, base.data.batch_size, random_flip=base.data.random_flip)
    host = [next(it) for _ in range(a.steps)]
    print(
        f"{base.name}: batch {base.data.batch_size}, {a.steps} steps, {jax.device_count()} "
        f"{jax.devices()[0].platform} device(s), fsdp {base.parallel.fsdp}"
    )
    print(f"{'dtype':>9} {'compile s':>9} {'s/step':>8} {'loss first 10':>13} {'loss last 10':>12}")
    for dtype in a.dtypes.split(","):
        config = load_config(a.config, [*a.overrides, f"model.dtype={dtype}"])
        validate(config)
        method = build_method(config, info, train)
        mesh = make_mesh(config.parallel.fsdp)
        batches = [jax.device_put(b, batch_sharding(mesh)) for b in host]
        key = jax.random.PRNGKey(config.seed)
        shardings = state_sharding(mesh, jax.eval_shape(method.init_state, key, batches[0]))
        state = jax.jit(method.init_state, out_shardings=shardings)(key, batches[0])
        t0 = time.perf_counter()
        step = jitted_train_step(method, mesh, state_shardings=shardings).lower(state, batches[0]).compile()
        compile_s = time.perf_counter() - t0
        times, losses = [], []
        for b in batches:
            t0 = time.perf_counter()
            state, metrics = step(state, b)
            losses.append(float(metrics["loss"]))  # waits for the step
            times.append(time.perf_counter() - t0)
        print(
            f"{dtype:>9} {compile_s:9.1f} {statistics.median(times):8.3f} {np.mean(losses[:10]):13.4f} "
            f"{np.mean(losses[-10:]):12.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
