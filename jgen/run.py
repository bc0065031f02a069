"""The run layer: a config file and overrides become a validated config, a run directory, a loaded run.

    config = load_config("experiments/configs/vae_mnist.py", ["train.steps=300"])
    final = train_and_evaluate(config, "runs/vae")        # train (or resume) in a run directory
    run = load_run("runs/vae")                            # Run(config, method, state, info, workdir, ...)
    row = evaluate_run(run, num_samples=1000)             # FID/IS/precision/recall (+ bits/dim, images/s)

Every door (the CLI, `Pipeline`, `jgen eval`, `jgen compare`, notebooks) comes through here. A config is completed
with the core defaults and its method's `defaults()`, then checked (core fields here, then the method's own
`check`) before any compute. Runs a method is built on (`Method.requirements`, e.g. latent diffusion's first stage)
are loaded here and handed to the method, which never reads files itself.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import math
import os
import re
from typing import Any, Iterable, Iterator, Sequence

import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from jgen.config import (ConfigError, InputError, apply_overrides, base_config, fail, from_json, identity_mismatches,
                         merge_defaults, require_int, require_int_tuple, to_json)
from jgen.data import SOURCES, get_source
from jgen.methods import Method, Resources, get_method, method_names
from jgen.metrics import inception
from jgen.metrics.feature_nets import (MNIST_CLASSIFIER, FeatureNet, cache_dir, classifier_feature_net,
                                       feature_net_names, get_feature_net, register_feature_net)
from jgen.metrics.fid import finalize_stats, load_stats, save_stats
from jgen.metrics.quality import real_image_batches, real_images, summarize
from jgen.metrics.sample_metrics import (ALL_FEATURES_MAX_BYTES, ALL_FEATURES_METRICS, FeatureSummary,
                                         ReferenceStats, empty_summary, fits_all_features, summary_metrics)
from jgen.sampling import balanced_labels, generate_batches
from jgen.train import checkpoint as ckpt
from jgen.train.determinism import use_deterministic_ops
from jgen.train.distributed import check_same_config
from jgen.train.loop import evaluate, train_loop
from jgen.train.writer import read_metrics

MNIST_CLASSIFIER_CONFIG = "experiments/configs/classifier_mnist.py"  # trains the feature network MNIST_CLASSIFIER
log = logging.getLogger("jgen")


# -- configs -----------------------------------------------------------------------------------------------
def method_class(config: ml_collections.ConfigDict) -> type[Method]:
    """The Method class `config.method.name` names (ConfigError listing the known ones otherwise)."""
    name = config.method.get("name", "") if "method" in config else ""
    try:
        return get_method(name)
    except KeyError:
        fail("method.name", name, f"unknown method; choose one of {method_names()}")


def default_config(method: str) -> ml_collections.ConfigDict:
    """The core defaults plus `method`'s own section: a config that trains as it is (experiment files start here)."""
    c = base_config()
    c.method.name = method
    defaults = method_class(c).defaults()
    if "optim" in defaults:  # e.g. one optimizer block per GAN player instead of the shared one
        c.optim = defaults.optim
    return merge_defaults(c, defaults)


def with_defaults(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `config` completed with every core and method default it lacks (its own values win). An optimizer
    section the config has is kept as it is (a shared block is not turned into a GAN's per-player blocks)."""
    base, defaults = base_config(), method_class(config).defaults()
    if "optim" in config:
        del base["optim"]
        if "optim" in defaults:
            del defaults["optim"]
    return merge_defaults(merge_defaults(config, base), defaults)


def validate(config: ml_collections.ConfigDict, num_devices: int | None = None) -> None:
    """Raise ConfigError for the first invalid field: the core fields, then the method's `check`."""
    n = jax.device_count() if num_devices is None else num_devices
    if config.data.name not in SOURCES:
        fail("data.name", config.data.name, f"unknown dataset; choose one of {sorted(SOURCES)}")
    if config.data.name == "tfds" and not config.data.tfds_name:
        fail("data.tfds_name", config.data.tfds_name, "data.name='tfds' needs a TFDS dataset name",
             "--config.data.tfds_name=mnist --config.data.data_dir=/path/to/tfds")
    bs = config.data.batch_size
    if not isinstance(bs, int) or bs <= 0:
        fail("data.batch_size", bs, "must be a positive integer")
    if bs % n:
        fail("data.batch_size", bs, f"must be divisible by the number of devices ({n})",
             f"--config.data.batch_size={max(n, (bs // n) * n)}")
    fsdp = config.parallel.fsdp
    require_int("parallel.fsdp", fsdp, 1, "--config.parallel.fsdp=1 (parameters replicated on every device)")
    if n % fsdp:
        fail("parallel.fsdp", fsdp, f"must divide the number of devices ({n}): the mesh is (devices / fsdp) x fsdp",
             f"--config.parallel.fsdp={max(d for d in range(1, fsdp + 1) if n % d == 0)}")
    if not isinstance(config.data.random_flip, bool):
        fail("data.random_flip", config.data.random_flip, "must be true or false")
    require_int("data.worker_count", config.data.worker_count, 0,
                "--config.data.worker_count=0 (read in the training process) or the number of worker processes")
    require_int("data.worker_buffer_size", config.data.worker_buffer_size, 1, "--config.data.worker_buffer_size=1")
    require_int("data.read_ahead", config.data.read_ahead, 0,
                "--config.data.read_ahead=16 (batches in flight per reading process; 0 reads on demand)")
    require_int("data.prefetch", config.data.prefetch, 0,
                "--config.data.prefetch=2 (calls' batches put on the devices ahead; 0: inline)")
    cls = method_class(config)
    t = config.train
    if not isinstance(t.steps, int) or t.steps <= 0:
        fail("train.steps", t.steps, "must be a positive integer")
    for k in ("log_every", "checkpoint_every"):
        if t[k] < 0:
            fail(f"train.{k}", t[k], "must be >= 0 (0: only at the end)")
    for k in ("eval_every", "sample_every"):
        if t[k] < -1:
            fail(f"train.{k}", t[k], "must be >= -1 (0: only at the end, -1: never)")
    k = t.steps_per_call
    require_int("train.steps_per_call", k, 0, "--config.train.steps_per_call=0 (chosen automatically)")
    require_int_tuple("train.log_steps", t.log_steps, 0, "--config.train.log_steps='(1, 10, 100)' (or () for none)")
    off_grid = [s for s in t.log_steps if k and s % k]
    if off_grid:
        fail("train.log_steps", t.log_steps, f"steps {off_grid} are not multiples of train.steps_per_call={k} (the "
             f"loop logs between calls of {k} steps)", f"--config.train.steps_per_call=1")
    intervals = {f"train.{f}": t[f] for f in ("steps", "log_every", "checkpoint_every", "eval_every", "sample_every")}
    intervals["eval.sample_metrics_every"] = config.eval.sample_metrics_every
    for field, every in intervals.items():
        if k and every > 0 and every % k:
            fail(field, every, f"must be a multiple of train.steps_per_call={k} (the loop logs, evaluates and "
                 f"saves between calls of {k} steps)", f"--config.{field}={max(k, round(every / k) * k)}")
    require_int("train.keep_checkpoints", t.keep_checkpoints, 1, "--config.train.keep_checkpoints=2")
    require_int("train.num_eval_examples", t.num_eval_examples, 0, "0 evaluates the whole test split")
    if not isinstance(t.deterministic, bool):
        fail("train.deterministic", t.deterministic, "must be true or false")
    if not isinstance(t.skip_nonfinite_updates, bool):
        fail("train.skip_nonfinite_updates", t.skip_nonfinite_updates, "must be true or false")
    if not 0.0 <= t.ema_decay < 1.0:
        fail("train.ema_decay", t.ema_decay, "must be in [0, 1)")
    if t.eval_batch_size <= 0 or t.eval_batch_size % n:
        fail("train.eval_batch_size", t.eval_batch_size, f"must be a positive multiple of the device count ({n})")
    e = config.eval
    if e.sample_metrics_every < 0:
        fail("eval.sample_metrics_every", e.sample_metrics_every, "must be >= 0 (0: off)")
    require_int("eval.num_samples", e.num_samples, 2)
    if e.feature_net not in feature_net_names():
        fail("eval.feature_net", e.feature_net, f"choose one of {feature_net_names()}")
    cls.check(config)


def load_config(path: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """`get_config()` of a config file, completed with its method's defaults, with `field=value` overrides applied
    exactly as `--config.field=value` on the command line (`jgen.config.apply_overrides`)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} does not exist (experiments/configs/ holds the examples)")
    spec = importlib.util.spec_from_file_location("jgen_config_file", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path!r} defines no get_config(); see experiments/configs/vae_mnist.py")
    return apply_overrides(with_defaults(module.get_config()), overrides)


# -- run directories ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Run:
    """A trained (or training) run: its config, Method, TrainState and data."""
    config: ml_collections.ConfigDict
    method: Method
    state: Any
    info: Any
    workdir: str
    train_source: Any
    test_source: Any

    @property
    def step(self) -> int:
        return int(jax.device_get(self.state.step))


def build_method(config: ml_collections.ConfigDict, info, train_source) -> Method:
    """The Method of a validated config, with the runs it is built on loaded and handed in."""
    cls = method_class(config)
    runs = {name: load_run(workdir) for name, workdir in cls.requirements(config).items()}
    return cls(config, info, Resources(runs=runs, train_source=train_source))


def _json_dict(config: ml_collections.ConfigDict) -> dict:
    """A JSON-normalised plain dict (tuples become lists) for comparisons."""
    return json.loads(json.dumps(config.to_dict()))


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """The completed config of a run directory (FileNotFoundError if it is not one)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir!r} has no config.json: it is not a jgen run directory "
                                f"(train one with `python -m jgen train --config ... --workdir {workdir}`)")
    with open(path) as f:
        return with_defaults(from_json(f.read()))


def open_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Create `workdir`, or reopen it if it holds a run of the same model (ValueError naming the differences if
    not); write the resolved config.json."""
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
        bad = identity_mismatches(_json_dict(read_config(workdir)), _json_dict(config))
        if bad:
            raise InputError(f"workdir {workdir!r} holds a run of a different model/config; refusing to resume it:\n  "
                             + "\n  ".join(bad) + "\nUse a new --workdir, or the config that made this run.")
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
        with open(path, "w") as f:
            f.write(to_json(config))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Train `config` in `workdir` (resuming from its latest checkpoint); returns the final evaluation metrics."""
    config = with_defaults(config)
    use_deterministic_ops(bool(config.train.get("deterministic", False)))  # before validate starts JAX's backends
    validate(config)
    check_same_config(to_json(config))  # every process of a multi-process job must train the same config
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError(f"--workdir {workdir!r} is a file, not a directory: pass a new or existing run directory")
    train_src, test_src, info = get_source(config.data)
    if config.data.batch_size > info.num_train:
        fail("data.batch_size", config.data.batch_size, f"must not exceed the training split ({info.num_train} "
             f"examples of {config.data.name!r})", f"--config.data.batch_size={min(128, info.num_train)}")
    method = build_method(config, info, train_src)
    open_workdir(config, workdir)
    return train_loop(config, workdir, method, train_src, test_src,
                      feature_net=lambda: get_feature_net(config.eval.feature_net))


def run_progress(workdir: str) -> tuple[int | None, int]:
    """(step of the newest checkpoint, or None without one; config.train.steps) of a run directory, without loading
    it or writing anything (FileNotFoundError if `workdir` is not a run directory). Finished when the two agree."""
    config = read_config(workdir)
    if not os.path.isdir(ckpt.checkpoint_dir(workdir)):
        return None, config.train.steps
    manager = ckpt.make_manager(workdir)
    latest = manager.latest_step()
    manager.close()
    return latest, config.train.steps


def load_run(workdir: str, step: int | None = None) -> Run:
    """A run directory's config and its latest (or given) checkpoint, ready to generate and evaluate."""
    config = read_config(workdir)
    manager = ckpt.make_manager(workdir)
    if manager.latest_step() is None:
        raise FileNotFoundError(f"{workdir!r} has no checkpoint yet; train first or wait for the first checkpoint")
    if step is not None and step not in manager.all_steps():
        raise InputError(f"step={step}: {workdir!r} has checkpoints at steps {sorted(manager.all_steps())}")
    train_src, test_src, info = get_source(config.data)
    method = build_method(config, info, train_src)
    batch = {"image": np.zeros((1, *info.shape), np.float32), "label": np.zeros((1,), np.int32)}
    abstract = jax.eval_shape(method.init_state, jax.random.PRNGKey(0), batch)
    if step is None:  # the newest checkpoint that restores (a damaged one is reported and skipped, not moved)
        state = ckpt.restore_latest(workdir, manager, abstract, with_data=False, move_aside=False)[0]
    else:
        state = ckpt.restore(manager, abstract, step, with_data=False)[0]
    manager.close()
    return Run(config, method, state, info, workdir, train_src, test_src)


# -- evaluation ----------------------------------------------------------------------------------------------
REF_SPLITS = ("test", "train")


class _Progress:
    """Images done out of `total`: a tqdm bar on a terminal, else a log line at every tenth (batch jobs' logs)."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.done, self.next_line = total, desc, 0, 0.1
        self.bar = tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True, disable=None, leave=False)

    def update(self, n: int) -> None:
        self.done += n
        self.bar.update(n)
        if self.bar.disable and self.done >= self.next_line * self.total:
            log.info("%s: %d / %d images", self.desc, self.done, self.total)
            self.next_line = math.floor(10 * self.done / self.total + 1) / 10

    def wrap(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for batch in batches:
            yield batch
            self.update(len(batch))
        self.bar.close()


def reference_cache_path(config: ml_collections.ConfigDict, split: str, net: FeatureNet, num: int,
                         shape: tuple[int, ...]) -> str:
    """Where the statistics of `num` images of a split under `net` are cached: keyed by the dataset (and TFDS split
    string), the split, the network's name and a fingerprint of its weights (`FeatureNet.fingerprint`, so that a
    retrained MNIST classifier does not reuse stale statistics) and the image count."""
    d = config.data
    dataset = f"tfds-{d.tfds_name}" if d.name == "tfds" else d.name
    split_name = (d.train_split if split == "train" else d.test_split) if d.name == "tfds" else split
    key = f"{dataset}_{split_name}_{net.name}-{net.fingerprint(shape)}_{num}"
    return cache_dir("fid_stats", re.sub(r"[^A-Za-z0-9_.+-]", "-", key) + ".npz")


def _reference(run: Run, net: FeatureNet, num_samples: int, keep_features: bool, real: np.ndarray | None,
               ref_stats: str | None, ref_split: str) -> tuple[FeatureSummary | ReferenceStats, str]:
    """The reference side of an evaluation and a line saying what it is: a statistics file, the given images, or
    evenly spread images of a split (embedded now when every feature is kept, else statistics from the cache or
    computed once and cached)."""
    if ref_stats is not None:
        mu, sigma, extra = load_stats(ref_stats, net.feature_dim)
        count = int(extra["num_images"]) if "num_images" in extra else None
        return ReferenceStats(mu, sigma, count), f"statistics from {ref_stats}"
    if real is not None:
        return summarize([real], net, keep_features, name="real features"), f"{len(real)} given images"
    source = run.train_source if ref_split == "train" else run.test_source
    num = min(num_samples, len(source))
    what = f"{num} images of the {ref_split} split"
    batches = real_image_batches(source, num, max(net.batch_size, 1000 // net.batch_size * net.batch_size))
    if keep_features:
        return summarize(_Progress(num, f"{what} through {net.name}").wrap(batches), net, True, name="real"), what
    path = reference_cache_path(run.config, ref_split, net, num, tuple(run.info.shape))
    if os.path.exists(path):
        try:
            mu, sigma, _ = load_stats(path, net.feature_dim)
            return ReferenceStats(mu, sigma, num), f"{what} (cached statistics {path})"
        except InputError as e:  # a damaged cache file is recomputed
            log.warning("recomputing damaged cached statistics: %s", e)
    summary = summarize(_Progress(num, f"{what} through {net.name}").wrap(batches), net, False, name="real")
    mu, sigma = finalize_stats(summary.stats)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_stats(path, mu, sigma, num_images=num)
    return ReferenceStats(mu, sigma, num), f"{what} (statistics cached in {path})"


def _check_likelihood_images(run: Run, num_images) -> None:
    if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) or num_images < 2:
        raise InputError(f"likelihood_images={num_images!r}: must be an integer >= 2 (test images, e.g. 64)")
    if "likelihood" not in run.method.capabilities:
        raise InputError(f"likelihood_images={num_images}: a {run.method.name!r} run has no on-demand likelihood "
                         "(diffusion's ODE is one); its bits/dim, where it has one, comes from its evaluations")


LIKELIHOOD_BATCH = 32  # test images per compiled call of an on-demand likelihood (one progress tick each)


def evaluate_likelihood(run: Run, num_images: int, seed: int = 0, batch_size: int = LIKELIHOOD_BATCH) -> dict:
    """Bits/dim of `num_images` test images (evenly spread over the split) by the method's on-demand likelihood
    ("likelihood" capability, e.g. diffusion's probability-flow ODE) with its EMA parameters: {"bits_per_dim" (the
    mean), "bits_per_dim_kind", "bits_per_dim_se" (standard error over the images), "likelihood_images"}."""
    _check_likelihood_images(run, num_images)
    metric, kind = run.method.likelihood_metric()
    images = real_images(run.test_source, num_images)
    bs = min(batch_size, len(images))
    step = run.method.jitted(("likelihood_step", bs), run.method.likelihood_step)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)  # a stream apart from generate's PRNGKey(seed)
    values = []
    for i in tqdm(range(0, len(images), bs), desc=f"{metric} ({kind})", unit="batch", leave=False, disable=None):
        chunk = images[i:i + bs]
        padded = np.concatenate([chunk, np.zeros((bs - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        out = step(run.state.ema_params, run.state.model_state, {"image": padded}, jax.random.fold_in(key, i))
        values.append(np.asarray(out[metric])[:len(chunk)])
    values = np.concatenate(values).astype(np.float64)
    return {"bits_per_dim": float(values.mean()), "bits_per_dim_kind": kind,
            "bits_per_dim_se": float(values.std(ddof=1) / np.sqrt(len(values))), "likelihood_images": len(values)}


def evaluate_run(run: Run, num_samples: int = 1000, seed: int = 0, feature_net: FeatureNet | str | None = None,
                 real: np.ndarray | None = None, timed: bool = False, ref_stats: str | None = None,
                 ref_split: str = "test", ref_stats_out: str | None = None,
                 all_features_max_bytes: int = ALL_FEATURES_MAX_BYTES, likelihood_images: int = 0,
                 **options) -> dict:
    """The one evaluation of a run: `num_samples` EMA samples (class-balanced labels for a conditional method;
    `options` are its sampling options) against a reference under `feature_net` (default: the run's
    config.eval.feature_net): FID, IS, KID, precision/recall, density/coverage, plus bits/dim where the method has
    a likelihood (from its last evaluation, or with `likelihood_images` > 0 and an on-demand likelihood,
    `evaluate_likelihood` on that many test images), and images/s (generation only, after compilation) with `timed`.

    Samples are generated, embedded and dropped batch by batch: memory holds one batch of images, the running
    feature statistics and the class probabilities, and every feature only when KID, precision/recall and
    density/coverage will be computed (`fits_all_features`: both sets as float64 within `all_features_max_bytes`);
    otherwise the row lists them under `skipped`, with `skipped_reason`. The reference is `ref_stats` (a `.npz` of
    mu/sigma, FID only), else the images `real`, else min(num_samples, split size) evenly spread images of
    `ref_split` ("test", jgen's default, or "train", the DDPM/score_sde CIFAR-10 protocol), whose statistics are
    cached on disk when the features are not kept. `ref_stats_out` writes the reference statistics as `.npz`."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
        raise InputError(f"num_samples={num_samples!r}: must be an integer >= 2")
    if ref_split not in REF_SPLITS:
        raise InputError(f"ref_split={ref_split!r}: choose one of {list(REF_SPLITS)}")
    if ref_stats is not None and real is not None:
        raise InputError("give the reference as images (real) or as statistics (ref_stats), not both")
    if likelihood_images:  # checked before the samples cost anything
        _check_likelihood_images(run, likelihood_images)
    head = {"workdir": run.workdir, "run": os.path.basename(os.path.normpath(run.workdir)),
            "method": run.method.name, "step": run.step}
    if "text" in run.method.capabilities:  # a language model: its test-split likelihood, not image metrics
        mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
        return {**head, **evaluate(run.method, run.state, run.test_source, run.config, mesh)}
    net = feature_net if isinstance(feature_net, FeatureNet) else get_feature_net(
        feature_net or run.config.eval.feature_net)
    source = run.train_source if ref_split == "train" else run.test_source
    num_real = len(real) if real is not None else min(num_samples, len(source))
    keep = ref_stats is None and fits_all_features(num_real, num_samples, net.feature_dim, all_features_max_bytes)
    reference, reference_line = _reference(run, net, num_samples, keep, real, ref_stats, ref_split)
    if ref_stats_out is not None:
        mu, sigma = ((reference.mu, reference.sigma) if isinstance(reference, ReferenceStats)
                     else finalize_stats(reference.stats))
        save_stats(ref_stats_out, mu, sigma, **({} if reference.count is None else {"num_images": reference.count}))
    fake, seconds, nfe = empty_summary(net.feature_dim, keep), 0.0, 0
    progress = _Progress(num_samples, f"{num_samples} samples through {net.name}")
    for images, nfe, dt in generate_batches(run.method, run.state.ema_params, run.state.model_state, num_samples,
                                            seed=seed, labels=balanced_labels(num_samples, run.method.num_classes),
                                            timed=timed, **options):
        fake = summarize([images], net, keep, fake, name="sample features")
        seconds += dt
        progress.update(len(images))
    progress.bar.close()
    row = {**head, "num_samples": fake.count, "reference": reference_line,
           **summary_metrics(reference, fake, net.name, seed=seed), "nfe": nfe}
    if not keep:
        row["skipped"] = [f"{m}_{net.name}" for m in ALL_FEATURES_METRICS]
        row["skipped_reason"] = (
            "the reference is statistics only (ref_stats); these metrics need every reference feature"
            if ref_stats is not None else
            f"they need every feature: {num_real} reference + {num_samples} sample features of dimension "
            f"{net.feature_dim} take {(num_real + num_samples) * net.feature_dim * 8 / 2**20:.0f} MiB as float64, "
            f"over the {all_features_max_bytes / 2**20:.0f} MiB limit (fits_all_features); evaluate fewer samples "
            "for them")
        log.info("skipped %s: %s", ", ".join(row["skipped"]), row["skipped_reason"])
    if timed:
        row["images_per_sec"] = num_samples / max(seconds, 1e-9)
    likelihood = run.method.likelihood_metric()
    if likelihood_images:
        row.update(evaluate_likelihood(run, likelihood_images, seed))
    elif likelihood:  # the run's last evaluation (the metrics file is read only when it can answer)
        evals = read_metrics(run.workdir, "eval")
        if evals and likelihood[0] in evals[-1]:
            row["bits_per_dim"], row["bits_per_dim_kind"] = evals[-1][likelihood[0]], likelihood[1]
    return row


# -- the built-in feature networks ----------------------------------------------------------------------------
def load_mnist_classifier(workdir: str | None = None, batch_size: int = 500) -> FeatureNet:
    """The trained MNIST classifier of `workdir` (default: `cache_dir("mnist_classifier")`), EMA parameters."""
    workdir = workdir or cache_dir(MNIST_CLASSIFIER)
    how = (f"Train it first (about 7 minutes on 2 CPU cores): python -m jgen train "
           f"--config {MNIST_CLASSIFIER_CONFIG} --workdir {workdir}")
    if not os.path.exists(os.path.join(workdir, "config.json")):
        raise FileNotFoundError(f"no MNIST classifier in {workdir!r}. {how}")
    config = read_config(workdir)
    if config.method.name != "classifier":
        raise InputError(f"{workdir!r} holds a {config.method.name!r} run, not a classifier. {how}")
    try:
        run = load_run(workdir)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"the MNIST classifier in {workdir!r} has no checkpoint. {how}") from e
    if run.step < config.train.steps:
        raise InputError(f"the MNIST classifier in {workdir!r} is unfinished (step {run.step} of "
                         f"{config.train.steps}); its features would not be the reference ones. Rerun the same "
                         f"command to finish it: {how.split(': ', 1)[1]}")
    if tuple(run.info.shape) != (28, 28, 1) or run.info.num_classes != 10:
        raise InputError(f"{workdir!r} holds a classifier of {run.info.shape} images with {run.info.num_classes} "
                         "classes; the MNIST classifier takes (28, 28, 1) images and 10 classes")
    params = jax.tree.map(jax.numpy.asarray, jax.device_get(run.state.ema_params))
    return classifier_feature_net(run.method, params, MNIST_CLASSIFIER, batch_size)


register_feature_net(MNIST_CLASSIFIER, load_mnist_classifier)
register_feature_net(inception.INCEPTION, inception.load_inception)
