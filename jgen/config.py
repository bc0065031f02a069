"""Configuration: the defaults every experiment starts from, and validation before any compute.

Experiment files in experiments/configs/ call `base_config()` and change what they need. Every field
can be overridden on the command line (`--config.optim.learning_rate=3e-4`). `validate` checks the
resolved config and raises `ConfigError` naming the field, the bad value and what is allowed.
"""

from __future__ import annotations

import json
import math
from typing import Any

import ml_collections


class ConfigError(ValueError):
    """A config field holds a value jgen cannot run with."""


def optim_config(learning_rate: float = 1e-3, **overrides) -> ml_collections.ConfigDict:
    """The optimizer block (also used per player by the GAN)."""
    cfg = ml_collections.ConfigDict(dict(
        name="adam", learning_rate=learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
        schedule="constant", warmup_steps=0, grad_clip=0.0))
    cfg.update(overrides)
    return cfg


def base_config() -> ml_collections.ConfigDict:
    """Defaults shared by all experiments."""
    c = ml_collections.ConfigDict()
    c.name = "experiment"
    c.seed = 0
    # "module:function" to run instead of the standard image-training loop (e.g. the 2-D GAN ring).
    c.entry = ""
    c.data = ml_collections.ConfigDict(dict(
        name="mnist",          # mnist (embedded, 4k/1k) | digits (sklearn 8x8) | tfds
        batch_size=128,        # global batch size, split over all devices
        tfds_name="",          # for name=tfds: the TFDS dataset name, e.g. "mnist" or "fashion_mnist"
        data_dir="",           # for name=tfds: where the prepared dataset lives
        train_split="train", test_split="test", image_key="image", label_key="label", num_classes=10))
    c.method = ml_collections.ConfigDict(dict(name=""))
    c.model = ml_collections.ConfigDict()
    c.optim = optim_config()
    c.train = ml_collections.ConfigDict(dict(
        steps=1000,
        log_every=50,           # steps between metrics.jsonl / TensorBoard rows
        eval_every=500,         # steps between evaluations on the test split (0: only at the end, -1: never)
        sample_every=500,       # steps between sample grids (0: only at the end, -1: never)
        checkpoint_every=500,   # steps between checkpoints (a final one is always written)
        keep_checkpoints=2,
        ema_decay=0.999,        # 0 makes the EMA equal to the parameters
        eval_batch_size=250,
        num_eval_examples=0,    # 0: the whole test split
        progress=True))
    c.eval = ml_collections.ConfigDict(dict(
        sample_metrics_every=0,  # steps between FID/IS/precision/recall of EMA samples (0: off)
        num_samples=1000,        # samples (and test images) for those metrics
        feature_net="mnist_classifier"))
    return c


def fail(field: str, value: Any, allowed: str, fix: str = "") -> None:
    """Raise ConfigError: `config.<field>=<value> is invalid: <allowed>. Fix: <fix>`."""
    msg = f"config.{field}={value!r} is invalid: {allowed}."
    if fix:
        msg += f" Fix: {fix}"
    raise ConfigError(msg)


def _check_optim(prefix: str, cfg: ml_collections.ConfigDict) -> None:
    from jgen.train.optim import OPTIMIZERS, SCHEDULES

    if cfg.name not in OPTIMIZERS:
        fail(f"{prefix}.name", cfg.name, f"choose one of {OPTIMIZERS}")
    if not (isinstance(cfg.learning_rate, (int, float)) and math.isfinite(cfg.learning_rate) and cfg.learning_rate > 0):
        fail(f"{prefix}.learning_rate", cfg.learning_rate, "must be a finite number > 0",
              f"--config.{prefix}.learning_rate=1e-3")
    if cfg.schedule not in SCHEDULES:
        fail(f"{prefix}.schedule", cfg.schedule, f"choose one of {SCHEDULES}")
    for b in ("b1", "b2"):
        if not 0.0 <= cfg[b] < 1.0:
            fail(f"{prefix}.{b}", cfg[b], "must be in [0, 1)")
    if cfg.warmup_steps < 0:
        fail(f"{prefix}.warmup_steps", cfg.warmup_steps, "must be >= 0")
    if cfg.grad_clip < 0:
        fail(f"{prefix}.grad_clip", cfg.grad_clip, "must be >= 0 (0 turns clipping off)")


def validate(config: ml_collections.ConfigDict, num_devices: int | None = None) -> None:
    """Raise ConfigError for the first invalid field. Call before any compute."""
    import jax

    from jgen.data import SOURCES
    from jgen.methods import get_method, method_names

    if config.entry:
        return  # custom entry points validate their own configs
    if config.data.name not in SOURCES:
        fail("data.name", config.data.name, f"unknown dataset; choose one of {sorted(SOURCES)}")
    if config.data.name == "tfds" and not config.data.tfds_name:
        fail("data.tfds_name", config.data.tfds_name, "data.name='tfds' needs a TFDS dataset name",
              "--config.data.tfds_name=mnist --config.data.data_dir=/path/to/tfds")
    n = jax.device_count() if num_devices is None else num_devices
    bs = config.data.batch_size
    if not isinstance(bs, int) or bs <= 0:
        fail("data.batch_size", bs, "must be a positive integer")
    if bs % n:
        fail("data.batch_size", bs, f"must be divisible by the number of devices ({n})",
              f"--config.data.batch_size={max(n, (bs // n) * n)}")
    if config.method.name not in method_names():
        fail("method.name", config.method.name, f"unknown method; choose one of {method_names()}")
    del get_method
    if "name" in config.optim:
        _check_optim("optim", config.optim)
    else:  # one optimizer per player, e.g. optim.generator / optim.discriminator
        for k, sub in config.optim.items():
            _check_optim(f"optim.{k}", sub)
    t = config.train
    if not isinstance(t.steps, int) or t.steps <= 0:
        fail("train.steps", t.steps, "must be a positive integer")
    for k in ("log_every", "checkpoint_every"):
        if t[k] < 0:
            fail(f"train.{k}", t[k], "must be >= 0 (0: only at the end)")
    for k in ("eval_every", "sample_every"):
        if t[k] < -1:
            fail(f"train.{k}", t[k], "must be >= -1 (0: only at the end, -1: never)")
    if not 0.0 <= t.ema_decay < 1.0:
        fail("train.ema_decay", t.ema_decay, "must be in [0, 1)")
    if t.eval_batch_size <= 0 or t.eval_batch_size % n:
        fail("train.eval_batch_size", t.eval_batch_size, f"must be a positive multiple of the device count ({n})")
    if config.eval.sample_metrics_every < 0 or config.eval.num_samples <= 0:
        fail("eval", dict(config.eval), "sample_metrics_every must be >= 0 and num_samples > 0")


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(json.loads(text))


# Fields that define what a checkpoint contains: a run directory cannot be resumed with other values.
IDENTITY_FIELDS = ("method", "model", "data.name", "data.tfds_name", "seed")


def identity_mismatches(saved: dict, new: dict) -> list[str]:
    """'field: checkpoint has X, config has Y' for every leaf of the identity fields that differs."""
    out: list[str] = []

    def walk(path: str, a, b) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(f"{path}.{k}", a.get(k), b.get(k))
        elif a != b:
            out.append(f"{path}: checkpoint has {a!r}, config has {b!r}")

    for field in IDENTITY_FIELDS:
        a, b = saved, new
        for part in field.split("."):
            a, b = (a or {}).get(part), (b or {}).get(part)
        walk(field, a, b)
    return out
