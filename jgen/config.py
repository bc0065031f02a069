"""Configuration: the defaults every experiment starts from, and validation before any compute.

Experiment files in experiments/configs/ start from `jgen.run.default_config(method)` (these core sections plus
the method's own `defaults()`) and change what they need. Every field can be overridden on the command line
(`--config.optim.learning_rate=3e-4`). The run layer (`jgen.run.validate`) checks the core fields here and the
method's `check(config)` checks its own; both raise `ConfigError` naming the field, the bad value and the fix.
This module imports nothing else of jgen.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np


class InputError(ValueError):
    """Something a user passed (a config value, a command-line flag, an argument of a public function) cannot be
    used; the message names the value and what to do instead. The CLI prints it in one line and exits 2."""


class ConfigError(InputError):
    """A config field holds a value jgen cannot run with."""


class OptionError(InputError):
    """A named option of a request (a sampling option, a function's argument) holds a value that cannot be used:
    `name=value: allowed`, or `name=value is unknown; choose one of [...]` for a choice. `fix` maps options to
    values that would work. A config door turns it into the `ConfigError` of the field the value came from."""

    def __init__(self, name: str, value: Any, allowed: str, choices: Sequence | None = None, fix: dict | None = None):
        if choices is not None:
            allowed = f"choose one of {list(choices)}"
        super().__init__(
            f"{name}={value!r} is unknown; {allowed}" if choices is not None else f"{name}={value!r}: {allowed}"
        )
        self.name, self.value, self.allowed, self.fix = name, value, allowed, dict(fix or {})


def is_integer(value: Any, minimum: float = -math.inf) -> bool:
    """`value` is an int or a numpy integer (not a bool) and >= `minimum`."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum


def is_number(value: Any, minimum: float = -math.inf, maximum: float = math.inf) -> bool:
    """`value` is a finite int or float (numpy's too; not a bool) in [minimum, maximum]."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return ok and math.isfinite(value) and minimum <= value <= maximum


def check_int(name: str, value: Any, minimum: int = 1, why: str = "") -> int:
    """`value` as an int, or OptionError `name=value: must be an integer >= minimum` (`why` appended)."""
    if not is_integer(value, minimum):
        raise OptionError(name, value, f"must be an integer >= {minimum}{why}")
    return int(value)


def check_seed(name: str, value: Any) -> int:
    """`value` as a seed of `jax.random.PRNGKey`: an integer in [0, 2**32) (larger ones would be silently cut)."""
    if not is_integer(value, 0) or value >= 2**32:
        raise OptionError(name, value, "must be an integer in [0, 2**32)")
    return int(value)


def check_output(name: str, path: str, suffix: str | None = None, directory: bool = False) -> str:
    """`path` as a place jgen can write a file (with `suffix`, e.g. ".png") or, with `directory`, a folder of files:
    OptionError unless its suffix is right, it is not the wrong kind of thing already, and the nearest folder that
    exists above it is a writable folder (missing folders are created when it is written)."""
    if not path:
        raise OptionError(name, path, "must be a path")
    if directory and os.path.exists(path) and not os.path.isdir(path):
        raise OptionError(name, path, "is a file; pass a folder for the output files")
    if not directory and os.path.isdir(path):
        raise OptionError(
            name, path, f"is a folder; pass a file name, e.g. {os.path.join(path, 'out' + (suffix or ''))}"
        )
    if suffix is not None and not path.lower().endswith(suffix):
        stem = os.path.splitext(path)[0]
        raise OptionError(
            name, path, f"must name a {suffix} file (it is written as {suffix[1:].upper()}): {stem}{suffix}"
        )
    parent = os.path.abspath(path if directory else os.path.dirname(os.path.abspath(path)))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise OptionError(name, path, f"cannot be created: {parent!r} is a file")
    if not os.access(parent, os.W_OK):
        raise OptionError(name, path, f"cannot be written: {parent!r} is not writable")
    return path


def cache_dir(*parts: str) -> str:
    """Where jgen keeps what it makes once (feature networks, reference statistics): `$JGEN_CACHE/<parts>` if
    JGEN_CACHE is set, else `~/.cache/jgen/<parts>`."""
    root = os.environ.get("JGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "jgen")
    return os.path.join(root, *parts)


def optim_config(learning_rate: float = 1e-3, **overrides) -> ml_collections.ConfigDict:
    """The optimizer block (also used per player by the GAN)."""
    cfg = ml_collections.ConfigDict(
        dict(
            name="adam",
            learning_rate=learning_rate,
            b1=0.9,
            b2=0.999,
            eps=1e-8,
            weight_decay=0.0,
            schedule="constant",
            warmup_steps=0,
            grad_clip=0.0,
        )
    )
    cfg.update(overrides)
    return cfg


def base_config() -> ml_collections.ConfigDict:
    """Defaults shared by all experiments."""
    c = ml_collections.ConfigDict()
    c.name = "experiment"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        dict(
            name="mnist",  # mnist (embedded, 4k/1k) | digits (sklearn 8x8) | tfds | pydoc_text | tfds_text
            batch_size=128,  # global batch size, split over all devices
            tfds_name="",  # for name=tfds: the TFDS dataset name, e.g. "mnist" or "fashion_mnist"
            data_dir="",  # for name=tfds: where the prepared dataset lives
            train_split="train",
            test_split="test",
            image_key="image",
            label_key="label",
            num_classes=10,
            random_flip=False,  # training images mirrored left-right with probability 1/2 (seeded per example)
            worker_count=0,  # grain worker processes reading training batches (0: read in the training process)
            worker_buffer_size=1,  # finished batches each worker keeps ready
            # batches each reading process keeps in flight on its reader threads (grain's own default, 500, holds
            # ~790 MB for ddpm_cifar10 at batch 128; 16 holds ~25 MB)
            read_ahead=16,
            prefetch=2,  # calls' batches a background thread puts on the devices ahead of use (0: inline)
        )
    )
    c.method = ml_collections.ConfigDict(dict(name=""))
    c.model = ml_collections.ConfigDict()
    c.optim = optim_config()
    c.train = ml_collections.ConfigDict(
        dict(
            steps=1000,
            # K optimizer steps per compiled call (lax.scan over K batches); the step count and every interval below
            # must be multiples of K. 0: chosen by the loop (1 on the CPU; on an accelerator the largest K <= 16
            # dividing them all)
            steps_per_call=0,
            log_every=50,  # steps between metrics.jsonl / TensorBoard rows
            log_steps=(),  # extra steps that also end a train row, e.g. (1, 10, 100, 1000) for the early steps
            # a log_every grid misses (each row is still the mean since the previous row)
            eval_every=500,  # steps between evaluations on the test split (0: only at the end, -1: never)
            sample_every=500,  # steps between sample grids (0: only at the end, -1: never)
            checkpoint_every=500,  # steps between checkpoints (a final one is always written)
            keep_checkpoints=2,  # newest checkpoints kept (>= 1; the final one is always the newest)
            # fine-tuning: a run directory whose EMA parameters (at checkpoint init_step; 0: its newest) this run
            # starts from where path and shape agree (jgen/train/warm_start.py); "": a fresh initialisation
            init_from="",
            init_step=0,
            skip_nonfinite_updates=False,  # True: a step with a NaN/inf metric leaves the state as it was and is
            # counted in `skipped_updates`; False: the run stops (exit code 3)
            ema_decay=0.999,  # 0 makes the EMA equal to the parameters
            # post-hoc EMA (docs/posthoc_ema.md): power-function EMA profiles of these relative widths kept beside
            # the EMA, e.g. (0.05, 0.10), and written to <workdir>/ema_snapshots/ every snapshot_every steps (and
            # at the end); `python -m jgen ema` reconstructs any other width from them. (): off
            posthoc_ema=ml_collections.ConfigDict(dict(sigma_rels=(), snapshot_every=0)),
            eval_batch_size=250,
            num_eval_examples=0,  # 0: the whole test split
            progress=True,
            # True: XLA:GPU runs only deterministic kernels (bitwise-repeatable GPU runs; the CPU always is); set
            # before JAX starts, so a fresh process is needed
            deterministic=False,
        )
    )
    # fsdp: devices each parameter, its optimizer state and EMA are sharded over (1: replicated); the mesh is
    # (devices / fsdp) "data" x fsdp "fsdp", the batch is split over both
    c.parallel = ml_collections.ConfigDict(dict(fsdp=1))
    c.eval = ml_collections.ConfigDict(
        dict(
            sample_metrics_every=0,  # steps between FID/IS/precision/recall of EMA samples (0: off)
            num_samples=1000,  # samples (and test images) for those metrics
            feature_net="mnist_classifier",
        )
    )
    return c


def fail(field: str, value: Any, allowed: str, fix: str = "") -> None:
    """Raise ConfigError: `config.<field>=<value> is invalid: <allowed>. Fix: <fix>`."""
    msg = f"config.{field}={value!r} is invalid: {allowed}."
    if fix:
        msg += f" Fix: {fix}"
    raise ConfigError(msg)


def require_int(field: str, value: Any, minimum: int = 1, fix: str = "") -> None:
    """`fail` unless `value` is an integer (not a bool) >= `minimum`."""
    if not is_integer(value, minimum):
        fail(field, value, f"must be an integer >= {minimum}", fix)


def require_number(
    field: str, value: Any, minimum: float = -math.inf, maximum: float = math.inf, fix: str = ""
) -> None:
    """`fail` unless `value` is a finite number in [minimum, maximum]."""
    if not is_number(value, minimum, maximum):
        bounds = (
            f"in [{minimum}, {maximum}]"
            if math.isfinite(minimum) and math.isfinite(maximum)
            else (
                f">= {minimum}" if math.isfinite(minimum) else f"<= {maximum}" if math.isfinite(maximum) else "finite"
            )
        )
        fail(field, value, f"must be a finite number {bounds}", fix)


def require_int_tuple(field: str, value: Any, min_len: int = 1, fix: str = "") -> None:
    """`fail` unless `value` is a tuple/list of at least `min_len` positive integers (e.g. conv widths)."""
    ok = isinstance(value, (tuple, list)) and len(value) >= min_len and all(is_integer(v, 1) for v in value)
    if not ok:
        fail(field, value, f"must be a tuple of {min_len}+ positive integers, e.g. (16, 32)", fix)


def require_choice(field: str, value: Any, choices) -> None:
    """`fail` unless `value` is one of `choices`."""
    if value not in choices:
        fail(field, value, f"choose one of {list(choices)}")


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word is a string, as on the command line


def _coerce(field: str, old: Any, text: str) -> Any:
    """The value `text` means for a field whose current value is `old` (its type decides)."""
    if isinstance(old, bool):
        low = text.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        fail(field, text, "must be true or false")
    if isinstance(old, str):
        value = _parse_value(text)
        return value if isinstance(value, str) else text
    value = _parse_value(text)
    if isinstance(old, int):
        if isinstance(value, bool) or not isinstance(value, int):
            fail(field, text, "must be an integer", f"--config.{field}={old}")
        return value
    if isinstance(old, float):
        if text.strip().lower() in ("nan", "inf", "-inf", "+inf"):
            return float(text)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(field, text, "must be a number", f"--config.{field}={old}")
        return float(value)
    if isinstance(old, (tuple, list)):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = (value,)
        if not isinstance(value, (tuple, list)):
            fail(field, text, f"must be a tuple like {tuple(old)!r}", f"--config.{field}='{tuple(old)!r}'")
        return tuple(value) if isinstance(old, tuple) else list(value)
    return value


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> ml_collections.ConfigDict:
    """A copy of `config` with `field=value` overrides applied (what `--config.field=value` does on the command
    line). The value is read as the field's current type; an unknown field is refused with the section's fields
    and the closest names."""
    config = ml_collections.ConfigDict(config.to_dict())
    for item in overrides:
        field, sep, text = item.partition("=")
        if not sep or not field:
            raise ConfigError(f"override {item!r} is not of the form field=value (e.g. --config.train.steps=300)")
        *parents, leaf = field.split(".")
        node, where = config, "config"
        for part in parents + [leaf]:
            if not isinstance(node, ml_collections.ConfigDict):
                raise ConfigError(f"unknown config field 'config.{field}': {where} is a value, not a section")
            if part not in node:
                known = sorted(node.keys())
                close = difflib.get_close_matches(part, known, n=2)
                hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ConfigError(f"unknown config field 'config.{field}': {where} has the fields {known}.{hint}")
            if part is not leaf:
                node, where = node[part], f"{where}.{part}"
        old = node[leaf]
        if isinstance(old, ml_collections.ConfigDict):
            raise ConfigError(
                f"config.{field} is a section, not a value: set one of its fields "
                f"{sorted(old.keys())}, e.g. --config.{field}.{sorted(old.keys())[0]}=..."
            )
        node[leaf] = _coerce(field, old, text) if old is not None else _parse_value(text)
    return config


def merge_defaults(config: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `config` with every field of `defaults` that it lacks added (values already in `config` win)."""
    out = ml_collections.ConfigDict(config.to_dict())

    def fill(dst: ml_collections.ConfigDict, src: ml_collections.ConfigDict) -> None:
        for key, value in src.items():
            if key not in dst:
                dst[key] = value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value
            elif isinstance(value, ml_collections.ConfigDict) and isinstance(dst[key], ml_collections.ConfigDict):
                fill(dst[key], value)

    fill(out, defaults)
    return out


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(json.loads(text))


# Fields that define what a checkpoint contains: a run directory cannot be resumed with other values.
IDENTITY_FIELDS = ("method", "model", "data.name", "data.tfds_name", "seed", "train.posthoc_ema.sigma_rels")
# Fields inside those that only say how the network computes (its parameters stay the same float32 arrays): a run
# may be resumed or evaluated with other values.
COMPUTE_FIELDS = ("model.dtype", "model.remat")


def identity_mismatches(saved: dict, new: dict) -> list[str]:
    """'field: checkpoint has X, config has Y' for every leaf of the identity fields that differs (the
    COMPUTE_FIELDS aside)."""
    out: list[str] = []

    def walk(path: str, a, b) -> None:
        if path in COMPUTE_FIELDS:
            return
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
