"""Train throughput of an experiment: images/s, step time, FLOP/s and MFU of the compiled step, against the input
pipeline's images/s; on 1 and N devices.

    python benchmarks/train_throughput.py --config experiments/configs/ddpm_mnist.py --devices 1 --steps 5
    python benchmarks/train_throughput.py --config experiments/configs/ddpm_cifar10.py --mock_tfds 64 \\
        --steps 3 --trials 1 data.batch_size=8
    python benchmarks/train_throughput.py --config experiments/configs/vae_mnist.py --devices 1,8 --loop

Each device count runs in a fresh process (on the CPU with XLA_FLAGS=--xla_force_host_platform_device_count=N).
For each it prints:
- input img/s: the grain iterator alone (`jgen.data.make_train_iterator` with the config's source, batch size,
  flips and data.read_ahead), once per worker count of --input_workers (default 0 and 2: read in the process, and
  by 2 grain worker processes): `next(it)` for --input_batches batches, timed from the first batch (after the
  workers' start-up), so the figure is the rate at which the pipeline produces batches, next to the step's.
- step: the training loop's own compiled call (`jgen.train.loop.jitted_train_step`, K = --steps_per_call steps per
  call) fed the config's real batches already on the device, so the figure is the step alone; the median over
  --trials of --steps timed steps, after a compiling call. images/s = global batch / step time.
- FLOP/step: counted from the step's jaxpr (`jgen.train.throughput.count_flops`), the same on every backend: the
  matmul part (dot_general and convolutions, what the matrix units do) and the rest (elementwise, reductions);
  XLA's own cost analysis of the compiled step on this backend (`step_flops`) is printed beside it -- equal to
  within ~2% on the CPU, far lower on a GPU, where XLA does not count the convolutions it hands to cuDNN.
  TFLOP/s = matmul FLOP/step / step time; MFU = that / peak, the peak from `jgen.train.throughput.peak_flops`
  (CPU: a measured dense matmul of the config's compute dtype, model.dtype if the config has one, else float32;
  GPU/TPU: the vendors' dense table) or --peak_tflops.
- --profile DIR: also writes a `jax.profiler` trace of --profile_steps steps of the timed call there, and --hlo FILE
  the optimized HLO of the one-step program (.gz: compressed); `benchmarks/profile_train_step.py --trace DIR --hlo
  FILE --steps N` summarises them by op.
- with --input_only, only the input pipeline's figure (nothing compiles).
- with --loop: steps/s of the real training loop (`jgen train` in a subprocess: the median of its own
  `steps_per_sec` rows in metrics.jsonl, the first, compiling, row skipped), input pipeline and logging included.

--mock_tfds N runs a TFDS config (ddpm_cifar10) on `tfds.testing.mock_data(num_examples=N)`: random examples of the
dataset's real shapes and dtypes made on the fly, so the step is exact but the input rate measures grain and
jgen's TFDS conversion, not reading array_record files from disk.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def loop_steps_per_sec(
    config: str, devices: int, steps: int, log_every: int, overrides: list[str], platform: str = "cpu"
) -> float:
    """Median steps/s of the real training loop in a subprocess: on `devices` host devices on the CPU, on this
    machine's accelerators otherwise."""
    with tempfile.TemporaryDirectory() as workdir:
        env = {**os.environ, "PYTHONPATH": ROOT}
        if platform == "cpu":
            env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
        cmd = [
            sys.executable,
            "-m",
            "jgen",
            "train",
            "--config",
            config,
            "--workdir",
            workdir,
            f"--config.train.steps={steps}",
            f"--config.train.log_every={log_every}",
            "--config.train.eval_every=0",
            "--config.train.sample_every=0",
            f"--config.train.checkpoint_every={steps}",
            "--config.train.progress=False",
            "--config.train.num_eval_examples=200",
            "--config.train.eval_batch_size=200",
        ]
        cmd += [f"--config.{o}" for o in overrides]
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"{devices} devices: the run failed:\n{r.stderr[-3000:]}")
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f]
        rates = [r["steps_per_sec"] for r in rows if r["split"] == "train"][1:]
        return statistics.median(rates)


def worker(a) -> dict:
    """This process's figures (one JSON line on stdout)."""
    import contextlib

    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    sys.path.insert(0, ROOT)
    from jgen.data import get_source, make_train_iterator
    from jgen.run import build_method, load_config, validate
    from jgen.train.loop import batch_sharding, jitted_train_step
    from jgen.train.throughput import count_flops, peak_flops, step_flops

    config = load_config(a.config, a.overrides)
    validate(config)
    mock = contextlib.nullcontext()
    if a.mock_tfds:
        import tensorflow_datasets as tfds

        mock = tfds.testing.mock_data(num_examples=a.mock_tfds)
    k, bs = a.steps_per_call, config.data.batch_size
    with mock:
        train, _, info = get_source(config.data)
        method = build_method(config, info, train)

        def iterator(workers: int = 0):
            d = config.data
            return make_train_iterator(
                train,
                config.seed,
                bs,
                random_flip=d.random_flip,
                worker_count=workers,
                worker_buffer_size=d.worker_buffer_size,
                read_ahead=d.read_ahead,
            )

        input_rate = {}
        for workers in a.input_workers:
            with iterator(workers) as it:
                next(it)  # grain's (and the workers') start-up
                t0 = time.perf_counter()
                for _ in range(a.input_batches):
                    next(it)
                input_rate[workers] = a.input_batches * bs / (time.perf_counter() - t0)
        if a.input_only:
            return {
                "config": config.name,
                "batch": bs,
                "input_images_per_sec": input_rate,
                "load_avg_1min": os.getloadavg()[0],
            }
        it = iterator()
        host = [next(it) for _ in range(a.steps)]

    mesh = Mesh(np.array(jax.devices()), ("data",))
    state = jax.jit(method.init_state, out_shardings=NamedSharding(mesh, P()))(jax.random.PRNGKey(config.seed), host[0])
    one = jax.device_put(host[0], batch_sharding(mesh, 1))
    t0 = time.perf_counter()
    compiled_one = jitted_train_step(method, mesh, 1).lower(state, one).compile()
    compile_s = time.perf_counter() - t0
    if a.hlo:
        import gzip

        with (gzip.open if a.hlo.endswith(".gz") else open)(a.hlo, "wt") as f:
            f.write(compiled_one.as_text())
    count = count_flops(jitted_train_step(method, mesh, 1), state, one)
    try:
        xla_flops = step_flops(compiled_one, mesh.size)
    except ValueError:  # a backend without cost analysis
        xla_flops = None
    if k == 1:
        call, stacks = compiled_one, host
    else:
        call = jitted_train_step(method, mesh, k)
        stacks = [jax.tree.map(lambda *x: np.stack(x), *host[i : i + k]) for i in range(0, a.steps, k)]
    batches = [jax.device_put(b, batch_sharding(mesh, k)) for b in stacks]
    state, metrics = call(state, batches[0])  # a compiling (k > 1) and warming call
    jax.block_until_ready((state, metrics))
    times = []
    for _ in range(a.trials):
        t0 = time.perf_counter()
        for b in batches:
            state, metrics = call(state, b)
        jax.block_until_ready((state, metrics))
        times.append((time.perf_counter() - t0) / a.steps)
    step_s = statistics.median(times)
    if a.profile:
        with jax.profiler.trace(a.profile, create_perfetto_trace=True):
            for b in batches[: max(1, a.profile_steps // k)]:
                state, metrics = call(state, b)
            jax.block_until_ready((state, metrics))
    dtype = str(config.model.get("dtype", "float32"))
    peak, peak_how = (a.peak_tflops * 1e12, "--peak_tflops") if a.peak_tflops else peak_flops(jax.devices(), dtype)
    params = sum(x.size for x in jax.tree.leaves(state.params))
    return {
        "config": config.name,
        "devices": jax.device_count(),
        "device_kind": jax.devices()[0].device_kind,
        "batch": bs,
        "steps_per_call": k,
        "params": int(params),
        "dtype": dtype,
        "compile_s": compile_s,
        "step_s": step_s,
        "step_s_all": times,
        "images_per_sec": bs / step_s,
        "flops_per_step": count.total,
        "matmul_flops_per_step": count.matmul,
        "xla_flops_per_step": xla_flops,
        "flops_per_sec": count.matmul / step_s,
        "peak_flops": peak,
        "peak": peak_how,
        "mfu": None if peak is None else count.matmul / step_s / peak,
        "platform": jax.devices()[0].platform,
        "input_images_per_sec": input_rate,
        "load_avg_1min": os.getloadavg()[0],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="experiments/configs/vae_mnist.py")
    p.add_argument("--devices", default="1", help="device counts, e.g. 1,8 (CPU: fake host devices)")
    p.add_argument("--steps", type=int, default=10, help="steps timed per trial (a multiple of --steps_per_call)")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--steps_per_call", type=int, default=1)
    p.add_argument("--input_batches", type=int, default=300, help="batches timed for the input pipeline's rate")
    p.add_argument(
        "--input_workers", default="0,2", help="data.worker_count values whose input images/s are timed, e.g. 0,2"
    )
    p.add_argument("--input_only", action="store_true", help="only the input pipeline's images/s")
    p.add_argument("--mock_tfds", type=int, default=0, help="run on tfds.testing.mock_data with this many examples")
    p.add_argument(
        "--peak_tflops",
        type=float,
        default=0.0,
        help="peak of all devices together (default: measured on the CPU, the table on GPU/TPU)",
    )
    p.add_argument("--loop", action="store_true", help="also time the real training loop (--loop_steps steps)")
    p.add_argument("--loop_steps", type=int, default=400)
    p.add_argument("--profile", default="", help="write a jax.profiler trace of the timed call to this folder")
    p.add_argument("--profile_steps", type=int, default=5)
    p.add_argument("--hlo", default="", help="write the optimized HLO text of the one-step program here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="config overrides field=value, e.g. data.batch_size=8")
    a = p.parse_args()
    a.input_workers = [int(w) for w in a.input_workers.split(",")]
    if a.steps % a.steps_per_call:
        sys.exit(f"--steps={a.steps} must be a multiple of --steps_per_call={a.steps_per_call}")
    if a.worker:
        print(json.dumps(worker(a)))
        return
    inputs = " ".join(f"{f'input w={w} img/s':>17}" for w in a.input_workers)
    head = (
        f"{'devices':>7} {'batch':>5} {'K':>3} {'step ms':>9} {'img/s':>8} {inputs} "
        f"{'GFLOP/step':>10} {'matmul':>10} {'XLA says':>10} {'TFLOP/s':>8} {'peak TFLOP/s':>12} {'MFU':>7} "
        f"{'compile s':>9}" + (f" {'loop steps/s':>12}" if a.loop else "")
    )
    print(f"{a.config} {' '.join(a.overrides)}" + ("" if a.input_only else f"\n{head}"), flush=True)
    for n in [int(x) for x in a.devices.split(",")]:
        env = {
            **os.environ,
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={n} " + os.environ.get("XLA_FLAGS", ""),
            "PYTHONPATH": ROOT,
        }
        r = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--worker", *sys.argv[1:]],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if r.returncode:
            sys.exit(f"{n} devices: the worker failed:\n{r.stderr[-3000:]}")
        f = json.loads(r.stdout.strip().splitlines()[-1])
        rates = [f["input_images_per_sec"][str(w)] for w in a.input_workers]  # JSON keys are strings
        if a.input_only:
            shown = ", ".join(f"{r:.0f} images/s with {w} workers" for w, r in zip(a.input_workers, rates))
            print(f"{n:>7} {f['batch']:>5} input {shown} (load average {f['load_avg_1min']:.1f})", flush=True)
            continue
        mfu = "—" if f["mfu"] is None else f"{100 * f['mfu']:.2f}%"
        peak = "—" if f["peak_flops"] is None else f"{f['peak_flops'] / 1e12:.3f}"
        xla = "—" if f["xla_flops_per_step"] is None else f"{f['xla_flops_per_step'] / 1e9:.2f}"
        line = (
            f"{f['devices']:>7} {f['batch']:>5} {f['steps_per_call']:>3} {1e3 * f['step_s']:>9.1f} "
            f"{f['images_per_sec']:>8.1f} {' '.join(f'{r:>17.0f}' for r in rates)} "
            f"{f['flops_per_step'] / 1e9:>10.2f} {f['matmul_flops_per_step'] / 1e9:>10.2f} {xla:>10} "
            f"{f['flops_per_sec'] / 1e12:>8.4f} {peak:>12} {mfu:>7} {f['compile_s']:>9.1f}"
        )
        if a.loop:
            line += f" {loop_steps_per_sec(a.config, n, a.loop_steps, 50, a.overrides, f['platform']):>12.2f}"
        print(line, flush=True)
        print(
            f"        FLOPs counted from the step's jaxpr (same on every backend); TFLOP/s and MFU from its matmul "
            f"part; 'XLA says': XLA's cost analysis on {f['platform']}"
            + (" (leaves out the convolutions XLA:GPU hands to cuDNN)" if f["platform"] == "gpu" else "")
        )
        print(
            f"        {f['device_kind']}, {f['params']:,} parameters, {f['dtype']}; peak: {f['peak']}; "
            f"step ms per trial: {', '.join(f'{1e3 * t:.1f}' for t in f['step_s_all'])}; "
            f"load average {f['load_avg_1min']:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
