"""Two small costs outside the networks: imports before training starts, and the DDIM noise at eta = 0.

    python benchmarks/small_costs.py imports --runs 5
    python benchmarks/small_costs.py ddim_noise --runs 5

imports: CPU and wall time of a fresh `python -c "import jgen.methods"` (what `jgen train` imports before it starts),
against the same with the scipy-backed metric modules (jgen.metrics.fid, jgen.metrics.isc) imported too,
which is what every training run paid while `jgen.metrics` imported them eagerly. Runs alternate.

ddim_noise: jgen's DDIM sampler (`method.generate`, ddpm_mnist UNet, 20 steps, batch 64, eta = 0) against
a scan of the 20 standard-normal draws its step used to make whatever eta was (the same shapes and keys),
both jit-compiled: the share of a sampler call that drawing unused noise cost (the step no longer draws them
at eta = 0).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def imports(runs: int) -> None:
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    variants = {
        "import jgen.methods": "import jgen.methods",
        "... + jgen.metrics.fid, .isc (scipy)": "import jgen.methods, jgen.metrics.fid, jgen.metrics.isc",
    }
    times = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    for r in range(runs):
        for name in list(variants) if r % 2 == 0 else list(variants)[::-1]:
            c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", variants[name]],
                env=env,
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            times[name].append(time.perf_counter() - t0)
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)
    print(
        f"fresh-process imports, median of {runs} alternating runs (load {os.getloadavg()[0]:.2f}); "
        "CPU time is the robust figure on a busy machine:"
    )
    for name in variants:
        print(f"  CPU {statistics.median(cpu[name]):6.3f} s  wall {statistics.median(times[name]):6.3f} s  {name}")


def ddim_noise(runs: int) -> None:
    sys.path.insert(0, ROOT)

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jgen.data import get_source
    from jgen.methods import get_method
    from jgen.run import load_config

    cfg = load_config(os.path.join(ROOT, "experiments/configs/ddpm_mnist.py"))
    _, _, info = get_source(cfg.data)
    method = get_method("diffusion")(cfg, info)
    b, shape = 64, (64, *info.shape)
    batch = {"image": np.zeros(shape, np.float32), "label": np.zeros((b,), np.int32)}
    params = method.init_variables(jax.random.PRNGKey(0), batch)[0]
    labels = jnp.arange(b, dtype=jnp.int32) % 10
    steps = 20
    ddim = method.sampling_spec(sampler="ddim", steps=steps, eta=0.0)
    sampler = jax.jit(lambda p, k: method.generate(p, None, k, b, labels, ddim)[0])

    @jax.jit
    def noise_only(key):  # the draws of _ddim_loop's body: normal(fold_in(key, i), x.shape) for each step
        def body(acc, i):
            return acc + jax.random.normal(jax.random.fold_in(key, i), shape, jnp.float32), None

        return jax.lax.scan(body, jnp.zeros(shape, jnp.float32), jnp.arange(steps))[0]

    key = jax.random.PRNGKey(1)
    jax.block_until_ready((sampler(params, key), noise_only(key)))
    t = {"sampler": [], "noise": []}
    for r in range(runs):
        for name, fn in (
            (("sampler", lambda: sampler(params, key)), ("noise", lambda: noise_only(key)))
            if r % 2 == 0
            else (("noise", lambda: noise_only(key)), ("sampler", lambda: sampler(params, key)))
        ):
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            t[name].append(time.perf_counter() - t0)
    s, n = statistics.median(t["sampler"]), statistics.median(t["noise"])
    print(
        f"DDIM {steps} steps, batch {b}, eta=0 (load {os.getloadavg()[0]:.2f}): sampler {s:.4f} s; its {steps} "
        f"unused normal draws alone {n:.4f} s = {100 * n / s:.1f}% of the call (medians of {runs})"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["imports", "ddim_noise"])
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    imports(a.runs) if a.what == "imports" else ddim_noise(a.runs)


if __name__ == "__main__":
    main()
