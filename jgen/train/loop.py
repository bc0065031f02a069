"""`train_loop`: the one training loop every method runs on (`jgen.run.train_and_evaluate` calls it).

A ("data", "fsdp") `jax.sharding.Mesh` of all devices (jgen/train/sharding.py, `config.parallel.fsdp`): the batch
is sharded over every device; parameters, optimizer state and EMA are sharded over "fsdp" (replicated when
fsdp = 1); the whole step is one jit-compiled function with these layouts. The run directory gets
metrics.jsonl, TensorBoard events, samples/*.png and orbax checkpoints; a rerun with the same workdir resumes
from the latest checkpoint, and SIGTERM/SIGINT save a checkpoint before exiting. The loop never asks which
method it runs: it calls `method.init_state`, `method.train_step`, `method.eval_step` and `method.visualize`.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding
from tqdm.auto import tqdm

from jgen.config import ConfigError
from jgen.data import eval_batches, make_train_iterator, spread_batch
from jgen.metrics.feature_nets import FeatureNet
from jgen.metrics.quality import images_quality, real_images
from jgen.sampling import balanced_labels, generate
from jgen.train import checkpoint as ckpt
from jgen.train import ema_snapshots, warm_start
from jgen.train import posthoc_ema as phema
from jgen.train.distributed import StopAgreement
from jgen.train.feed import DeviceFeed
from jgen.train.sharding import batch_sharding, bytes_per_device, gather, make_mesh, replicated, state_sharding
from jgen.train.writer import MetricWriter, repair_metrics

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
    """Average the method's per-example eval values over the test split (EMA parameters, gathered to every
    device)."""
    repl, data_sh = replicated(mesh), batch_sharding(mesh)
    p_eval = method.jitted("eval", method.eval_step, in_shardings=(repl, repl, data_sh, repl), out_shardings=repl)
    base = jax.random.fold_in(jax.random.PRNGKey(config.seed), EVAL_SALT)
    limit = config.train.num_eval_examples or None
    params, model_state = gather((state.ema_params, state.model_state), mesh)
    sums, count = {}, 0
    for i, (batch, valid) in enumerate(eval_batches(test_source, config.train.eval_batch_size, limit)):
        out = p_eval(params, model_state, _to_global(batch, data_sh, is_global=True), jax.random.fold_in(base, i))
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + float(np.sum(np.asarray(v)[:valid], dtype=np.float64))
        count += valid
    averaged = {k: v / count for k, v in sums.items()}
    return {**averaged, **method.derived_eval_metrics(averaged)}


def _to_global(batch: dict, sharding: NamedSharding, is_global: bool = False) -> dict:
    """This process's share of a batch -> global jax.Arrays sharded over the mesh.

    `is_global`: every process holds the whole batch (evaluation) and keeps only its slice.
    """
    n, p = jax.process_count(), jax.process_index()

    def put(x):
        x = np.asarray(x)
        if is_global and n > 1:
            local = x.shape[0] // n
            x = x[p * local : (p + 1) * local]
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree.map(put, batch)


def _host_state(state, mesh: Mesh):
    """A host copy of the state without its optimizer state and post-hoc EMA profiles on process 0, None on the
    others. Every process must call it: gathering sharded parameters is a collective."""
    shown = gather(state.replace(opt_state=None, power_ema=()), mesh)
    return jax.tree.map(np.asarray, shown) if jax.process_index() == 0 else None


def sample_quality(method, state, test_source, config, net: FeatureNet, mesh: Mesh) -> dict[str, float]:
    """FID/IS/precision/recall of `config.eval.num_samples` EMA samples (class-balanced labels for conditional
    methods) against as many test images (fewer if the split is smaller)."""
    num, seed = int(config.eval.num_samples), int(config.seed)
    params, model_state = gather((state.ema_params, state.model_state), mesh)
    fake, _ = generate(method, params, model_state, num, seed=seed, labels=balanced_labels(num, method.num_classes))
    return images_quality(real_images(test_source, num), fake, net, seed=seed)


class TrainingDiverged(RuntimeError):
    """A non-finite loss, gradient norm or other train metric: the run stopped without saving that state."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM/SIGINT: the run saved a checkpoint (or kept the one it had) and stopped; rerun to resume."""


def _compile_interruptibly(jitted, args: tuple, stop: _StopFlag):
    """`jitted.lower(*args).compile()` on a helper thread, so that a signal during a long first compilation ends the
    run at once instead of after it. Returns None when a signal came first."""
    result: dict = {}

    def work():
        try:
            result["compiled"] = jitted.lower(*args).compile()
        except BaseException as e:  # re-raised on the main thread
            result["error"] = e

    thread = threading.Thread(target=work, name="jgen-compile", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
        if stop.signal:
            return None
    if "error" in result:
        raise result["error"]
    return result["compiled"]


def _with_finite_flag(train_step, skip_nonfinite: bool):
    """Wrap a method's train step: metrics gain `nonfinite` (1.0 when any metric is NaN/inf at that step); with
    `skip_nonfinite` such a step leaves the state as it was (but for the step counter, so data and keys move on)."""

    def step(state, batch, key):
        new_state, metrics = train_step(state, batch, key)
        ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(metrics)]))
        if skip_nonfinite:
            kept = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new_state, state)
            new_state = kept.replace(step=new_state.step)
        return new_state, {**metrics, "nonfinite": 1.0 - ok.astype(jnp.float32)}

    return step


def jitted_train_step(
    method,
    mesh: Mesh,
    steps_per_call: int = 1,
    skip_nonfinite: bool = False,
    state_shardings=None,
    power_gammas: tuple[float, ...] = (),
):
    """The jit-compiled train call: (state, batch) -> (state, metrics). One step, or K = `steps_per_call` steps in
    one call (a lax.scan over K batches stacked on a leading axis; metrics stacked [K]), which removes the host
    round trip between steps. Step s uses the key fold_in(state.key, s) either way, so K does not change a bit.
    `state_shardings`: the TrainState's layout (`sharding.state_sharding`; None: replicated); the new state keeps
    it. `power_gammas`: the exponents of the post-hoc EMA profiles the step also updates (after a skipped update
    too: the unchanged parameters are averaged in at the new step)."""
    step_with_flag = phema.with_profile_updates(_with_finite_flag(method.train_step, skip_nonfinite), power_gammas)

    def step_fn(state, batch):
        return step_with_flag(state, batch, jax.random.fold_in(state.key, state.step))

    def multi_step(state, batches):
        return jax.lax.scan(step_fn, state, batches)

    repl = replicated(mesh)
    state_sh = repl if state_shardings is None else state_shardings
    return jax.jit(
        step_fn if steps_per_call == 1 else multi_step,
        in_shardings=(state_sh, batch_sharding(mesh, steps_per_call)),
        out_shardings=(state_sh, repl),
        donate_argnums=0,
    )


AUTO_MAX_STEPS_PER_CALL = 16


def choose_steps_per_call(t: ml_collections.ConfigDict, sample_metrics_every: int, start: int, platform: str) -> int:
    """K, the optimizer steps per compiled call: `train.steps_per_call` when set (> 0); for 0 (auto), 1 on the CPU
    (XLA:CPU runs convolutions slower inside the scan's loop body) and on an accelerator the largest K <=
    AUTO_MAX_STEPS_PER_CALL dividing the step count, every interval, every train.log_steps entry and the step the
    run starts from, so that nothing the loop does between calls moves (K does not change a bit of the result)."""
    if t.steps_per_call > 0:
        return int(t.steps_per_call)
    if platform == "cpu":
        return 1
    every = [t.log_every, t.checkpoint_every, t.eval_every, t.sample_every, sample_metrics_every]
    every += [t.posthoc_ema.snapshot_every]
    g = math.gcd(start, t.steps, *(int(e) for e in every if e > 0), *(int(s) for s in t.log_steps))
    return max(d for d in range(1, AUTO_MAX_STEPS_PER_CALL + 1) if g % d == 0)


class _Window:
    """The train metrics of the steps since the last log row, fetched from the device lazily and checked for
    non-finite values; saved in checkpoints so that a resumed run's next row averages the same steps."""

    def __init__(self, skip_nonfinite: bool, rows: list[dict] | None = None):
        self.skip = skip_nonfinite
        self.rows: list[dict] = list(rows or [])  # checked host rows (dicts of floats)
        self.steps: list[int] = [int(r.pop("_step")) for r in self.rows]
        self.pending: list = []  # (steps, device metrics, stacked) not fetched yet

    def add(self, steps: list[int], metrics, stacked: bool = False) -> None:
        """The metrics of one call: of one step, or (`stacked`) of len(steps) steps along their first axis. Their
        copy to the host starts now, so that fetching them at the next log row does not wait for it."""
        for v in jax.tree.leaves(metrics):
            v.copy_to_host_async()
        self.pending.append((steps, metrics, stacked))

    def check(self, last_good: int | None) -> None:
        """Fetch the unchecked rows; raise TrainingDiverged at the first non-finite one (unless skipping)."""
        fresh = jax.device_get([m for _, m, _ in self.pending])
        calls, self.pending = self.pending, []
        for (steps, _, stacked), metrics in zip(calls, fresh):
            for j, step in enumerate(steps):
                row = {k: float(v[j] if stacked else v) for k, v in metrics.items()}
                self.rows.append(row)
                self.steps.append(step)
                if row["nonfinite"] and not self.skip:
                    bad = {k: v for k, v in row.items() if k != "nonfinite" and not math.isfinite(v)}
                    kept = (
                        "no checkpoint was written"
                        if last_good is None
                        else f"the last good checkpoint (step {last_good}) is kept"
                    )
                    raise TrainingDiverged(
                        f"non-finite train metric at step {step}: "
                        + ", ".join(f"{k} = {v}" for k, v in bad.items())
                        + f". The run stopped without saving that state; {kept}. Lower optim.learning_rate (or "
                        "add optim.grad_clip), or pass --config.train.skip_nonfinite_updates=true to skip such "
                        "batches"
                    )

    def row(self) -> dict[str, float]:
        """The mean of each metric over the window's finite steps (`skipped_updates` counts the others)."""
        good = [r for r in self.rows if not r["nonfinite"]]
        keys = [k for k in self.rows[0] if k != "nonfinite"]
        out = {k: float(np.mean([r[k] for r in good])) if good else float("nan") for k in keys}
        if self.skip:
            out["skipped_updates"] = float(len(self.rows) - len(good))
        return out

    def state(self) -> dict:
        return {"rows": [{**r, "_step": s} for r, s in zip(self.rows, self.steps)]}

    def clear(self) -> None:
        self.rows, self.steps, self.pending = [], [], []


def train_loop(
    config: ml_collections.ConfigDict,
    workdir: str,
    method,
    train_src,
    test_src,
    feature_net: Callable[[], FeatureNet] | None = None,
    on_start: Callable[[], None] | None = None,
    init_source: Callable[[], tuple[object, str]] | None = None,
) -> dict[str, float]:
    """Train `method` on `train_src` in `workdir` (resuming from its newest checkpoint that restores); returns the
    final eval metrics. `feature_net` loads the network of the training-time sample metrics on first use; `on_start`
    is called once the run is known to start (its model built, its checkpoint restored or none there), before the
    loop writes anything but checkpoint folders. `init_source() -> (parameters, description)`, called only for a
    run that starts from step 0, gives the parameters it starts from (`train.init_from`, `warm_start.overlay`).

    Raises TrainingDiverged at a non-finite train metric (nothing of that state is saved) and TrainingInterrupted
    after SIGTERM/SIGINT (a checkpoint of the last step is saved first)."""
    mesh = make_mesh(config.parallel.fsdp)
    data_sh = batch_sharding(mesh)
    t = config.train

    d = config.data
    it = make_train_iterator(
        train_src,
        config.seed,
        d.batch_size,
        random_flip=d.random_flip,
        worker_count=d.worker_count,
        worker_buffer_size=d.worker_buffer_size,
        read_ahead=d.read_ahead,
    )
    example = _to_global(it.dataset[0], data_sh)  # the global first batch: init sees what a 1-process run sees
    key = jax.random.PRNGKey(config.seed)
    sigma_rels = tuple(float(s) for s in t.posthoc_ema.sigma_rels)  # post-hoc EMA profiles (none: off)
    gammas = tuple(phema.gamma_from_sigma_rel(s) for s in sigma_rels)
    init_state = phema.with_profiles(method.init_state, len(sigma_rels))
    try:
        abstract = jax.eval_shape(init_state, key, example)
    except Exception as e:  # shapes that do not fit together: the config's model cannot be built
        raise ConfigError(
            f"the model of config {config.name!r} cannot be built from its fields ({ckpt.one_line(e)}); "
            "change the model/method fields named there"
        ) from e
    state_sh = state_sharding(mesh, abstract)
    state = jax.jit(init_state, out_shardings=state_sh)(key, example)
    log.info(
        "mesh %s; per device: parameters %.2f MiB, optimizer state %.2f MiB, EMA %.2f MiB",
        dict(mesh.shape),
        *(bytes_per_device(x) / 2**20 for x in (state.params, state.opt_state, state.ema_params)),
    )

    removed = ckpt.remove_stale_temporaries(workdir)
    if removed:
        log.info("removed %d unfinished checkpoint folder(s) of an interrupted save: %s", len(removed), removed)
    stale = ema_snapshots.remove_stale_temporaries(workdir)
    if stale:
        log.info("removed %d unfinished EMA snapshot file(s) of an interrupted write: %s", len(stale), stale)
    manager = ckpt.make_manager(workdir, t.keep_checkpoints)
    restored = ckpt.restore_latest(workdir, manager, state)
    window_rows = None
    if restored is not None:
        state, data_state, loop_state = restored
        it.set_state(data_state)
        window_rows = (loop_state or {}).get("rows")
        log.info("resumed from step %d", int(state.step))
    elif init_source is not None:
        source, where = init_source()
        merged, copied, kept = warm_start.overlay(state.params, source, where)
        params = jax.tree.map(jax.device_put, merged, state_sh.params)
        state = state.replace(params=params, ema_params=jax.tree.map(jnp.copy, params))
        if sigma_rels:
            state = state.replace(power_ema=phema.init_profiles(params, len(sigma_rels)))
        log.info(
            "started from %s: %d parameter arrays copied, %d kept at their initialisation%s",
            where,
            len(copied),
            len(kept),
            f" ({', '.join(kept)})" if kept else "",
        )
    start = int(jax.device_get(state.step))
    dropped = repair_metrics(workdir, start)
    if dropped:
        log.info("metrics.jsonl: dropped %d row(s) past step %d, the step this run resumes from", dropped, start)
    last_good = manager.latest_step()

    k = choose_steps_per_call(t, config.eval.sample_metrics_every, start, jax.devices()[0].platform)
    if start % k:
        manager.close()
        raise ConfigError(
            f"config.train.steps_per_call={k} is invalid: this run resumes from step {start}, which "
            f"is not a multiple of it. Fix: resume with a train.steps_per_call that divides {start} "
            "(e.g. --config.train.steps_per_call=0, chosen automatically)"
        )
    if on_start is not None:
        on_start()
    if k > 1:
        log.info("%d optimizer steps per compiled call (train.steps_per_call)", k)
    feed = DeviceFeed(it, k, lambda local: _to_global(local, batch_sharding(mesh, k)), depth=d.prefetch)
    p_step = jitted_train_step(method, mesh, k, t.skip_nonfinite_updates, state_sh, gammas)

    writer = MetricWriter(workdir)
    total = t.steps
    bar = None
    if t.progress and jax.process_index() == 0 and start < total:
        bar = tqdm(total=total, initial=start, desc=config.name, unit="step", dynamic_ncols=True)

    window = _Window(t.skip_nonfinite_updates, window_rows)
    log_steps = frozenset(int(s) for s in t.log_steps)  # extra row ends (train.log_steps) beside the log_every grid
    t_last, s_last = time.perf_counter(), start
    net = None
    final_eval: dict[str, float] = {}
    try:
        with _StopFlag() as stop:
            agree = StopAgreement(mesh)
            step = start
            compiled = None
            while step < total:
                batch, data_state = next(feed)
                if compiled is None and agree.multi:  # a process that left now would strand the others
                    log.info("compiling the train step (a signal now stops the run after the first step)")
                    compiled = p_step.lower(state, batch).compile()
                elif compiled is None:
                    log.info("compiling the train step (SIGTERM/SIGINT now stop the run at once)")
                    compiled = _compile_interruptibly(p_step, (state, batch), stop)
                    if compiled is None:
                        kept = (
                            "it had no checkpoint yet"
                            if last_good is None
                            else f"its checkpoint at step {last_good} is kept"
                        )
                        raise TrainingInterrupted(
                            f"received signal {stop.signal} while compiling the first step: "
                            f"stopped at once; {kept}. Rerun the same command to resume"
                        )
                state, metrics = compiled(state, batch)
                step += k
                stopping = agree(stop.signal is not None)
                window.add(list(range(step - k + 1, step + 1)), metrics, stacked=k > 1)
                final = step == total
                if _interval_hit(step, t.log_every, final) or step in log_steps:
                    window.check(last_good)
                    avg = window.row()
                    now = time.perf_counter()
                    avg["steps_per_sec"] = (step - s_last) / max(now - t_last, 1e-9)
                    t_last, s_last = now, step
                    window.clear()
                    writer.write(step, "train", avg)
                    if bar is not None:
                        shown = {k: f"{avg[k]:.4g}" for k in method.progress_keys if k in avg}
                        bar.set_postfix(**shown, steps_per_s=f"{avg['steps_per_sec']:.1f}")
                if bar is not None:
                    bar.update(k)
                saving = _interval_hit(step, t.checkpoint_every, final) or stopping
                snapshot = bool(sigma_rels) and _interval_hit(step, t.posthoc_ema.snapshot_every, final)
                if saving or snapshot or _interval_hit(step, t.eval_every, final):
                    window.check(last_good)  # nothing non-finite is evaluated or saved
                if snapshot:  # before the checkpoint: a run resumed from it never skips a snapshot step
                    profiles = gather(state.power_ema, mesh)  # a collective: every process calls it
                    if jax.process_index() == 0:
                        host = jax.tree.map(np.asarray, profiles)
                        ema_snapshots.write_snapshot(workdir, step, sigma_rels, gammas, host)
                if _interval_hit(step, t.eval_every, final):
                    if final and bar is not None:  # the bar stands at 100% while the last evaluation runs
                        bar.set_description_str(f"{config.name}: final evaluation")
                    final_eval = evaluate(method, state, test_src, config, mesh)
                    writer.write(step, "eval", final_eval)
                if _interval_hit(step, t.sample_every, final):
                    host = _host_state(state, mesh)
                    if host is not None:
                        key = jax.random.fold_in(jax.random.PRNGKey(config.seed), VIS_SALT)
                        writer.write_images(step, method.visualize(host, spread_batch(test_src, 64), key))
                if config.eval.sample_metrics_every and _interval_hit(step, config.eval.sample_metrics_every, final):
                    net = net or feature_net()
                    writer.write(step, "sample_quality", sample_quality(method, state, test_src, config, net, mesh))
                if saving:
                    ckpt.save(manager, state, data_state, window.state())
                    last_good = step
                if stopping:
                    why = (
                        f"received signal {stop.signal}"
                        if stop.signal
                        else "another process of this job received a signal"
                    )
                    raise TrainingInterrupted(
                        f"{why}: saved a checkpoint at step {step}; rerun the same command to resume"
                    )
            if start >= total:  # already finished: still report the final evaluation
                final_eval = evaluate(method, state, test_src, config, mesh)
    finally:
        if bar is not None:
            bar.close()
        feed.close()
        it.close()
        writer.close()
        manager.close()
    return final_eval
