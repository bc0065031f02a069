"""The one way to generate: `Method.generate`, run in fixed-size, jit-compiled batches.

    images, info = generate(method, state.ema_params, state.model_state, num=1000, seed=0,
                            labels=balanced_labels(1000, method.num_classes), sampler="ddim", steps=50)

Training-time sample metrics, `jgen eval`, `jgen compare`, `jgen sample` and `Pipeline` all call `generate`
(`jgen eval` at scale through `generate_batches`, the same images one batch at a time). The
compiled program is cached on the method per static setting (batch size, conditional or not, sampling options), so
repeated calls (every sample-metrics interval of a run) compile once. User arguments are checked once, here, by
`check_request`, with messages that name the value and the fix.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgen.config import InputError

DEFAULT_BATCH = 250


@dataclasses.dataclass(frozen=True)
class Generated:
    """What `generate` did: network evaluations per image and the time spent after compilation."""

    num_images: int
    nfe_per_image: int
    seconds: float  # wall time of the timed batches (compilation excluded when timed=True)

    @property
    def images_per_sec(self) -> float:
        return self.num_images / max(self.seconds, 1e-9)


def balanced_labels(num: int, num_classes: int) -> np.ndarray | None:
    """Class-balanced labels 0, 1, ..., K-1, 0, ... ([num] int32); None for an unconditional method (K = 0)."""
    return None if num_classes == 0 else (np.arange(num) % num_classes).astype(np.int32)


def check_request(method, num: Any, labels: Any = None, **options) -> np.ndarray | None:
    """Validate a generation request at the user boundary; returns the labels as int32 [num] (or None).

    Raises ValueError naming the bad value and what is allowed: a method that cannot generate, num not a
    positive integer, labels for an unconditional method, labels of the wrong count/type/range, and any sampling
    option the method does not take or whose value it cannot use (`Method.check_generate_options`).
    """
    if "sample" not in method.capabilities:
        raise InputError(f"method {method.name!r} is not a generative model: it cannot generate images")
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise InputError(f"num={num!r}: must be an integer >= 1")
    method.check_generate_options(**{k: v for k, v in options.items() if v is not None})
    if labels is None:
        return None
    k = method.num_classes
    if k == 0:
        raise InputError(f"this {method.name!r} model is unconditional: generate without labels")
    if isinstance(labels, (str, bytes)):
        raise InputError(f"labels={labels!r}: must be a sequence of integers in [0, {k - 1}]")
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != num:
        raise InputError(f"labels must be {num} integers (one per image); got an array of shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InputError(f"labels must be integers in [0, {k - 1}]; got {arr.dtype} values {arr[:5].tolist()}")
    bad = sorted({int(x) for x in arr if not 0 <= x < k})
    if bad:
        raise InputError(f"labels {bad[:10]} are out of range: this model has {k} classes, labels 0..{k - 1}")
    return arr.astype(np.int32)


def _batch_program(method, batch: int, conditional: bool, options: dict):
    static = tuple(sorted((k, v) for k, v in options.items()))

    def generate_batch(params, model_state, key, labels):
        return method.generate(params, model_state, key, batch, labels, **options)

    return method.jitted(("generate", batch, conditional, static), generate_batch)


def generate_batches(
    method,
    params,
    model_state,
    num: int,
    seed: int | None = None,
    key: jax.Array | None = None,
    labels: Sequence[int] | np.ndarray | None = None,
    batch_size: int = DEFAULT_BATCH,
    timed: bool = False,
    **options,
) -> Iterator[tuple[np.ndarray, int, float]]:
    """`generate`, one batch at a time: yields (images float32 [b, H, W, C] in [0, 1], NFE per image, seconds) for
    consecutive batches whose images, laid end to end, are exactly `generate`'s (the last batch is trimmed to `num`).
    A caller that embeds each batch and drops it (50,000-sample FID) holds one batch of images at a time.

    Arguments as for `generate`; they are checked before the first batch. `seconds` is the batch's time from
    dispatch to its images on the host; with `timed`, one extra batch is compiled and run before the first."""
    options = {k: v for k, v in options.items() if v is not None}
    labels = check_request(method, num, labels, **options)
    if (seed is None) == (key is None):
        raise InputError("generate takes exactly one of seed= or key=")
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise InputError(f"batch_size={batch_size!r}: must be an integer >= 1")
    key = jax.random.PRNGKey(seed) if key is None else key
    bs = int(min(batch_size, num))
    program = _batch_program(method, bs, labels is not None, options)
    num_batches = -(-num // bs)
    padded = None if labels is None else np.concatenate([labels, np.zeros(num_batches * bs - num, np.int32)])

    def batch_labels(i):
        return None if padded is None else jnp.asarray(padded[i * bs : (i + 1) * bs])

    def batches():
        if timed:  # compile (and warm up) outside the timed region
            jax.block_until_ready(program(params, model_state, jax.random.fold_in(key, num_batches), batch_labels(0)))
        for i in range(num_batches):
            t0 = time.perf_counter()
            images, nfe = program(params, model_state, jax.random.fold_in(key, i), batch_labels(i))
            images = np.asarray(jax.device_get(images))[: num - i * bs]
            yield images, int(nfe), time.perf_counter() - t0

    return batches()  # a generator made here, so that the checks above run at the call, not at the first next()


def generate(
    method,
    params,
    model_state,
    num: int,
    seed: int | None = None,
    key: jax.Array | None = None,
    labels: Sequence[int] | np.ndarray | None = None,
    batch_size: int = DEFAULT_BATCH,
    timed: bool = False,
    **options,
) -> tuple[np.ndarray, Generated]:
    """`num` images float32 [num, H, W, C] in [0, 1] from `method.generate`, and what it cost.

    Batch i (of `min(batch_size, num)` images; the last one padded) draws with `fold_in(key, i)`, `key` being
    `PRNGKey(seed)` when only a seed is given: the same seed gives the same images. `labels` ([num] ints) condition a
    conditional method; `options` are the method's sampling options (None: its configured value). With `timed`, one
    extra batch runs first so that `seconds` counts sampling, not compilation. `generate_batches` yields the same
    images batch by batch.
    """
    out, nfe, seconds = [], 1, 0.0
    for images, batch_nfe, dt in generate_batches(
        method, params, model_state, num, seed, key, labels, batch_size, timed, **options
    ):
        out.append(images)
        seconds += dt
        nfe = batch_nfe  # the same for every batch
    return np.concatenate(out), Generated(num, nfe, seconds)
