"""Does prefetching the next batch help the training loop? Steps/s of the loop's inner step, with and without.

    python benchmarks/prefetch.py --config experiments/configs/vae_mnist.py --steps 200 --rounds 3

"inline" is what `jgen.train.loop` does: on the main thread, `next(it)` (the grain pipeline), then the batch
is made a global array and the jit-compiled step is dispatched (asynchronously: the host is free again as
soon as it is queued). "prefetch" moves `next(it)` and the host-to-device transfer onto a background thread
that keeps one batch ready ahead of the step. Both run the real `method.train_step` and the real data
pipeline; the variants alternate round by round so that both see the same machine.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def prefetched(it, put, depth: int = 1):
    """Yield put(next(it)) from a daemon thread that stays `depth` batches ahead."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def work():
        for batch in it:
            q.put(put(batch))
        q.put(done)

    threading.Thread(target=work, daemon=True).start()
    while True:
        item = q.get()
        if item is done:
            return
        yield item


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="experiments/configs/vae_mnist.py")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()

    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from jgen.data import get_source, make_train_iterator
    from jgen.methods import get_method
    from jgen.run import load_config

    cfg = load_config(a.config)
    train_src, _, info = get_source(cfg.data)
    method = get_method(cfg.method.name)(cfg, info)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    repl, data_sh = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))

    def step_fn(state, batch):
        return method.train_step(state, batch, jax.random.fold_in(state.key, state.step))

    p_step = jax.jit(step_fn, in_shardings=(repl, data_sh), out_shardings=(repl, repl), donate_argnums=0)

    def put(batch):  # what the loop's _to_global does on one process
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(data_sh, np.asarray(x)), batch)

    it = make_train_iterator(train_src, cfg.seed, cfg.data.batch_size)
    state = jax.jit(method.init_state, out_shardings=repl)(jax.random.PRNGKey(cfg.seed), next(it))
    state, _ = p_step(state, put(next(it)))  # compile
    jax.block_until_ready(state)

    def run(variant: str, state):
        it = make_train_iterator(train_src, cfg.seed, cfg.data.batch_size)
        batches = prefetched(it, put) if variant == "prefetch" else (put(b) for b in it)
        pending = []
        t0 = time.perf_counter()
        for i, batch in enumerate(batches):
            state, metrics = p_step(state, batch)
            pending.append(metrics)
            if (i + 1) % cfg.train.log_every == 0:  # the loop reads the metrics back at each log step
                jax.device_get(pending)
                pending = []
            if i + 1 == a.steps:
                break
        jax.block_until_ready(state)
        return state, a.steps / (time.perf_counter() - t0)

    rates = {"inline": [], "prefetch": []}
    for r in range(a.rounds):
        for variant in ["inline", "prefetch"] if r % 2 == 0 else ["prefetch", "inline"]:
            state, rate = run(variant, state)
            rates[variant].append(rate)
            print(f"round {r} {variant:<8} {rate:7.2f} steps/s  load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    base = statistics.median(rates["inline"])
    print(f"{cfg.name}, batch {cfg.data.batch_size}, {a.steps} steps x {a.rounds} rounds per variant:")
    for k, v in rates.items():
        print(
            f"  {k:<8} median {statistics.median(v):7.2f} steps/s ({statistics.median(v) / base:.3f}x inline)  "
            f"all: {', '.join(f'{x:.2f}' for x in v)}"
        )


if __name__ == "__main__":
    main()
