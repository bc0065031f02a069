"""Train-step cost of several experiments against the first, timed interleaved in one process.

    python benchmarks/step_cost.py experiments/configs/flow_mnist.py experiments/configs/meanflow_mnist.py \\
        experiments/configs/shortcut_mnist.py experiments/configs/consistency_mnist.py --steps 20 --rounds 5

Each config's compiled train step (`jgen.train.loop.jitted_train_step`, one step per call) is built once and fed
its own real batches already on the device; then --rounds rounds time --steps steps of every config in turn, so a
change in the machine's load touches every config alike. Prints per config: the median seconds per step over the
rounds, its ratio to the first config's (the figure to quote; on a shared machine ratios hold where absolute times
do not), the FLOP per step counted from the jaxpr (`jgen.train.throughput.count_flops`) and that ratio.
--json writes the same as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(path: str, steps: int, overrides: list[str]):
    """(name, compiled one-step call, state, device batches [steps], FLOP per step) of one config."""
    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from jgen.data import get_source, make_train_iterator
    from jgen.run import build_method, load_config, validate
    from jgen.train.loop import batch_sharding, jitted_train_step
    from jgen.train.throughput import count_flops

    config = load_config(path, overrides)
    validate(config)
    train, _, info = get_source(config.data)
    method = build_method(config, info, train)
    with make_train_iterator(train, config.seed, config.data.batch_size, random_flip=config.data.random_flip) as it:
        host = [next(it) for _ in range(steps)]
    mesh = Mesh(np.array(jax.devices()), ("data",))
    state = jax.jit(method.init_state, out_shardings=NamedSharding(mesh, P()))(jax.random.PRNGKey(config.seed), host[0])
    batches = [jax.device_put(b, batch_sharding(mesh, 1)) for b in host]
    step = jitted_train_step(method, mesh, 1)
    flops = count_flops(step, state, batches[0]).total
    call = step.lower(state, batches[0]).compile()
    state, metrics = call(state, batches[0])  # warm
    jax.block_until_ready((state, metrics))
    return config.name, call, state, batches, flops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="+", help="config files; the first is the reference")
    p.add_argument("--steps", type=int, default=20, help="steps timed per config per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--override", action="append", default=[], help="field=value for every config, e.g. data.batch_size=8"
    )
    p.add_argument("--json", default="", help="also write the figures here")
    a = p.parse_args()
    sys.path.insert(0, ROOT)
    import jax

    built = [build(c, a.steps, a.override) for c in a.configs]
    times: dict[str, list[float]] = {name: [] for name, *_ in built}
    states = {name: state for name, _, state, _, _ in built}
    for r in range(a.rounds):
        for name, call, _, batches, _ in built:
            state = states[name]
            t0 = time.perf_counter()
            for b in batches:
                state, metrics = call(state, b)
            jax.block_until_ready((state, metrics))
            times[name].append((time.perf_counter() - t0) / a.steps)
            states[name] = state
        print(
            f"round {r + 1}/{a.rounds}: " + ", ".join(f"{n} {t[-1] * 1e3:.1f} ms" for n, t in times.items()), flush=True
        )
    ref_name, ref_flops = built[0][0], built[0][4]
    ref_s = statistics.median(times[ref_name])
    out = {"load_avg_1min": os.getloadavg()[0], "steps": a.steps, "rounds": a.rounds, "configs": {}}
    print(f"\n| config | s/step (median of {a.rounds}) | vs {ref_name} | GFLOP/step | vs {ref_name} |")
    print("|---|---|---|---|---|")
    for name, *_, flops in built:
        s = statistics.median(times[name])
        out["configs"][name] = {"step_s": s, "step_s_all": times[name], "time_ratio": s / ref_s, "flops": flops}
        print(f"| {name} | {s:.4f} | {s / ref_s:.2f}x | {flops / 1e9:.2f} | {flops / ref_flops:.2f}x |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
