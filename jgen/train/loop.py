"""`train_loop`: the one training loop every method runs on (`jgen.run.train_and_evaluate` calls it).

Data parallel over a 1-D `jax.sharding.Mesh` of all devices: the batch is sharded on the "data" axis,
the TrainState is replicated, and the whole step is one jit-compiled function. The run directory gets
metrics.jsonl, TensorBoard events, samples/*.png and orbax checkpoints; a rerun with the same workdir resumes
from the latest checkpoint, and SIGTERM/SIGINT save a checkpoint before exiting. The loop never asks which
method it runs: it calls `method.init_state`, `method.train_step`, `method.eval_step` and `method.visualize`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Callable

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm.auto import tqdm

from jgen.data import eval_batches, make_train_iterator, spread_batch
from jgen.metrics.feature_nets import FeatureNet
from jgen.metrics.quality import images_quality, real_images
from jgen.sampling import balanced_labels, generate
from jgen.train import checkpoint as ckpt
from jgen.train.writer import MetricWriter

log = logging.getLogger("jgen")
EVAL_SALT, VIS_SALT = 0xE7A1, 0x5A3E


def _interval_hit(step: int, every: int, final: bool) -> bool:
    """every > 0: each `every` steps and at the end; 0: only at the end; -1: never."""
    if every < 0:
        return False
    return final or (every > 0 and step % every == 0)


class _StopFlag:
    """Turns SIGTERM/SIGINT into a request to checkpoint and stop after the current step."""

    def __init__(self):
        self.signal = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def evaluate(method, state, test_source, config, mesh) -> dict[str, float]:
    """Average the method's per-example eval values over the test split (EMA parameters)."""
    repl, data_sh = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    p_eval = method.jitted("eval", method.eval_step, in_shardings=(repl, repl, data_sh, repl), out_shardings=repl)
    base = jax.random.fold_in(jax.random.PRNGKey(config.seed), EVAL_SALT)
    limit = config.train.num_eval_examples or None
    sums, count = {}, 0
    for i, (batch, valid) in enumerate(eval_batches(test_source, config.train.eval_batch_size, limit)):
        out = p_eval(state.ema_params, state.model_state, _to_global(batch, data_sh, is_global=True),
                     jax.random.fold_in(base, i))
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + float(np.sum(np.asarray(v)[:valid], dtype=np.float64))
        count += valid
    return {k: v / count for k, v in sums.items()}


def _to_global(batch: dict, sharding: NamedSharding, is_global: bool = False) -> dict:
    """This process's share of a batch -> global jax.Arrays sharded over the mesh.

    `is_global`: every process holds the whole batch (evaluation) and keeps only its slice.
    """
    n, p = jax.process_count(), jax.process_index()

    def put(x):
        x = np.asarray(x)
        if is_global and n > 1:
            local = x.shape[0] // n
            x = x[p * local:(p + 1) * local]
        return jax.make_array_from_process_local_data(sharding, x)
    return jax.tree.map(put, batch)


def _host_state(state):
    """A host copy of the replicated state (safe to use outside jit on every process)."""
    return jax.tree.map(np.asarray, state)


def sample_quality(method, state, test_source, config, net: FeatureNet) -> dict[str, float]:
    """FID/IS/precision/recall of `config.eval.num_samples` EMA samples (class-balanced labels for conditional
    methods) against as many test images (fewer if the split is smaller)."""
    num, seed = int(config.eval.num_samples), int(config.seed)
    fake, _ = generate(method, state.ema_params, state.model_state, num, seed=seed,
                       labels=balanced_labels(num, method.num_classes))
    return images_quality(real_images(test_source, num), fake, net, seed=seed)


def train_loop(config: ml_collections.ConfigDict, workdir: str, method, train_src, test_src,
               feature_net: Callable[[], FeatureNet] | None = None) -> dict[str, float]:
    """Train `method` on `train_src` in `workdir` (resuming if it holds a checkpoint); returns the final eval
    metrics. `feature_net` loads the network of the training-time sample metrics (`config.eval`), on first use."""
    mesh = Mesh(np.array(jax.devices()), ("data",))
    repl, data_sh = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))

    it = make_train_iterator(train_src, config.seed, config.data.batch_size)
    start_data = it.get_state()
    example = next(it)
    it.set_state(start_data)
    state = jax.jit(method.init_state, out_shardings=repl)(jax.random.PRNGKey(config.seed), example)

    manager = ckpt.make_manager(workdir, config.train.keep_checkpoints)
    if manager.latest_step() is not None:
        state, data_state = ckpt.restore(manager, state)
        it.set_state(data_state)
        log.info("resumed from step %d", int(state.step))
    start = int(jax.device_get(state.step))

    def step_fn(state, batch):
        return method.train_step(state, batch, jax.random.fold_in(state.key, state.step))

    p_step = jax.jit(step_fn, in_shardings=(repl, data_sh), out_shardings=(repl, repl), donate_argnums=0)

    writer = MetricWriter(workdir)
    t = config.train
    total = t.steps
    bar = None
    if t.progress and jax.process_index() == 0 and start < total:
        bar = tqdm(total=total, initial=start, desc=config.name, unit="step", dynamic_ncols=True)

    pending, t_last, s_last = [], time.perf_counter(), start
    net = None
    final_eval: dict[str, float] = {}
    with _StopFlag() as stop:
        step = start
        while step < total:
            batch = next(it)
            state, metrics = p_step(state, _to_global(batch, data_sh))
            step += 1
            pending.append(metrics)
            final = step == total
            if _interval_hit(step, t.log_every, final) or stop.signal:
                rows = jax.device_get(pending)
                avg = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
                now = time.perf_counter()
                avg["steps_per_sec"] = (step - s_last) / max(now - t_last, 1e-9)
                t_last, s_last, pending = now, step, []
                writer.write(step, "train", avg)
                if bar is not None:
                    shown = {k: f"{avg[k]:.4g}" for k in method.progress_keys if k in avg}
                    bar.set_postfix(**shown, steps_per_s=f"{avg['steps_per_sec']:.1f}")
            if bar is not None:
                bar.update(1)
            if _interval_hit(step, t.eval_every, final):
                final_eval = evaluate(method, state, test_src, config, mesh)
                writer.write(step, "eval", final_eval)
            if _interval_hit(step, t.sample_every, final) and jax.process_index() == 0:
                key = jax.random.fold_in(jax.random.PRNGKey(config.seed), VIS_SALT)
                images = method.visualize(_host_state(state), spread_batch(test_src, 64), key)
                writer.write_images(step, images)
            if config.eval.sample_metrics_every and _interval_hit(step, config.eval.sample_metrics_every, final):
                net = net or feature_net()
                writer.write(step, "sample_quality", sample_quality(method, state, test_src, config, net))
            if _interval_hit(step, t.checkpoint_every, final) or stop.signal:
                ckpt.save(manager, state, it.get_state())
            if stop.signal:
                msg = f"received signal {stop.signal}: saved a checkpoint at step {step}; rerun to resume"
                log.warning(msg)
                if bar is not None:
                    bar.write(msg)
                break
        if start >= total:  # already finished: still report the final evaluation
            final_eval = evaluate(method, state, test_src, config, mesh)
    if bar is not None:
        bar.close()
    writer.close()
    manager.close()
    return final_eval
