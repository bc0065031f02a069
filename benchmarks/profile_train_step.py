"""Where a jit-compiled train step spends its time: a `jax.profiler` trace, summarised by op.

    python benchmarks/profile_train_step.py --config experiments/configs/ddpm_mnist.py --steps 10 --top 25
    python benchmarks/profile_train_step.py --trace DIR --hlo step.hlo --steps 5   # a trace written elsewhere

Runs the real `method.train_step` (jit-compiled as the training loop does, batch from the configured data)
under `jax.profiler.trace`, reads the Perfetto trace it writes, and prints the ops of the compiled program
by total time: the XLA op name, its kind from the optimized HLO (convolution, fusion kind, custom call, ...),
its share of the step and calls per step. `--hlo FILE` also writes the optimized HLO text. Set XLA_FLAGS in
the environment to profile another backend setting.

With `--trace DIR` it reads a trace written before instead (e.g. by `benchmarks/train_throughput.py --profile DIR
--hlo FILE`, on a GPU): `--hlo` then names the HLO text to read the ops' kinds from, and `--steps` the number of
steps the trace holds. On a GPU the events that count are the kernels on the device's streams; each is named by
its XLA op where the trace says so (its `hlo_op` argument), else by the kernel's own name.
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


def device_events(trace: dict) -> tuple[list[dict], str]:
    """The op events of a Perfetto trace: those on a GPU/TPU device's threads when the trace has any (kernels, named
    by their XLA op where the event says so), else every complete event (a CPU trace). -> (events, where)."""
    events = [e for e in trace.get("traceEvents", trace) if isinstance(e, dict)]
    names = {
        e.get("pid"): e.get("args", {}).get("name", "")
        for e in events
        if e.get("ph") == "M" and e.get("name") == "process_name"
    }
    devices = {
        pid for pid, n in names.items() if re.search(r"/device:(GPU|TPU)|GPU|TPU", n) and "host" not in n.lower()
    }
    complete = [e for e in events if e.get("ph") == "X" and "dur" in e]
    if devices:
        picked = [e for e in complete if e.get("pid") in devices]
        for e in picked:
            args = e.get("args") or {}
            e["name"] = args.get("hlo_op") or args.get("long_name", "").split(" ")[0] or e["name"]
        return picked, "device threads: " + ", ".join(sorted(names[p] for p in devices))
    return complete, "all threads"


def summarize(events: list[dict], kinds: dict[str, str], steps: int, top: int, wall: float | None) -> None:
    """Print the top ops by time per step and the same grouped by op family."""
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        total[e["name"]] += e["dur"] / 1e6
        count[e["name"]] += 1
    busy = sum(total.values()) / steps
    by_kind = collections.Counter()  # op family: the name without its number, with the op's kind
    for name, t in total.items():
        family = re.sub(r"[.]\d+$", "", name)
        kind = re.sub(r"\[\d+ elementwise ops\]", "", kinds.get(name, "?"))
        by_kind[f"{family[:40]:<40} {kind}"] += t
    shown = "" if wall is None else f"{wall:.4f} s/step wall (under the profiler), "
    print(f"{steps} profiled steps: {shown}{busy:.4f} s/step summed over {len(events) / steps:.0f} op events per step")
    print(f"\ntop {top} ops by time (s per step, share of the summed op time, calls per step):")
    for name, t in total.most_common(top):
        print(
            f"  {t / steps:8.5f} s  {100 * t / steps / busy:5.1f}%  {count[name] / steps:5.1f}x  {name[:60]:<60} "
            f"{kinds.get(name, '')}"
        )
    print("\nby op family (name without its number, and kind):")
    for kind, t in by_kind.most_common(top):
        print(f"  {t / steps:8.5f} s  {100 * t / steps / busy:5.1f}%  {kind}")


def read_trace(logdir: str) -> dict:
    files = glob.glob(os.path.join(logdir, "**", "*trace.json.gz"), recursive=True)
    files = [f for f in files if "perfetto" not in os.path.basename(f)] or files  # the trace viewer's events
    if not files:
        sys.exit(f"no trace (*trace.json.gz) under {logdir}")
    with gzip.open(sorted(files)[-1]) as f:
        return json.load(f)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="experiments/configs/ddpm_mnist.py")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--hlo", help="write the optimized HLO text of the step here (with --trace: read it from here)")
    p.add_argument("--trace", help="summarise the trace under this folder instead of running a step")
    a = p.parse_args()
    if a.trace:
        kinds = {}
        if a.hlo:
            opener = gzip.open if a.hlo.endswith(".gz") else open
            with opener(a.hlo, "rt") as f:
                kinds = hlo_kinds(f.read())
        events, where = device_events(read_trace(a.trace))
        print(f"trace {a.trace}: {where}")
        summarize(events, kinds, a.steps, a.top, None)
        return

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
        trace = read_trace(logdir)
    events, where = device_events(trace)
    events = [e for e in events if e["name"] in kinds]  # ops of the compiled program
    print(f"{cfg.name}: batch {a.batch}, {where}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    summarize(events, kinds, a.steps, a.top, wall)


if __name__ == "__main__":
    main()
