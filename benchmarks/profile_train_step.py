"""Where a jit-compiled train step spends its time on the CPU: a `jax.profiler` trace, summarised by op.

    python benchmarks/profile_train_step.py --config experiments/configs/ddpm_mnist.py --steps 10 --top 25

Runs the real `method.train_step` (jit-compiled as the training loop does, batch from the configured data)
under `jax.profiler.trace`, reads the Perfetto trace it writes, and prints the ops of the compiled program
by total time: the XLA op name, its kind from the optimized HLO (convolution, fusion kind, custom call, ...),
its share of the step and calls per step. `--hlo FILE` also writes the optimized HLO text. Set XLA_FLAGS in
the environment to profile another backend setting.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def hlo_kinds(hlo_text: str) -> dict[str, str]:
    """Instruction name -> a short description: its opcode, plus the fusion kind / custom-call target, and for
    a fusion the opcodes it contains (the heaviest first: convolution, dot, reduce)."""
    kinds: dict[str, str] = {}
    bodies: dict[str, list[str]] = collections.defaultdict(list)
    current = None
    for line in hlo_text.splitlines():
        m = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line.strip()) if not line.startswith(" ") else None
        if m:
            current = m.group(1)
            continue
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = \S+ ([\w\-]+)\(", line)
        if not m:
            continue
        name, op = m.groups()
        if current:
            bodies[current].append(op)
        desc = op
        if op == "fusion":
            kind = re.search(r"kind=(\w+)", line)
            called = re.search(r"calls=%?([\w.\-]+)", line)
            desc = f"fusion:{kind.group(1) if kind else '?'}"
            if called:
                kinds.setdefault("__calls__" + name, called.group(1))
        elif op == "custom-call":
            target = re.search(r'custom_call_target="([^"]+)"', line)
            desc = f"custom-call:{target.group(1) if target else '?'}"
        kinds[name] = desc
    for key in [k for k in kinds if k.startswith("__calls__")]:
        name, comp = key[len("__calls__") :], kinds.pop(key)
        ops = collections.Counter(bodies.get(comp, []))
        heavy = [o for o in ("convolution", "dot", "reduce", "reduce-window", "scatter", "gather") if ops[o]]
        kinds[name] += "[" + ",".join(heavy or [f"{len(bodies.get(comp, []))} elementwise ops"]) + "]"
    return kinds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="experiments/configs/ddpm_mnist.py")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--hlo", help="write the optimized HLO text of the step here")
    a = p.parse_args()

    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from jgen.data import get_source, make_train_iterator
    from jgen.methods import get_method
    from jgen.run import load_config

    cfg = load_config(a.config)
    cfg.data.batch_size = a.batch
    train_src, _, info = get_source(cfg.data)
    method = get_method(cfg.method.name)(cfg, info)
    batch = next(make_train_iterator(train_src, cfg.seed, a.batch))
    mesh = Mesh(np.array(jax.devices()), ("data",))
    repl, data_sh = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))

    def step_fn(state, batch):
        return method.train_step(state, batch, jax.random.fold_in(state.key, state.step))

    step = jax.jit(step_fn, in_shardings=(repl, data_sh), out_shardings=(repl, repl), donate_argnums=0)
    state = jax.jit(method.init_state, out_shardings=repl)(jax.random.PRNGKey(cfg.seed), batch)
    gbatch = jax.device_put(batch, data_sh)
    compiled = step.lower(state, gbatch).compile()
    hlo = compiled.as_text()
    if a.hlo:
        with open(a.hlo, "w") as f:
            f.write(hlo)
    kinds = hlo_kinds(hlo)
    for _ in range(3):
        state, metrics = step(state, gbatch)
    jax.block_until_ready(state)

    with tempfile.TemporaryDirectory() as logdir:
        t0 = time.perf_counter()
        with jax.profiler.trace(logdir, create_perfetto_trace=True):
            for _ in range(a.steps):
                state, metrics = step(state, gbatch)
                jax.block_until_ready(state)
        wall = (time.perf_counter() - t0) / a.steps
        files = glob.glob(os.path.join(logdir, "**", "*.trace.json.gz"), recursive=True)
        if not files:
            sys.exit("the profiler wrote no Perfetto trace")
        with gzip.open(files[0]) as f:
            trace = json.load(f)
    events = [e for e in trace.get("traceEvents", trace) if e.get("ph") == "X"]
    # ops of the compiled program: events whose name is an instruction of the optimized HLO
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        name = e["name"]
        if name in kinds:
            total[name] += e["dur"] / 1e6
            count[name] += 1
    busy = sum(total.values()) / a.steps
    by_kind = collections.Counter()  # op family: the name without its number, with the op's kind
    for name, t in total.items():
        family = re.sub(r"[.]\d+$", "", name)
        kind = re.sub(r"\[\d+ elementwise ops\]", "", kinds[name])
        by_kind[f"{family:<28} {kind}"] += t
    threads = len({(e["pid"], e["tid"]) for e in events if e["name"] in kinds})
    print(
        f"{cfg.name}: batch {a.batch}, {a.steps} profiled steps, {wall:.4f} s/step wall (under the profiler), "
        f"{busy:.4f} s/step summed over op events on {threads} threads; "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )
    print(f"\ntop {a.top} ops by time (s per step, share of the summed op time, calls per step):")
    for name, t in total.most_common(a.top):
        share, calls = 100 * t / a.steps / busy, count[name] / a.steps
        print(f"  {t / a.steps:8.4f} s  {share:5.1f}%  {calls:5.1f}x  {name:<40} {kinds[name]}")
    print("\nby op family (name without its number, and kind):")
    for kind, t in by_kind.most_common(15):
        print(f"  {t / a.steps:8.4f} s  {100 * t / a.steps / busy:5.1f}%  {kind}")


if __name__ == "__main__":
    main()
