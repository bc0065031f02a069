"""jgen against a PyTorch twin of the same networks, side by side on this machine's CPU.

    pip install -r benchmarks/requirements-torch.txt      # PyTorch is a benchmark-only dependency
    python benchmarks/vs_pytorch.py
    python benchmarks/vs_pytorch.py --jgen-python .venv/bin/python --torch-python /path/to/torch-venv/bin/python

Networks: the ddpm_mnist UNet (280,881 parameters) and the vae_mnist VAE (836,178), batch 64. Cases: a train
step (same loss, Adam, learning-rate schedule, gradient clipping and EMA), a forward pass, and a 20-step DDIM
sampler (the UNet). PyTorch's side is `benchmarks/torch_twins.py`: it loads jgen's weights and the inputs,
random draws and outputs the jgen worker wrote, and refuses to time anything unless its forward pass, one
whole train step and the sampler reproduce jgen's to float tolerance.

Each framework runs in a warm worker process (compilation and first-call costs are paid before timing). The
workers take turns case by case and trial by trial, the order rotating every trial, so that both see the same
machine. Before each turn the driver waits (up to --max-wait seconds) until other processes use less than
--quiet-cores of CPU; for every turn it records the 1-minute load average, the CPU time other processes used
during the turn (foreign cores), and the cores the timed worker itself used. The ratio column is the median
over trials of jgen's median / PyTorch's median within the same trial.

`--variant NAME:VAR=VALUE[;VAR=VALUE...]` adds another jgen worker with a different environment (an XLA flag,
or PYTHONPATH pointing at another checkout of jgen), timed in the same rotation: that is how a change's
before/after effect is measured on a shared machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = {  # name: (label, iterations per turn)
    "unet_train": ("UNet train step", 5),
    "unet_forward": ("UNet forward", 10),
    "unet_ddim20": ("UNet DDIM, 20 steps", 2),
    "vae_train": ("VAE train step", 20),
    "vae_forward": ("VAE forward", 20),
}
WARM_STEPS = 10  # jgen train steps before the weights are handed to the twin (zero-initialised layers move)


# -- the jgen worker ------------------------------------------------------------------------------------


def _load_config(name: str):
    from jgen.run import load_config

    return load_config(os.path.join(ROOT, "experiments", "configs", f"{name}.py"))


class JgenBench:
    """jgen's own code paths: `method.train_step` jit-compiled as the training loop does (mesh shardings,
    donated state), `net.apply` for the forward pass and `method.generate` for the sampler."""

    def __init__(self, out_dir: str, batch: int, cases):
        import jax
        import numpy as np
        from jax.sharding import Mesh, NamedSharding
        from jax.sharding import PartitionSpec as P

        self.jax, self.np = jax, np
        self.out_dir, self.batch, self.wanted = out_dir, batch, set(cases)
        self.mesh = Mesh(np.array(jax.devices()), ("data",))
        self.repl, self.data_sh = NamedSharding(self.mesh, P()), NamedSharding(self.mesh, P("data"))
        self.cases = {}

    # -- helpers
    def _method(self, name):
        from jgen.data import get_source, make_train_iterator
        from jgen.methods import get_method

        cfg = _load_config(name)
        cfg.data.batch_size = self.batch
        train_src, _, info = get_source(cfg.data)
        method = get_method(cfg.method.name)(cfg, info)
        batch = next(make_train_iterator(train_src, cfg.seed, self.batch))
        return cfg, method, batch

    def _train(self, cfg, method, batch):
        jax = self.jax

        def step_fn(state, batch):
            return method.train_step(state, batch, jax.random.fold_in(state.key, state.step))

        step = jax.jit(
            step_fn, in_shardings=(self.repl, self.data_sh), out_shardings=(self.repl, self.repl), donate_argnums=0
        )
        state = jax.jit(method.init_state, out_shardings=self.repl)(jax.random.PRNGKey(cfg.seed), batch)
        gbatch = jax.device_put(batch, self.data_sh)
        for _ in range(WARM_STEPS):
            state, metrics = step(state, gbatch)
        jax.block_until_ready(state)
        return step, state, gbatch

    def _flat_tree(self, prefix, tree, out):
        for path, leaf in self.jax.tree_util.tree_flatten_with_path(tree)[0]:
            out[prefix + "/" + "/".join(str(k.key) for k in path)] = self.np.asarray(leaf)

    def _adam(self, opt_state):
        import optax

        found = [
            s
            for s in self.jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
            if isinstance(s, optax.ScaleByAdamState)
        ]
        assert len(found) == 1, "expected one Adam state"
        return found[0]

    def _state_arrays(self, state, arrays):
        adam = self._adam(state.opt_state)
        self._flat_tree("params", state.params, arrays)
        self._flat_tree("mu", adam.mu, arrays)
        self._flat_tree("nu", adam.nu, arrays)
        self._flat_tree("ema", state.ema_params, arrays)

    def _next_step(self, step, state, gbatch, meta, arrays):
        """Run one more train step and record its results (the twin must reproduce them)."""
        state, metrics = step(state, gbatch)
        arrays_next = {}
        self._flat_tree("next_params", state.params, arrays_next)
        self._flat_tree("next_ema", state.ema_params, arrays_next)
        arrays.update(arrays_next)
        meta["next_loss"] = float(metrics["loss"])
        meta["next_grad_norm"] = float(metrics["grad_norm"])
        return state

    def _optim_meta(self, cfg):
        from jgen.train.optim import make_schedule

        o = cfg.optim
        sched = make_schedule(o, cfg.train.steps)
        return {
            "optim": {
                "learning_rate": float(o.learning_rate),
                "b1": float(o.b1),
                "b2": float(o.b2),
                "eps": float(o.eps),
                "warmup_steps": int(o.warmup_steps),
                "schedule": o.schedule,
                "grad_clip": float(o.grad_clip),
            },
            "lr_at": {str(s): float(sched(s)) for s in (0, 50, int(o.warmup_steps) + 7)},
            "total_steps": int(cfg.train.steps),
            "ema_decay": float(cfg.train.ema_decay),
        }

    def _save(self, name, meta, arrays):
        with open(os.path.join(self.out_dir, f"{name}.json"), "w") as f:
            json.dump(meta, f)
        self.np.savez(os.path.join(self.out_dir, f"{name}.npz"), **arrays)

    def _train_case(self, step, state, gbatch):
        """One timed train step from the state of the previous call (the first from `state`)."""
        holder = {"state": state}

        def train():
            holder["state"], metrics = step(holder["state"], gbatch)
            self.jax.block_until_ready((holder["state"], metrics))

        return train

    # -- the networks
    def setup_unet(self):
        jax, np = self.jax, self.np
        import jax.numpy as jnp

        from jgen.diffusion.sampler_core import grid_alpha_sigma
        from jgen.diffusion.samplers import SAMPLERS, Given
        from jgen.diffusion.schedules import alpha_sigma, step_to_time
        from jgen.diffusion.timegrid import time_grid

        cfg, method, batch = self._method("ddpm_mnist")
        m = cfg.method
        step, state, gbatch = self._train(cfg, method, batch)
        n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(state.params))
        meta = {
            "model": {
                "in_channels": int(batch["image"].shape[-1]),
                "resolution": int(batch["image"].shape[1]),
                "channels": int(cfg.model.channels),
                "channel_mult": list(cfg.model.channel_mult),
                "num_res_blocks": int(cfg.model.num_res_blocks),
                "attention_resolutions": list(cfg.model.attention_resolutions),
                "num_heads": int(cfg.model.num_heads),
                "num_classes": int(method.num_classes),
            },
            "label_dropout": float(m.label_dropout),
            "clip_denoised": bool(m.clip_denoised),
            "step": int(state.step),
            **self._optim_meta(cfg),
        }
        arrays = {"images": np.asarray(batch["image"]), "labels": np.asarray(batch["label"])}
        self._state_arrays(state, arrays)
        sched = method.schedule
        a_all, s_all = alpha_sigma(sched, step_to_time(sched, jnp.arange(sched.num_steps)))
        arrays["alphas"], arrays["sigmas"] = np.asarray(a_all), np.asarray(s_all)
        # the random draws of the next train step, exactly as Diffusion.per_example_losses makes them
        key = jax.random.fold_in(state.key, state.step)
        k_t, k_eps, k_drop, _ = jax.random.split(key, 4)
        b, shape = self.batch, batch["image"].shape
        arrays["draw_idx"] = np.asarray(jax.random.randint(k_t, (b,), 0, sched.num_steps))
        arrays["draw_eps"] = np.asarray(jax.random.normal(k_eps, shape, jnp.float32))
        drop = jax.random.bernoulli(k_drop, m.label_dropout, (b,))
        arrays["draw_labels"] = np.asarray(jnp.where(drop, method.null_label, batch["label"].astype(jnp.int32)))
        params = state.params  # the forward and the sampler use the weights the twin loads

        fwd = jax.jit(lambda p, x, t, lab: method.net.apply({"params": p}, x, t, lab))
        kx, kt, kn = jax.random.split(jax.random.PRNGKey(1), 3)
        fx = jax.random.normal(kx, shape)
        ft = jax.random.uniform(kt, (b,))
        flab = jnp.asarray(batch["label"], jnp.int32)
        arrays.update(
            fwd_x=np.asarray(fx),
            fwd_t=np.asarray(ft),
            fwd_labels=np.asarray(flab),
            fwd_out=np.asarray(fwd(params, fx, ft, flab)),
        )

        noise = jax.random.normal(kn, shape)

        ddim20 = method.sampling_spec(sampler="ddim", steps=20, eta=0.0)

        def ddim_from(p, noise, labels):
            return method.run_sampler(p, jax.random.PRNGKey(0), shape[0], labels, ddim20, Given(noise=noise)).samples

        times = time_grid(sched, 20, SAMPLERS["ddim"].spacing)  # the grid `sample` uses for ddim, 20 steps
        ga, gs = grid_alpha_sigma(sched, times)
        arrays.update(
            ddim_noise=np.asarray(noise),
            ddim_times=np.asarray(times),
            ddim_alphas=np.asarray(ga),
            ddim_sigmas=np.asarray(gs),
        )
        if "unet_ddim20" in self.wanted:  # the sampler's reference costs a compilation: only when timed
            arrays["ddim_out"] = np.asarray(jax.jit(ddim_from)(params, noise, flab))
        if m.guidance not in (0.0, 1.0):
            raise ValueError("the twin's DDIM does one network pass per step: use a config with guidance 0 or 1")
        params = jax.device_put(params, self.repl)
        state = self._next_step(step, state, gbatch, meta, arrays)
        self._save("unet", meta, arrays)

        gen = jax.jit(lambda p, k, lab: method.generate(p, None, k, b, lab, ddim20)[0])
        keys = iter(jax.random.split(jax.random.PRNGKey(2), 100000))
        self.cases["unet_train"] = self._train_case(step, state, gbatch)
        self.cases["unet_forward"] = lambda: jax.block_until_ready(fwd(params, fx, ft, flab))
        if "unet_ddim20" in self.wanted:
            self.cases["unet_ddim20"] = lambda: jax.block_until_ready(gen(params, next(keys), flab))
        return n_params

    def setup_vae(self):
        jax, np = self.jax, self.np
        import jax.numpy as jnp

        cfg, method, batch = self._method("vae_mnist")
        step, state, gbatch = self._train(cfg, method, batch)
        n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(state.params))
        net = method.net
        meta = {
            "model": {
                "shape": list(batch["image"].shape[1:]),
                "features": list(net.features),
                "hidden": int(net.hidden),
                "code_dim": int(net.code_dim),
                "latent_dim": int(net.latent_dim),
                "out_channels": int(net.shape[-1]),
            },
            "beta": float(cfg.method.beta),
            "step": int(state.step),
            **self._optim_meta(cfg),
        }
        if cfg.model.kind != "conv" or cfg.method.likelihood != "logistic":
            raise ValueError("the VAE twin is the conv encoder/decoder with the logistic likelihood")
        arrays = {"images": np.asarray(batch["image"])}
        self._state_arrays(state, arrays)
        key = jax.random.fold_in(state.key, state.step)  # VAE.elbo_terms' draws for the next step
        k_data, k_z = jax.random.split(key)
        arrays["draw_u"] = np.asarray(jax.random.uniform(k_data, batch["image"].shape))
        arrays["draw_eps"] = np.asarray(jax.random.normal(k_z, (self.batch, method.latent_dim), jnp.float32))
        params = state.params
        fwd = jax.jit(lambda p, x: net.apply({"params": p["net"]}, x))
        images = jnp.asarray(batch["image"])
        arrays["fwd_out"] = np.asarray(fwd(params, images))
        params = jax.device_put(params, self.repl)
        state = self._next_step(step, state, gbatch, meta, arrays)
        self._save("vae", meta, arrays)

        self.cases["vae_train"] = self._train_case(step, state, gbatch)
        self.cases["vae_forward"] = lambda: jax.block_until_ready(fwd(params, images))
        return n_params


def time_calls(fn, iters: int) -> list[float]:
    """Wall seconds of each of `iters` calls of `fn`."""
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def serve(make_bench, describe) -> None:
    """A framework's worker (jgen's here, PyTorch's in torch_twins.py): JSON lines on stdin -> JSON lines on the
    original stdout; everything else printed goes to stderr. On "setup", `make_bench(msg)` builds an object whose
    `setup_unet()`/`setup_vae()` fill its `cases` {name: fn} and return the parameter count; every case is called
    twice before any timing (compilation, first-call allocation); `describe(bench)` adds fields to the reply."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library output must not mix with the protocol
    bench = None
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg["cmd"] == "setup":
                bench = make_bench(msg)
                counts = {
                    net: getattr(bench, f"setup_{net}")()
                    for net in ("unet", "vae")
                    if any(c.startswith(net) for c in msg["cases"])
                }
                for c in msg["cases"]:
                    time_calls(bench.cases[c], 2)
                reply = {"ok": True, "params": counts, **describe(bench)}
            elif msg["cmd"] == "run":
                reply = {"ok": True, "times": time_calls(bench.cases[msg["case"]], int(msg["iters"]))}
            elif msg["cmd"] == "quit":
                return
            else:
                reply = {"ok": False, "error": f"unknown command {msg['cmd']!r}"}
        except Exception as e:  # reported to the driver, which stops the benchmark
            import traceback  # local: only on failure

            reply = {"ok": False, "error": f"{type(e).__name__}: {e}\n{traceback.format_exc()}"}
        proto.write(json.dumps(reply) + "\n")


def jgen_worker() -> None:
    import jax  # local: the driver process never imports jax
    import jaxlib  # local: as above

    serve(
        lambda msg: JgenBench(msg["dir"], msg["batch"], msg["cases"]),
        lambda bench: {
            "version": f"jax {jax.__version__} / jaxlib {jaxlib.__version__} "
            f"({jax.default_backend()}, {len(jax.devices())} device(s))"
        },
    )


# -- the driver -----------------------------------------------------------------------------------------


def _busy_ticks() -> int:
    """Busy CPU ticks of the whole machine since boot (user + nice + system + irq + softirq + steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def _proc_ticks(pid: int) -> int:
    """CPU ticks (user + system, all threads) used by process `pid`."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


TICK = os.sysconf("SC_CLK_TCK")


class Worker:
    def __init__(self, name: str, kind: str, python: str, env: dict, log_dir: str):
        self.name, self.kind = name, kind
        script = os.path.join(ROOT, "benchmarks", "vs_pytorch.py" if kind == "jgen" else "torch_twins.py")
        args = [python, script, "--worker"] + (["jgen"] if kind == "jgen" else [])
        self.log = open(os.path.join(log_dir, f"{name}.log"), "w")
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env, cwd=ROOT
        )

    def ask(self, **msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.log.flush()
            with open(self.log.name) as f:
                tail = f.read()[-4000:]
            raise SystemExit(f"worker {self.name} died; its log ends with:\n{tail}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise SystemExit(f"worker {self.name}: {reply.get('error')}")
        return reply

    def close(self):
        if self.proc.poll() is not None:
            self.log.close()
            return
        try:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
        self.log.close()


def _foreign_cores(pids, seconds: float) -> float:
    """Cores used by processes other than ours over the next `seconds`."""
    b0, p0, t0 = _busy_ticks(), sum(_proc_ticks(p) for p in pids), time.perf_counter()
    time.sleep(seconds)
    b1, p1, t1 = _busy_ticks(), sum(_proc_ticks(p) for p in pids), time.perf_counter()
    return max(0.0, (b1 - b0) - (p1 - p0)) / TICK / (t1 - t0)


def _wait_quiet(pids, threshold: float, max_wait: float) -> tuple[float, float]:
    """Wait until other processes use < threshold cores (sampled over 0.5 s), at most max_wait seconds.
    Returns (seconds waited, foreign cores in the last sample)."""
    t0 = time.perf_counter()
    while True:
        f = _foreign_cores(pids, 0.5)
        waited = time.perf_counter() - t0
        if f < threshold or waited >= max_wait:
            return waited, f


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def _parse_variant(spec: str) -> tuple[str, dict]:
    name, _, assigns = spec.partition(":")
    env = {}
    for a in filter(None, assigns.split(";")):
        k, _, v = a.partition("=")
        env[k] = v
    return name, env


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jgen-python", default=sys.executable, help="interpreter with jgen's requirements")
    p.add_argument("--torch-python", default=sys.executable, help="interpreter with torch (requirements-torch.txt)")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {list(CASES)}")
    p.add_argument("--trials", type=int, default=5, help="turns per worker and case")
    p.add_argument("--iters-scale", type=float, default=1.0, help="multiplies the iterations per turn")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        help="another jgen worker: NAME:VAR=VALUE[;VAR=VALUE] (e.g. an XLA_FLAGS setting)",
    )
    p.add_argument("--no-torch", action="store_true", help="time only the jgen workers (variants against jgen)")
    p.add_argument("--quiet-cores", type=float, default=0.25, help="foreign CPU use that counts as a quiet machine")
    p.add_argument("--max-wait", type=float, default=20.0, help="seconds to wait for a quiet machine per turn")
    p.add_argument("--tolerance", type=float, default=1e-5, help="relative L2 error allowed between jgen and twin")
    p.add_argument("--json", help="also write every turn's raw record to this file")
    a = p.parse_args()
    cases = [c for c in a.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        p.error(f"unknown cases {unknown}; choose from {list(CASES)}")

    base_env = {k: v for k, v in os.environ.items()}
    base_env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    work = tempfile.mkdtemp(prefix="jgen_vs_pytorch_")
    specs = [("jgen", {})] + [_parse_variant(v) for v in a.variant]
    workers: list[Worker] = []
    started = datetime.datetime.now(datetime.UTC)
    load_start = os.getloadavg()
    infos, failed = {}, {}
    try:
        for name, extra in specs:
            env = dict(base_env, PYTHONPATH=ROOT)
            env.update(extra)
            os.makedirs(os.path.join(work, name), exist_ok=True)
            w = Worker(name, "jgen", a.jgen_python, env, work)
            try:
                infos[name] = w.ask(cmd="setup", dir=os.path.join(work, name), batch=a.batch, cases=cases)
            except SystemExit as e:  # a variant that does not run is reported, not fatal
                if name == "jgen":
                    raise
                failed[name] = str(e).strip().splitlines()[-1]
                print(f"variant {name} failed: {failed[name]}", file=sys.stderr)
                w.close()
                continue
            workers.append(w)
        if not a.no_torch:
            w = Worker("pytorch", "torch", a.torch_python, dict(base_env), work)
            infos["pytorch"] = w.ask(
                cmd="setup", dir=os.path.join(work, "jgen"), cases=cases, threads=a.torch_threads, tolerance=a.tolerance
            )
            workers.append(w)
        pids = [w.proc.pid for w in workers] + [os.getpid()]
        records = []
        for trial in range(a.trials):
            for case in cases:
                iters = max(1, round(CASES[case][1] * a.iters_scale))
                order = workers[trial % len(workers) :] + workers[: trial % len(workers)]
                for w in order:
                    waited, before = _wait_quiet(pids, a.quiet_cores, a.max_wait)
                    load1 = os.getloadavg()[0]
                    b0, own0, all0, t0 = (
                        _busy_ticks(),
                        _proc_ticks(w.proc.pid),
                        sum(_proc_ticks(q) for q in pids),
                        time.perf_counter(),
                    )
                    times = w.ask(cmd="run", case=case, iters=iters)["times"]
                    b1, own1, all1, t1 = (
                        _busy_ticks(),
                        _proc_ticks(w.proc.pid),
                        sum(_proc_ticks(q) for q in pids),
                        time.perf_counter(),
                    )
                    wall = t1 - t0
                    records.append(
                        dict(
                            trial=trial,
                            case=case,
                            worker=w.name,
                            times=times,
                            load1=load1,
                            waited=waited,
                            foreign_before=before,
                            foreign=max(0.0, (b1 - b0) - (all1 - all0)) / TICK / wall,
                            own=(own1 - own0) / TICK / wall,
                            cpu=(own1 - own0) / TICK / iters,
                        )
                    )
                    print(
                        f"  trial {trial} {case:<13} {w.name:<10} median {statistics.median(times):.4f} s  "
                        f"load {load1:.2f}  foreign {records[-1]['foreign']:.2f} cores",
                        file=sys.stderr,
                    )
    finally:
        for w in workers:
            w.close()
        shutil.rmtree(work, ignore_errors=True)
    finished = datetime.datetime.now(datetime.UTC)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"infos": infos, "records": records}, f, indent=1)
    print(report(records, infos, cases, workers, a, started, finished, load_start, failed))


def report(records, infos, cases, workers, a, started, finished, load_start, failed) -> str:
    names = [w.name for w in workers]
    ref = "pytorch" if "pytorch" in names else "jgen"
    by = {}
    for r in records:
        by.setdefault((r["case"], r["worker"]), []).append(r)
    lines = [
        f"jgen vs PyTorch on CPU, batch {a.batch} — {started:%Y-%m-%d %H:%M}–{finished:%H:%M} UTC",
        f"machine: {_machine()}",
        "versions: " + "; ".join(f"{n}: {infos[n]['version']}" for n in names),
        f"load average at start: {' / '.join(f'{x:.2f}' for x in load_start)} (1/5/15 min); "
        f"trials: {a.trials} per case, order rotating; times in seconds",
    ]
    for n in names:
        if n not in ("jgen", "pytorch"):
            env = dict(_parse_variant(next(v for v in a.variant if v.startswith(n + ":")))[1])
            lines.append(f"variant {n}: {env}")
    for n, why in failed.items():
        lines.append(f"variant {n} did not run: {why}")
    if "pytorch" in infos:
        worst = max(infos["pytorch"]["checks"].items(), key=lambda kv: kv[1])
        lines.append(
            f"twin check: {len(infos['pytorch']['checks'])} comparisons passed, largest relative "
            f"error {worst[1]:.2g} ({worst[0]})"
        )
    head = ["measurement"]
    for n in names:
        head += [f"{n} min", f"{n} median", f"{n} cores", f"{n} CPU s"]
    head += [f"{n} / {ref}" for n in names if n != ref]
    head += ["load (1 min)", "foreign cores median / max"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in cases:
        row = [CASES[case][0]]
        for n in names:
            recs = by[(case, n)]
            all_t = [t for r in recs for t in r["times"]]
            row += [
                f"{min(all_t):.4f}",
                f"{statistics.median([statistics.median(r['times']) for r in recs]):.4f}",
                f"{statistics.median([r['own'] for r in recs]):.2f}",
                f"{statistics.median([r['cpu'] for r in recs]):.4f}",
            ]
        for n in names:
            if n == ref:
                continue
            ratios = [
                statistics.median(x["times"]) / statistics.median(y["times"])
                for x, y in zip(by[(case, n)], by[(case, ref)])
            ]
            row.append(f"**{statistics.median(ratios):.2f}x** ({min(ratios):.2f}–{max(ratios):.2f})")
        recs = [r for n in names for r in by[(case, n)]]
        row.append(f"{statistics.median([r['load1'] for r in recs]):.2f}")
        fo = [r["foreign"] for r in recs]
        row.append(f"{statistics.median(fo):.2f} / {max(fo):.2f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        f"ratio: median over trials of (median time / {ref}'s median time in the same trial), with the "
        "range over trials; cores: CPU time of the timed worker / wall time; CPU s: its CPU seconds per "
        "iteration (the work done, less sensitive to load than wall time, but it counts threads that spin); "
        "foreign cores: CPU used by other processes while a turn ran.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker", "jgen"]:
        jgen_worker()
    else:
        main()
