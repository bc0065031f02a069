"""An experiment's config: a config file and overrides become a completed, validated config.

    config = load_config("experiments/configs/vae_mnist.py", ["train.steps=300"])   # as --config.train.steps=300
    config = default_config("vae")                                                   # what experiment files start from

A config is completed with the core defaults (`jgen.config.base_config`) and its method's `defaults()`, then checked
(`validate`: the core fields here, then the method's own `check`) before any compute, raising `ConfigError` naming
the field, the value and the fix.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import traceback
from collections.abc import Iterator, Sequence

import jax
import ml_collections

from jgen.config import (
    ConfigError,
    apply_overrides,
    base_config,
    fail,
    is_integer,
    is_number,
    merge_defaults,
    require_int,
    require_int_tuple,
)
from jgen.data import SOURCES
from jgen.methods import Method, get_method, method_names
from jgen.metrics.feature_nets import feature_net_names
from jgen.train.posthoc_ema import SIGMA_REL_MAX


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
        fail(
            "data.tfds_name",
            config.data.tfds_name,
            "data.name='tfds' needs a TFDS dataset name",
            "--config.data.tfds_name=mnist --config.data.data_dir=/path/to/tfds",
        )
    if not is_integer(config.seed, 0) or config.seed >= 2**32:
        fail("seed", config.seed, "must be an integer in [0, 2**32) (the seed of jax.random.PRNGKey)")
    bs = config.data.batch_size
    require_int("data.batch_size", bs)
    if bs % n:
        fail(
            "data.batch_size",
            bs,
            f"must be divisible by the number of devices ({n})",
            f"--config.data.batch_size={max(n, (bs // n) * n)}",
        )
    fsdp = config.parallel.fsdp
    require_int("parallel.fsdp", fsdp, 1, "--config.parallel.fsdp=1 (parameters replicated on every device)")
    if n % fsdp:
        fail(
            "parallel.fsdp",
            fsdp,
            f"must divide the number of devices ({n}): the mesh is (devices / fsdp) x fsdp",
            f"--config.parallel.fsdp={max(d for d in range(1, fsdp + 1) if n % d == 0)}",
        )
    if not isinstance(config.data.random_flip, bool):
        fail("data.random_flip", config.data.random_flip, "must be true or false")
    require_int(
        "data.worker_count",
        config.data.worker_count,
        0,
        "--config.data.worker_count=0 (read in the training process) or the number of worker processes",
    )
    require_int("data.worker_buffer_size", config.data.worker_buffer_size, 1, "--config.data.worker_buffer_size=1")
    require_int(
        "data.read_ahead",
        config.data.read_ahead,
        0,
        "--config.data.read_ahead=16 (batches in flight per reading process; 0 reads on demand)",
    )
    require_int(
        "data.prefetch",
        config.data.prefetch,
        0,
        "--config.data.prefetch=2 (calls' batches put on the devices ahead; 0: inline)",
    )
    cls = method_class(config)
    t = config.train
    require_int("train.steps", t.steps)
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
        fail(
            "train.log_steps",
            t.log_steps,
            f"steps {off_grid} are not multiples of train.steps_per_call={k} (the "
            f"loop logs between calls of {k} steps)",
            "--config.train.steps_per_call=1",
        )
    intervals = {f"train.{f}": t[f] for f in ("steps", "log_every", "checkpoint_every", "eval_every", "sample_every")}
    intervals["eval.sample_metrics_every"] = config.eval.sample_metrics_every
    intervals["train.posthoc_ema.snapshot_every"] = t.posthoc_ema.snapshot_every
    for field, every in intervals.items():
        if k and every > 0 and every % k:
            fail(
                field,
                every,
                f"must be a multiple of train.steps_per_call={k} (the loop logs, evaluates and "
                f"saves between calls of {k} steps)",
                f"--config.{field}={max(k, round(every / k) * k)}",
            )
    require_int("train.keep_checkpoints", t.keep_checkpoints, 1, "--config.train.keep_checkpoints=2")
    if not isinstance(t.init_from, str):
        fail("train.init_from", t.init_from, "must be a run directory or '' (a fresh start)")
    require_int("train.init_step", t.init_step, 0, "0 starts from the run's newest checkpoint")
    require_int("train.num_eval_examples", t.num_eval_examples, 0, "0 evaluates the whole test split")
    if not isinstance(t.deterministic, bool):
        fail("train.deterministic", t.deterministic, "must be true or false")
    if not isinstance(t.skip_nonfinite_updates, bool):
        fail("train.skip_nonfinite_updates", t.skip_nonfinite_updates, "must be true or false")
    if not 0.0 <= t.ema_decay < 1.0:
        fail("train.ema_decay", t.ema_decay, "must be in [0, 1)")
    check_posthoc_ema(t.posthoc_ema)
    if t.eval_batch_size <= 0 or t.eval_batch_size % n:
        fail("train.eval_batch_size", t.eval_batch_size, f"must be a positive multiple of the device count ({n})")
    e = config.eval
    if e.sample_metrics_every < 0:
        fail("eval.sample_metrics_every", e.sample_metrics_every, "must be >= 0 (0: off)")
    require_int("eval.num_samples", e.num_samples, 2)
    if e.feature_net not in feature_net_names():
        fail("eval.feature_net", e.feature_net, f"choose one of {feature_net_names()}")
    cls.check(config)


def check_posthoc_ema(p: ml_collections.ConfigDict) -> None:
    """Raise ConfigError for an invalid `train.posthoc_ema` block (sigma_rels, snapshot_every)."""
    rels, every = p.sigma_rels, p.snapshot_every
    example = "--config.train.posthoc_ema.sigma_rels='(0.05, 0.10)'"
    ok = isinstance(rels, (tuple, list)) and all(is_number(s, 0.0, SIGMA_REL_MAX) and s > 0 for s in rels)
    if not ok or len(set(rels)) != len(rels):
        fail(
            "train.posthoc_ema.sigma_rels",
            rels,
            f"must be a tuple of distinct relative EMA widths in (0, {SIGMA_REL_MAX:.4f}] (or () for off)",
            example,
        )
    require_int("train.posthoc_ema.snapshot_every", every, 0, "--config.train.posthoc_ema.snapshot_every=100")
    if rels and every == 0:
        fail(
            "train.posthoc_ema.snapshot_every",
            every,
            "must be >= 1 when train.posthoc_ema.sigma_rels is set (the reconstruction needs snapshots)",
            "--config.train.posthoc_ema.snapshot_every=100 (about 20-50 snapshots per run)",
        )
    if every and not rels:
        fail(
            "train.posthoc_ema.snapshot_every",
            every,
            "has no effect while train.posthoc_ema.sigma_rels is ()",
            f"{example}, or --config.train.posthoc_ema.snapshot_every=0",
        )


def load_config(path: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """`get_config()` of a config file, completed with its method's defaults, with `field=value` overrides applied
    exactly as `--config.field=value` on the command line (`jgen.config.apply_overrides`)."""
    if os.path.isdir(path):
        raise ConfigError(
            f"config file {path!r} is a folder; pass a .py file in it, e.g. experiments/configs/vae_mnist.py"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} does not exist (experiments/configs/ holds the examples)")
    spec = importlib.util.spec_from_file_location("jgen_config_file", path)
    if spec is None:  # not a .py file
        raise ConfigError(f"config file {path!r} is not a Python file; pass a .py file with get_config()")
    module = importlib.util.module_from_spec(spec)
    with _config_file_errors(path, "loading"):
        spec.loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"config file {path!r} defines no get_config(); see experiments/configs/vae_mnist.py")
    with _config_file_errors(path, "get_config()"):
        config = module.get_config()
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(
            f"config file {path!r}: get_config() returned a {type(config).__name__}, not an ml_collections.ConfigDict "
            "(start from jgen.run.default_config(method))"
        )
    return apply_overrides(with_defaults(config), overrides)


@contextlib.contextmanager
def _config_file_errors(path: str, doing: str) -> Iterator[None]:
    """An exception raised by a config file's own code -> ConfigError naming the file, the line and the cause."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as e:
        if isinstance(e, SyntaxError) and e.lineno is not None:
            line = e.lineno
        else:
            target = os.path.abspath(path)
            lines = [f.lineno for f in traceback.extract_tb(e.__traceback__) if os.path.abspath(f.filename) == target]
            line = lines[-1] if lines else None
        where = f"{path}:{line}" if line else path
        cause = " ".join(str(e).split()) or type(e).__name__
        raise ConfigError(f"config file {where}: {doing} failed: {type(e).__name__}: {cause}"[:500]) from None
