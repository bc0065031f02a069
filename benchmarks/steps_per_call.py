"""Train steps/s of the compiled train call with K steps per call (train.steps_per_call), interleaved trials.

    python benchmarks/steps_per_call.py --config experiments/configs/vae_mnist.py --ks 1,4,16 --steps 192 --trials 5

The call is the training loop's own (`jgen.train.loop.jitted_train_step`) on this machine's devices, fed the
config's real batches already on the device, so the figure isolates what K changes: the per-call dispatch and
host round trip (the input pipeline is the same for every K and not timed). Each trial times `--steps` steps
for every K in turn (interleaved, so a change in machine load hits all K alike); the table gives the median
and the spread over trials, and the speed-up of each K over K=1.
"""

import argparse
import os
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P

from jgen.data import get_source, make_train_iterator  # noqa: E402
from jgen.run import build_method, load_config, validate  # noqa: E402
from jgen.train.loop import jitted_train_step  # noqa: E402
from jgen.train.sharding import batch_sharding  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="experiments/configs/vae_mnist.py")
    p.add_argument("--ks", default="1,4,16")
    p.add_argument("--steps", type=int, default=192, help="steps timed per trial and K (a multiple of every K)")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("overrides", nargs="*", help="config overrides field=value")
    a = p.parse_args()
    ks = [int(k) for k in a.ks.split(",")]
    if any(a.steps % k for k in ks):
        sys.exit(f"--steps={a.steps} must be a multiple of every K in {ks}")
    config = load_config(a.config, a.overrides)
    validate(config)
    train, _, info = get_source(config.data)
    method = build_method(config, info, train)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    it = make_train_iterator(train, config.seed, config.data.batch_size, random_flip=config.data.random_flip)
    host = [next(it) for _ in range(a.steps)]
    batches = {}
    for k in ks:  # the same `steps` batches for every K, as K-stacks on the device
        sh = batch_sharding(mesh, k)
        stacks = [host[i : i + k] for i in range(0, a.steps, k)]
        batches[k] = [jax.device_put(b[0] if k == 1 else jax.tree.map(lambda *x: np.stack(x), *b), sh) for b in stacks]
    init = jax.jit(method.init_state, out_shardings=NamedSharding(mesh, P()))
    calls = {k: jitted_train_step(method, mesh, k, config.train.skip_nonfinite_updates) for k in ks}
    for k in ks:  # compile (and warm up) outside the timing
        state = init(jax.random.PRNGKey(config.seed), host[0])
        jax.block_until_ready(calls[k](state, batches[k][0]))
    rates = {k: [] for k in ks}
    for _ in range(a.trials):
        for k in ks:
            state = init(jax.random.PRNGKey(config.seed), host[0])
            jax.block_until_ready(state)
            t0 = time.perf_counter()
            for b in batches[k]:
                state, metrics = calls[k](state, b)
            jax.block_until_ready((state, metrics))
            rates[k].append(a.steps / (time.perf_counter() - t0))
    base = statistics.median(rates[ks[0]])
    print(
        f"{config.name}: batch {config.data.batch_size}, {jax.device_count()} device(s), {a.steps} steps x "
        f"{a.trials} interleaved trials"
    )
    print(f"{'K':>4} {'steps/s':>9} {'min':>8} {'max':>8} {'vs K=' + str(ks[0]):>8}")
    for k in ks:
        m = statistics.median(rates[k])
        print(f"{k:>4} {m:>9.1f} {min(rates[k]):>8.1f} {max(rates[k]):>8.1f} {m / base:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
