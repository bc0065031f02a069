"""jgen against a PyTorch twin of the same networks, side by side: on this machine's CPU (the ddpm_mnist UNet and the
vae_mnist VAE), or on a GPU (the train step of the paper-scale ddpm_cifar10 UNet).

    pip install -r benchmarks/requirements-torch.txt      # PyTorch is a benchmark-only dependency
    python benchmarks/vs_pytorch.py
    python benchmarks/vs_pytorch.py --jgen-python .venv/bin/python --torch-python /path/to/torch-venv/bin/python
    python benchmarks/vs_pytorch.py --device cuda --trials 5 --json vs_pytorch_gpu.json
    python benchmarks/vs_pytorch.py --net cifar --tiny --torch-modes eager_tf32,eager_bf16   # the GPU flow, on a CPU

CPU mode (--device cpu, the default; --net mnist). Networks: the ddpm_mnist UNet (280,881 parameters) and the
vae_mnist VAE (836,178), batch 64. Cases: a train step (same loss, Adam, learning-rate schedule, gradient clipping
and EMA), a forward pass, and a 20-step DDIM sampler (the UNet). PyTorch's side is `benchmarks/torch_twins.py`: it
loads jgen's weights and the inputs, random draws and outputs the jgen worker wrote, and refuses to time anything
unless its forward pass, one whole train step and the sampler reproduce jgen's to float tolerance.

Each framework runs in a warm worker process (compilation and first-call costs are paid before timing). The
workers take turns case by case and trial by trial, the order rotating every trial, so that both see the same
machine. Before each turn the driver waits (up to --max-wait seconds) until other processes use less than
--quiet-cores of CPU; for every turn it records the 1-minute load average, the CPU time other processes used
during the turn (foreign cores), and the cores the timed worker itself used. The ratio column is the median
over trials of jgen's median / PyTorch's median within the same trial.

`--variant NAME:VAR=VALUE[;VAR=VALUE...]` adds another jgen worker with a different environment (an XLA flag,
or PYTHONPATH pointing at another checkout of jgen), timed in the same rotation: that is how a change's
before/after effect is measured on a shared machine.

GPU mode (--device cuda, which implies --net cifar; `--net cifar` runs the same flow on the CPU, where `--tiny`
shrinks it to 16 channels and batch 4). The network is experiments/configs/ddpm_cifar10.py as configured
(35,746,307 parameters: 128 channels, multipliers (1, 2, 2, 2), 2 residual blocks per level, attention at 16x16
and in the middle, dropout 0.1, unconditional; batch 128; Adam 2e-4 after 5,000 warm-up steps, clipping at norm
1.0, EMA 0.9999; --override FIELD=VALUE changes it). One case, the train step, in up to six variants, each its own
warm worker process:
- jgen float32 (JAX's default matmul precision: TF32 on the GPU) and jgen bfloat16 (`model.dtype=bfloat16`: float32
  parameters, bfloat16 compute), --jgen-modes f32,bf16. jgen's side is the training loop's own compiled call,
  `jgen.train.loop.jitted_train_step(method, mesh, 1)`, set up as benchmarks/train_throughput.py sets it up (same
  config, mesh, shardings, XLA_FLAGS), so a persistent compilation cache (JAX_COMPILATION_CACHE_DIR, if set) serves
  both scripts. The batch comes from TFDS's mock cifar10 (`tfds.testing.mock_data`: random uint8 images of the
  dataset's shape through jgen's TFDS source and iterator), as `train_throughput.py --mock_tfds` makes it. On cuda
  the jgen workers run with XLA_PYTHON_CLIENT_PREALLOCATE=false, so that the PyTorch workers get GPU memory too.
- the twin, `torch_twins.TrainStepBench`, --torch-modes eager_tf32,eager_bf16,compile_tf32,compile_bf16: eager or
  `torch.compile(net)` (default mode), float32 or bfloat16 autocast, as a PyTorch user tuning for speed writes
  it: TF32 allowed in every mode (`torch.backends.cuda.matmul.allow_tf32`, `torch.backends.cudnn.allow_tf32`),
  `cudnn.benchmark`, fused Adam, foreach clipping and EMA, and parameters and activations in channels_last memory
  format (the layout PyTorch's performance guide recommends for convolutions on tensor-core GPUs, where NCHW
  costs transposes; it gives the same results, checked on the CPU; --no-channels-last times NCHW).

Parity, checked on the device before any timing. The jgen worker of each precision moves its initial state to the
end of the learning-rate warm-up (every step counter at 5,000, the zero-initialised kernels made random so that
every layer counts), trains 3 steps without dropout (`model.dropout=0`), and writes its weights, Adam moments and
EMA. The PyTorch workers of that precision (TF32 modes: jgen float32; bf16 modes: jgen bfloat16) load them and,
with dropout at 0 on both sides, compare by relative L2 error: the forward pass at jgen's random inputs, and one
whole train step from the same state with jgen's random draws of t and noise handed over: the loss, the gradient
norm, the parameter update (new - old parameters), the EMA and its change. Tolerances: --tol-f32 (default 1e-2
on cuda, where both sides use TF32, and 1e-4 on the CPU) and --tol-bf16 (5e-2 on cuda, 3e-2 on the CPU), 10x that
for the update and the EMA change (Adam divides by sqrt(nu), which magnifies small gradient differences). A twin
outside them is reported with its errors and not timed. Measured on the CPU at --tiny size: float32 agrees to
about 1e-6 (forward 5e-7, grad norm 1e-7, update 2e-6; the EMA's change 1e-4, rounding of lerp against
d*e + (1-d)*p), eager and torch.compile alike; eager bf16 autocast against jgen's bfloat16 to about 1e-2 (forward
1e-2, grad norm 1e-3 to 3e-3, update 1.3e-2 to 1.7e-2, EMA change 5e-3). torch.compile with bf16 autocast failed
there (PyTorch 2.13 on the CPU: zero gradients for the low-resolution blocks, update error 0.37), which is what
the checks are for. A GPU run prints its own figures above its table.

Timing runs both sides with the config's dropout 0.1. Their dropout masks cannot be equal: JAX draws them from
threefry keys split per module, PyTorch from its own generator (Philox on CUDA) in its own order, so the timed steps
compute the same function with different random draws (which is why parity is checked with dropout off); the work
done is the same. Phases: all workers start and set up at once; then one at a time, with the device otherwise
idle, each builds its timed step (jgen: XLA compiles it; PyTorch: two forward + backward passes on random data,
where torch.compile compiles), because building tunes kernels by timing them on the device (XLA's autotuner,
cudnn.benchmark, Triton's autotuning) and the processes keep those choices (--parallel-build: all at once, faster,
on a busy device); then, in parallel, the parity work
(jgen's reference; PyTorch's dropout-0 passes, another graph for torch.compile, and its checks) and --warmup
untimed steps. The trials rotate the workers' order; a turn is 10 train steps (x --iters-scale), each synchronised
before and after (torch.cuda.synchronize; jax.block_until_ready on the step's outputs), and its median. The table
gives ms per step (the minimum over all steps; the median over trials of the turns' medians), images/s, and the
ratio jgen / PyTorch for each pair (median over trials of the per-trial ratio of medians). The quiet-CPU wait does
not apply (the flow never waits); progress lines with timestamps go to stderr, --json FILE writes the raw records.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
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
CIFAR_CONFIG = "ddpm_cifar10"
CIFAR_ITERS = 10  # timed train steps per turn in the --net cifar flow (--iters-scale multiplies)
PARITY_WARM_STEPS = 3  # jgen steps without dropout before the reference step (non-zero Adam moments, EMA)
CALLS = ("build", "build_off", "reference", "parity", "prepare")  # bench methods the --net cifar driver calls
TINY = ["model.channels=16"]  # --tiny: the cifar network at 1/8 width (with batch 4), for a check on the CPU
JGEN_PRECISIONS = ("f32", "bf16")
TORCH_MODES = ("eager_tf32", "eager_bf16", "compile_tf32", "compile_bf16")  # as torch_twins.TORCH_MODES
DEFAULT_TOL = {
    ("cpu", "f32"): 1e-4,
    ("cuda", "f32"): 1e-2,  # parity tolerances (relative L2), --tol-f32/--tol-bf16
    ("cpu", "bf16"): 3e-2,
    ("cuda", "bf16"): 5e-2,
}


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


def _trained_position(state, start: int, sharding):
    """The freshly initialised TrainState moved to where training has been for a while: every step counter (the
    state's, Adam's, the schedule's) at `start`, and the zero-initialised kernels (each residual block's second
    convolution, the attention outputs, the output convolution) random, so that the learning rate is at its full
    value and every layer takes part in the forward pass the twin must reproduce. Made on the host and placed with
    `sharding`: the arrays keep the shapes, dtypes and layout the compiled train step was lowered for, and the EMA
    gets buffers of its own (the step donates the state)."""
    import jax
    import numpy as np

    rng = np.random.default_rng(7)

    def param(path, p):
        p = np.asarray(p)
        if getattr(path[-1], "key", None) == "kernel" and not p.any():
            p = (rng.standard_normal(p.shape) * (0.5 / math.sqrt(math.prod(p.shape[:-1])))).astype(p.dtype)
        return p

    host = jax.tree_util.tree_map_with_path(param, state.params)

    def count(path, x):
        if getattr(path[-1], "name", None) == "count":
            return jax.device_put(np.asarray(start, dtype=x.dtype), sharding)
        return x

    return state.replace(
        step=jax.device_put(np.asarray(start, dtype=state.step.dtype), sharding),
        params=jax.device_put(host, sharding),
        ema_params=jax.device_put(host, sharding),
        opt_state=jax.tree_util.tree_map_with_path(count, state.opt_state),
    )


class JgenTrainStepBench(JgenBench):
    """The ddpm_cifar10 train step (`--net cifar`) as jgen's training loop runs it: the compiled call
    `jgen.train.loop.jitted_train_step(method, mesh, 1)`, with the state made and the batch placed as
    benchmarks/train_throughput.py does, so that the program is the same as train_throughput's and a persistent
    compilation cache (JAX_COMPILATION_CACHE_DIR) serves both. Data: TFDS's mock cifar10 (random uint8 images of
    the real shape, through jgen's TFDS source and iterator, as train_throughput.py --mock_tfds runs it).

    setup(): config, method, batch, the state at `_trained_position`. build(): compiles the timed program (the
    config's dropout) -- the driver calls it while no other worker uses the device, since XLA's autotuning of
    convolutions and matmuls times candidates on it (and later compilations in this process reuse its choices).
    reference(): PARITY_WARM_STEPS steps without dropout (`model.dropout=0`, the same jitted call; they give
    non-zero Adam moments and an EMA apart from the parameters), then writes what the twin must reproduce: weights,
    Adam state and EMA, the forward pass at random inputs (no dropout), and one more train step without dropout:
    its random draws, loss, grad norm, new parameters and EMA. prepare(warmup): the warm-up steps."""

    def __init__(self, msg: dict):
        import jax

        super().__init__(msg["dir"], 0, ())
        self.precision, self.device = msg["precision"], msg["device"]
        self.overrides = list(msg["overrides"]) + (["model.dtype=bfloat16"] if self.precision == "bf16" else [])
        if self.device == "cuda" and jax.default_backend() != "gpu":
            raise RuntimeError(
                f"--device cuda, but JAX's backend is {jax.default_backend()!r} (JAX_PLATFORMS="
                f"{os.environ.get('JAX_PLATFORMS')!r}); is jax installed with CUDA support?"
            )
        self.sync = None  # the case itself blocks until its results are ready

    def setup(self) -> dict:
        jax, np = self.jax, self.np
        import tensorflow_datasets as tfds

        from jgen.data import get_source, make_train_iterator
        from jgen.run import build_method, load_config, validate
        from jgen.train.loop import batch_sharding, jitted_train_step

        path = os.path.join(ROOT, "experiments", "configs", f"{CIFAR_CONFIG}.py")
        cfg = load_config(path, self.overrides)
        validate(cfg)
        cfg_off = load_config(path, self.overrides + ["model.dropout=0.0"])
        bs = int(cfg.data.batch_size)
        with tfds.testing.mock_data(num_examples=max(64, bs)):
            train, _, info = get_source(cfg.data)
            method = build_method(cfg, info, train)
            method_off = build_method(cfg_off, info, train)
            host = next(make_train_iterator(train, cfg.seed, bs, random_flip=cfg.data.random_flip))
        m = cfg.method
        if method.num_classes or (m.parameterization, m.loss_weighting, m.time_sampling) != ("eps", "none", "uniform"):
            raise ValueError("the twin's loss is the unconditional eps-prediction L_simple at uniform steps")
        state = jax.jit(method.init_state, out_shardings=self.repl)(jax.random.PRNGKey(cfg.seed), host)
        gbatch = jax.device_put(host, batch_sharding(self.mesh, 1))
        self.lowered = jitted_train_step(method, self.mesh, 1).lower(state, gbatch)  # train_throughput's program
        state = _trained_position(state, int(cfg.optim.warmup_steps), self.repl)
        self.cfg, self.method, self.method_off, self.state, self.host, self.gbatch = (
            cfg,
            method,
            method_off,
            state,
            host,
            gbatch,
        )
        return {
            "model": self._model_meta(),
            "batch": bs,
            "dropout": float(cfg.model.dropout),
            "params": sum(int(np.prod(p.shape)) for p in jax.tree.leaves(state.params)),
            "config": f"{CIFAR_CONFIG} {' '.join(self.overrides)}".strip(),
        }

    def _model_meta(self) -> dict:
        """The twin's UNet arguments."""
        cfg, shape = self.cfg, self.host["image"].shape
        return {
            "in_channels": int(shape[-1]),
            "resolution": int(shape[1]),
            "channels": int(cfg.model.channels),
            "channel_mult": list(cfg.model.channel_mult),
            "num_res_blocks": int(cfg.model.num_res_blocks),
            "attention_resolutions": list(cfg.model.attention_resolutions),
            "num_heads": int(cfg.model.num_heads),
            "num_classes": 0,
            "dropout": float(cfg.model.dropout),
        }

    def build(self) -> dict:
        t0 = time.perf_counter()
        self.compiled = self.lowered.compile()
        return {"build_s": time.perf_counter() - t0}

    def reference(self) -> dict:
        jax, np = self.jax, self.np
        import jax.numpy as jnp

        from jgen.diffusion.schedules import alpha_sigma, step_to_time
        from jgen.train.loop import jitted_train_step

        t0 = time.perf_counter()
        cfg, method, state, host, gbatch = self.cfg, self.method, self.state, self.host, self.gbatch
        self.state = None  # donated below
        step_off = jitted_train_step(self.method_off, self.mesh, 1)
        for _ in range(PARITY_WARM_STEPS):
            state, _ = step_off(state, gbatch)
        if int(self._adam(state.opt_state).count) != int(state.step):
            raise AssertionError("Adam's step count differs from the state's: the twin uses one count for both")
        bs, shape = int(cfg.data.batch_size), host["image"].shape
        meta = {
            "model": self._model_meta(),
            "precision": self.precision,
            "step": int(state.step),
            **self._optim_meta(cfg),
        }
        arrays = {"images": np.asarray(host["image"])}
        self._state_arrays(state, arrays)
        sched = method.schedule
        a_all, s_all = alpha_sigma(sched, step_to_time(sched, jnp.arange(sched.num_steps)))
        arrays["alphas"], arrays["sigmas"] = np.asarray(a_all), np.asarray(s_all)
        # the random draws of the next train step, exactly as Diffusion.per_example_losses makes them
        k_t, k_eps, _, _ = jax.random.split(jax.random.fold_in(state.key, state.step), 4)
        arrays["draw_idx"] = np.asarray(jax.random.randint(k_t, (bs,), 0, sched.num_steps))
        arrays["draw_eps"] = np.asarray(jax.random.normal(k_eps, shape, jnp.float32))
        kx, kt = jax.random.split(jax.random.PRNGKey(1))
        fx = jax.device_put(jax.random.normal(kx, shape), self.repl)
        ft = jax.device_put(jax.random.uniform(kt, (bs,)), self.repl)
        fwd = jax.jit(lambda p, x, t: method.net.apply({"params": p}, x, t))  # train=False: no dropout
        arrays.update(fwd_x=np.asarray(fx), fwd_t=np.asarray(ft), fwd_out=np.asarray(fwd(state.params, fx, ft)))
        self.state = self._next_step(step_off, state, gbatch, meta, arrays)  # donates `state`: recorded above
        self._save("cifar", meta, arrays)
        return {"reference_s": time.perf_counter() - t0}

    def prepare(self, warmup: int) -> dict:
        jax = self.jax
        call, holder, gbatch = self.compiled, {"state": self.state}, self.gbatch
        self.state = None  # donated by the first call

        def train():
            holder["state"], metrics = call(holder["state"], gbatch)
            jax.block_until_ready((holder["state"], metrics))

        t0 = time.perf_counter()
        for _ in range(warmup):
            train()
        self.cases["train"] = train
        return {"warmup_s": time.perf_counter() - t0}


def time_calls(fn, iters: int, sync=None) -> list[float]:
    """Wall seconds of each of `iters` calls of `fn`; `sync()` (e.g. torch.cuda.synchronize), when given, runs
    before and after each call, inside the timed interval only after it."""
    times = []
    for _ in range(iters):
        if sync is not None:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - t0)
    return times


def serve(make_bench, describe) -> None:
    """A framework's worker (jgen's here, PyTorch's in torch_twins.py): JSON lines on stdin -> JSON lines on the
    original stdout; everything else printed goes to stderr. On "setup", `make_bench(msg)` builds an object whose
    `setup_unet()`/`setup_vae()` fill its `cases` {name: fn} and return the parameter count; every case is called
    twice before any timing (compilation, first-call allocation); `describe(bench)` adds fields to the reply.
    With "net": "cifar" (the train-step flow) "setup" calls `bench.setup(**args)` and "call" one of the bench's
    CALLS (jgen: build, reference, prepare; PyTorch: build, build_off, parity, prepare) with `args`; "run" calls
    `bench.sync`, when not None, around each timed call."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library output must not mix with the protocol
    bench = None
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg["cmd"] == "setup" and msg.get("net") == "cifar":
                bench = make_bench(msg)
                reply = {"ok": True, **bench.setup(**msg.get("args", {})), **describe(bench)}
            elif msg["cmd"] == "setup":
                bench = make_bench(msg)
                counts = {
                    net: getattr(bench, f"setup_{net}")()
                    for net in ("unet", "vae")
                    if any(c.startswith(net) for c in msg["cases"])
                }
                for c in msg["cases"]:
                    time_calls(bench.cases[c], 2)
                reply = {"ok": True, "params": counts, **describe(bench)}
            elif msg["cmd"] == "call" and msg["method"] in CALLS:
                reply = {"ok": True, **getattr(bench, msg["method"])(**msg.get("args", {}))}
            elif msg["cmd"] == "run":
                reply = {
                    "ok": True,
                    "times": time_calls(bench.cases[msg["case"]], int(msg["iters"]), getattr(bench, "sync", None)),
                }
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

    def make_bench(msg):
        if msg.get("net") == "cifar":
            return JgenTrainStepBench(msg)
        return JgenBench(msg["dir"], msg["batch"], msg["cases"])

    def describe(bench):
        info = {
            "version": f"jax {jax.__version__} / jaxlib {jaxlib.__version__} "
            f"({jax.default_backend()}, {len(jax.devices())} device(s))"
        }
        if isinstance(bench, JgenTrainStepBench):
            info["device_name"] = jax.devices()[0].device_kind
        return info

    serve(make_bench, describe)


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
        self.send(**msg)
        return self.receive()

    def send(self, **msg) -> None:
        """Send a command without waiting for its reply (workers then work in parallel; `receive` collects)."""
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict:
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
    p.add_argument(
        "--batch",
        type=int,
        default=None,
        help="batch size (default: 64 for --net mnist, the config's for --net cifar: 128, 4 with --tiny)",
    )
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
    g = p.add_argument_group("the train-step flow (--net cifar; --device cuda runs it on the GPU)")
    g.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cpu: the workers run on the CPU (with "
        "--net mnist: the original benchmark); cuda: the DDPM CIFAR-10 train step on the GPU",
    )
    g.add_argument(
        "--net",
        choices=("mnist", "cifar"),
        default=None,
        help="mnist: the ddpm_mnist UNet and vae_mnist VAE cases (CPU only); cifar: the ddpm_cifar10 "
        "train step (default: mnist on cpu, cifar on cuda)",
    )
    g.add_argument("--torch-modes", default=",".join(TORCH_MODES), help=f"comma-separated subset of {TORCH_MODES}")
    g.add_argument(
        "--jgen-modes",
        default=",".join(JGEN_PRECISIONS),
        help=f"comma-separated subset of {JGEN_PRECISIONS} (bf16: model.dtype=bfloat16)",
    )
    g.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a config override of ddpm_cifar10 for every worker, e.g. model.channels=32",
    )
    g.add_argument(
        "--tiny", action="store_true", help=f"{' '.join(TINY)} and batch 4: the whole flow in minutes on a CPU"
    )
    g.add_argument("--warmup", type=int, default=5, help="untimed train steps per worker before the trials")
    g.add_argument(
        "--parallel-build",
        action="store_true",
        help="build (compile, tune) the timed steps of all "
        "workers at once: faster, but their kernel tuning runs on a busy device",
    )
    g.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="PyTorch's parameters and activations in channels_last (NHWC) memory format",
    )
    g.add_argument(
        "--tol-f32",
        type=float,
        help="parity tolerance (relative L2) of the float32/TF32 variants; the "
        "parameter update and EMA change get 10x (default: 1e-4 on cpu, 1e-2 on cuda)",
    )
    g.add_argument(
        "--tol-bf16", type=float, help="parity tolerance of the bfloat16 variants (default: 3e-2 on cpu, 5e-2 on cuda)"
    )
    a = p.parse_args()
    a.net = a.net or ("mnist" if a.device == "cpu" else "cifar")
    if a.net == "cifar":
        if a.variant:
            p.error("--variant is for --net mnist (the CPU cases)")
        run_train_step(p, a)
        return
    if a.device != "cpu":
        p.error("--net mnist runs on the CPU only; --device cuda times the ddpm_cifar10 train step (--net cifar)")
    if a.batch is None:
        a.batch = 64
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


# -- the train-step flow (--net cifar) --------------------------------------------------------------------

_T0 = time.perf_counter()


def _say(msg: str) -> None:
    """A progress line on stderr, with the wall-clock time and the seconds since the start."""
    print(f"[{datetime.datetime.now():%H:%M:%S} +{time.perf_counter() - _T0:4.0f}s] {msg}", file=sys.stderr, flush=True)


def _label(name: str, device: str) -> str:
    f32 = "TF32" if device == "cuda" else "float32"
    return {
        "jgen_f32": "jgen float32" + (" (TF32: JAX's default precision)" if device == "cuda" else ""),
        "jgen_bf16": "jgen bfloat16 (model.dtype)",
        "torch_eager_tf32": f"PyTorch eager {f32}",
        "torch_eager_bf16": "PyTorch eager bf16 autocast",
        "torch_compile_tf32": f"torch.compile {f32}",
        "torch_compile_bf16": "torch.compile bf16 autocast",
    }[name]


def run_train_step(p: argparse.ArgumentParser, a) -> None:
    """The --net cifar flow: jgen (float32, bfloat16) and the PyTorch twin (TORCH_MODES) timing the ddpm_cifar10
    train step on `a.device`, after the twin's parity checks."""
    jmodes = [m for m in a.jgen_modes.split(",") if m]
    tmodes = [m for m in a.torch_modes.split(",") if m]
    bad = [m for m in jmodes if m not in JGEN_PRECISIONS] + [m for m in tmodes if m not in TORCH_MODES]
    if bad or not jmodes:
        p.error(f"unknown or no modes {bad}: --jgen-modes from {JGEN_PRECISIONS}, --torch-modes from {TORCH_MODES}")
    if a.no_torch:
        tmodes = []
    precision = {m: "bf16" if m.endswith("bf16") else "f32" for m in tmodes}
    ref_of = {f"torch_{m}": f"jgen_{precision[m]}" for m in tmodes}  # the jgen worker whose reference it checks
    missing = sorted({precision[m] for m in tmodes} - set(jmodes))
    if missing:
        p.error(
            f"--torch-modes {a.torch_modes} need the jgen worker(s) {missing} (--jgen-modes): the twin's "
            "weights and references come from the jgen worker of the same precision"
        )
    overrides = (TINY if a.tiny else []) + list(a.override)
    if a.batch is not None or a.tiny:
        overrides.append(f"data.batch_size={a.batch or 4}")
    tol = {q: getattr(a, f"tol_{q}") or DEFAULT_TOL[(a.device, q)] for q in JGEN_PRECISIONS}
    iters = max(1, round(CIFAR_ITERS * a.iters_scale))

    # jgen: as benchmarks/train_throughput.py runs its worker (so the persistent compilation cache is shared)
    env_j = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=ROOT,
        XLA_FLAGS="--xla_force_host_platform_device_count=1 " + os.environ.get("XLA_FLAGS", ""),
    )
    if a.device == "cpu":
        env_j["JAX_PLATFORMS"] = "cpu"
    else:
        env_j["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # JAX would take 75% of the GPU's memory
    env_t = dict(os.environ, PYTHONUNBUFFERED="1")
    work = tempfile.mkdtemp(prefix="jgen_vs_pytorch_")
    started = datetime.datetime.now(datetime.UTC)
    infos, failed, records, jgen, torch_w, done = {}, {}, [], [], [], False
    _say(
        f"device {a.device}: jgen {jmodes}, PyTorch {tmodes}, config {CIFAR_CONFIG} {' '.join(overrides)}; "
        f"worker logs in {work}"
    )
    try:
        for q in jmodes:  # every worker starts (imports) at once; jgen's setup is quick (no train-step compile)
            name = f"jgen_{q}"
            os.makedirs(os.path.join(work, name))
            w = Worker(name, "jgen", a.jgen_python, env_j, work)
            w.send(
                cmd="setup",
                net="cifar",
                dir=os.path.join(work, name),
                precision=q,
                device=a.device,
                overrides=overrides,
            )
            jgen.append(w)
        torch_w = [Worker(f"torch_{m}", "torch", a.torch_python, env_t, work) for m in tmodes]
        for w in jgen:
            infos[w.name] = w.receive()
            _say(
                f"{w.name}: set up: {infos[w.name]['params']:,} parameters, batch {infos[w.name]['batch']}, on "
                f"{infos[w.name]['device_name']}"
            )
        for w, m in zip(torch_w, tmodes):
            ref = infos[ref_of[w.name]]
            w.send(
                cmd="setup",
                net="cifar",
                mode=m,
                device=a.device,
                tolerance=tol[precision[m]],
                channels_last=a.channels_last,
                threads=a.torch_threads,
                args={"model": ref["model"], "batch": ref["batch"]},
            )

        def drop(w, e):  # a PyTorch variant that does not run or fails its parity checks is reported, not timed
            failed[w.name] = str(e).strip()
            first, last = failed[w.name].splitlines()[0], failed[w.name].splitlines()[-1]
            _say(f"{w.name}: FAILED, not timed: {first}" + ("" if last == first else f" [...] {last}"))
            torch_w.remove(w)
            w.close()

        def collect(ws):
            """Receive each worker's reply (merged into infos); yield those that succeeded."""
            for w in list(ws):
                try:
                    reply = w.receive()
                except SystemExit as e:
                    if w in jgen:
                        raise
                    drop(w, e)
                    continue
                infos.setdefault(w.name, {}).update(reply)
                yield w

        for w in collect(list(torch_w)):
            _say(f"{w.name}: set up: {infos[w.name]['version']}")
        # one worker at a time: compiling the timed step tunes kernels by timing them on the device (XLA's
        # autotuner, cudnn.benchmark, Triton's autotuning), which another worker's device work would disturb
        builders = jgen + list(torch_w)
        for i, w in enumerate(builders):
            if a.parallel_build and i == 0:
                for x in builders:
                    x.send(cmd="call", method="build")
            elif not a.parallel_build:
                w.send(cmd="call", method="build")
            for _ in collect([w]):
                n = infos[w.name].get("build_graphs")
                graphs = "" if n is None else f", {n} graph(s) compiled"
                _say(f"{w.name}: timed step built in {infos[w.name]['build_s']:.1f} s{graphs}")
        # the parity work in parallel (its compilations are not timed), then the warm-up steps
        for w in jgen:
            w.send(cmd="call", method="reference")
        for w in torch_w:  # torch.compile's graph for dropout 0, while jgen computes its reference
            w.send(cmd="call", method="build_off")
        for w in collect(list(torch_w)):
            _say(
                f"{w.name}: dropout-0 passes for the checks in {infos[w.name]['build_off_s']:.1f} s, "
                f"{infos[w.name]['build_off_graphs']} graph(s) compiled"
            )
        for w in collect(jgen):
            w.send(cmd="call", method="prepare", args={"warmup": a.warmup})
            _say(f"{w.name}: reference written in {infos[w.name]['reference_s']:.0f} s")
        for w in torch_w:
            w.send(cmd="call", method="parity", args={"ref_dir": os.path.join(work, ref_of[w.name])})
        for w in collect(list(torch_w)):
            w.send(cmd="call", method="prepare", args={"warmup": a.warmup})
            worst = max((v, k) for k, v in infos[w.name]["checks"].items())
            _say(
                f"{w.name}: parity passed in {infos[w.name]['parity_s']:.0f} s ({len(infos[w.name]['checks'])} "
                f"checks, largest error {worst[0]:.2g}: {worst[1]})"
            )
        for w in collect(jgen + list(torch_w)):
            _say(f"{w.name}: {a.warmup} warm-up steps in {infos[w.name]['warmup_s']:.1f} s")
            if infos[w.name].get("warmup_graphs") or infos[w.name].get("parity_graphs"):
                _say(
                    f"{w.name}: WARNING: torch.compile compiled {infos[w.name].get('parity_graphs', 0)} + "
                    f"{infos[w.name]['warmup_graphs']} graph(s) during the checks and warm-up, outside the build "
                    "phases (their kernels were tuned while other workers ran)"
                )
        workers = jgen + torch_w
        for trial in range(a.trials):
            order = workers[trial % len(workers) :] + workers[: trial % len(workers)]
            for w in order:
                times = w.ask(cmd="run", case="train", iters=iters)["times"]
                records.append(dict(trial=trial, worker=w.name, times=times))
                _say(f"trial {trial} {w.name:<19} median {1e3 * statistics.median(times):8.2f} ms per step")
        done = True
    finally:
        for w in jgen + torch_w:
            w.close()
        if done:
            shutil.rmtree(work, ignore_errors=True)
        else:
            _say(f"stopped early; the workers' logs are in {work}")
    finished = datetime.datetime.now(datetime.UTC)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(
                {
                    "args": vars(a),
                    "overrides": overrides,
                    "tolerances": tol,
                    "infos": infos,
                    "failed": failed,
                    "records": records,
                },
                f,
                indent=1,
            )
    print(
        train_step_report(
            records, infos, failed, [w.name for w in workers], a, overrides, tol, iters, started, finished
        )
    )


def train_step_report(records, infos, failed, names, a, overrides, tol, iters, started, finished) -> str:
    """The markdown report of the --net cifar flow."""
    by = {}
    for r in records:
        by.setdefault(r["worker"], []).append(r)
    j0 = infos[names[0]]
    where = j0["device_name"] if a.device == "cuda" else _machine()
    torch_names = [n for n in names if n.startswith("torch_")]
    if a.device == "cuda" and torch_names:
        where = f"{infos[torch_names[0]]['device_name']} (JAX: {j0['device_name']})"
    lines = [
        f"jgen vs PyTorch: the {CIFAR_CONFIG} UNet train step on {where}, batch {j0['batch']} — "
        f"{started:%Y-%m-%d %H:%M}–{finished:%H:%M} UTC",
        f"network: {j0['config']} (per variant: + model.dtype=bfloat16 for jgen bf16) — {j0['params']:,} "
        f"parameters, dropout {j0['dropout']} while timed; Adam, clipping 1.0, EMA, warm-up schedule",
        f"host: {_machine()}",
        "versions: " + "; ".join(f"{n}: {infos[n]['version']}" for n in infos if "version" in infos[n]),
    ]
    lines.append(
        f"parity before timing (dropout off; relative L2 error against jgen at the same precision; "
        f"tolerance {tol['f32']:g} float32/TF32, {tol['bf16']:g} bf16, 10x for the parameter update and the "
        f"EMA change):"
    )
    for n in torch_names:
        checks = {
            k.replace("UNet ", "").replace("train-step ", ""): v
            for k, v in infos[n]["checks"].items()
            if not k.startswith("lr schedule")
        }
        lines.append(f"  {_label(n, a.device)}: " + ", ".join(f"{k} {v:.2g}" for k, v in checks.items()))
    for n, why in failed.items():
        lines.append(f"  {_label(n, a.device)}: NOT TIMED: {why.splitlines()[-1][:1500]}")
    lines.append(
        f"timing: {a.trials} trials, order rotating; per turn {iters} train steps, each synchronised, "
        f"median taken; {a.warmup} warm-up steps before; ms per step; timed steps built "
        f"{'all at once (--parallel-build)' if a.parallel_build else 'one worker at a time'}"
    )
    head = ["variant", "ms min", "ms median", "images/s", "build s", "parity s", "warm-up s"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    med = {}
    for n in names:
        recs = by[n]
        med[n] = statistics.median([statistics.median(r["times"]) for r in recs])
        i = infos[n]
        build, parity = i["build_s"], i.get("reference_s", i.get("build_off_s", 0) + i.get("parity_s", 0))
        lines.append(
            f"| {_label(n, a.device)} | {1e3 * min(t for r in recs for t in r['times']):.2f} | "
            f"{1e3 * med[n]:.2f} | {j0['batch'] / med[n]:,.0f} | {build:.0f} | {parity:.0f} | "
            f"{i['warmup_s']:.0f} |"
        )
    pairs = [
        ("jgen_f32", "torch_eager_tf32"),
        ("jgen_f32", "torch_compile_tf32"),
        ("jgen_bf16", "torch_eager_bf16"),
        ("jgen_bf16", "torch_compile_bf16"),
        ("jgen_bf16", "jgen_f32"),
    ]
    rows = []
    for x, y in pairs:
        if x in by and y in by:
            ratios = [statistics.median(rx["times"]) / statistics.median(ry["times"]) for rx, ry in zip(by[x], by[y])]
            rows.append(
                f"| {_label(x, a.device)} / {_label(y, a.device)} | **{statistics.median(ratios):.2f}x** "
                f"({min(ratios):.2f}–{max(ratios):.2f}) |"
            )
    if rows:
        lines += ["", "| time ratio | median over trials (range) |", "|---|---|"] + rows
    lines += [
        "",
        "ratio: median over trials of (median step time / the other's median step time in the same "
        "trial); below 1: the first is faster. build s: the timed step's compilation and kernel tuning "
        "(jgen: XLA's compilation of the jitted train step; PyTorch: two forward + backward "
        "passes on random data, with torch.compile's compilation in the compile modes). parity s: jgen's "
        "reference steps; PyTorch's passes with dropout 0 (torch.compile compiles again: dropout 0 is another "
        "graph) and checks. "
        "warm-up s: the untimed steps before the trials.",
    ]
    return "\n".join(lines)


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
