"""The one way to generate: `Method.generate`, run in fixed-size, jit-compiled batches.

    spec = method.sampling_spec(sampler="ddim", steps=50)        # the request's options, checked once (the door)
    images, info = generate(method, state.ema_params, state.model_state, 1000, spec, seed=0,
                            labels=balanced_labels(1000, method.num_classes))

Training-time sample metrics, `jgen eval`, `jgen compare`, `jgen sample` and `Pipeline` all call `generate`
(`jgen eval` at scale through `generate_batches`, the same images one batch at a time). The compiled program is
`Method.generate` with the batch size and the spec static: JAX compiles it once per setting, so repeated calls
(every sample-metrics interval of a run) compile once. `check_request` checks the rest of a request (the count,
the labels) with messages that name the value and the fix; the spec is trusted as it was made.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgen.config import InputError, check_int

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


def check_request(method, num: Any, labels: Any = None) -> np.ndarray | None:
    """Validate a generation request's count and labels at the user boundary; returns the labels as int32 [num]
    (or None). Raises InputError naming the bad value and what is allowed: a method that cannot generate, num not a
    positive integer, labels for an unconditional method, labels of the wrong count/type/range."""
    if "sample" not in method.capabilities:
        raise InputError(f"method {method.name!r} is not a generative model: it cannot generate images")
    check_int("num", num)
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


def generate_batches(
    method,
    params,
    model_state,
    num: int,
    spec: Hashable = None,
    *,
    seed: int | None = None,
    key: jax.Array | None = None,
    labels: Sequence[int] | np.ndarray | None = None,
    batch_size: int = DEFAULT_BATCH,
    timed: bool = False,
) -> Iterator[tuple[np.ndarray, int, float]]:
    """`generate`, one batch at a time: yields (images float32 [b, H, W, C] in [0, 1], NFE per image, seconds) for
    consecutive batches whose images, laid end to end, are exactly `generate`'s (the last batch is trimmed to `num`).
    A caller that embeds each batch and drops it (50,000-sample FID) holds one batch of images at a time.

    Arguments as for `generate`; they are checked before the first batch. `seconds` is the batch's time from
    dispatch to its images on the host; with `timed`, one extra batch is compiled and run before the first."""
    labels = check_request(method, num, labels)
    if (seed is None) == (key is None):
        raise InputError("generate takes exactly one of seed= or key=")
    batch_size = check_int("batch_size", batch_size)
    spec = method.sampling_spec() if spec is None else spec
    key = jax.random.PRNGKey(seed) if key is None else key
    bs = min(batch_size, num)
    program = method.jitted("generate", method.generate, static_argnames=("num", "spec"))
    num_batches = -(-num // bs)
    padded = None if labels is None else np.concatenate([labels, np.zeros(num_batches * bs - num, np.int32)])

    def run(i, batch_key):
        batch_labels = None if padded is None else jnp.asarray(padded[i * bs : (i + 1) * bs])
        return program(params, model_state, batch_key, num=bs, labels=batch_labels, spec=spec)

    def batches():
        if timed:  # compile (and warm up) outside the timed region
            jax.block_until_ready(run(0, jax.random.fold_in(key, num_batches)))
        for i in range(num_batches):
            t0 = time.perf_counter()
            images, nfe = run(i, jax.random.fold_in(key, i))
            images = np.asarray(jax.device_get(images))[: num - i * bs]
            yield images, int(nfe), time.perf_counter() - t0

    return batches()  # a generator made here, so that the checks above run at the call, not at the first next()


def generate(
    method,
    params,
    model_state,
    num: int,
    spec: Hashable = None,
    *,
    seed: int | None = None,
    key: jax.Array | None = None,
    labels: Sequence[int] | np.ndarray | None = None,
    batch_size: int = DEFAULT_BATCH,
    timed: bool = False,
) -> tuple[np.ndarray, Generated]:
    """`num` images float32 [num, H, W, C] in [0, 1] from `method.generate`, and what it cost.

    `spec` is the request's sampling settings, made (and checked) by `method.sampling_spec(...)`; None: the
    method's configured sampling. Batch i (of `min(batch_size, num)` images; the last one padded) draws with
    `fold_in(key, i)`, `key` being `PRNGKey(seed)` when only a seed is given: the same seed gives the same images.
    `labels` ([num] ints) condition a conditional method. With `timed`, one extra batch runs first so that
    `seconds` counts sampling, not compilation. `generate_batches` yields the same images batch by batch.
    """
    out, nfe, seconds = [], 1, 0.0
    for images, batch_nfe, dt in generate_batches(
        method, params, model_state, num, spec, seed=seed, key=key, labels=labels, batch_size=batch_size, timed=timed
    ):
        out.append(images)
        seconds += dt
        nfe = batch_nfe  # the same for every batch
    return np.concatenate(out), Generated(num, nfe, seconds)
