"""Deterministic input pipelines built with grain.

The training stream is a pure function of (source, seed, global batch size): it shuffles with a
new permutation every epoch, repeats forever and batches. Each process takes its own contiguous
slice of every global batch, so the data seen by the model does not depend on the process count.
The iterator's state (a small dict) is saved in every checkpoint and restored on resume.
"""

from __future__ import annotations

from typing import Iterator

import grain
import jax
import numpy as np


def make_train_iterator(source, seed: int, global_batch_size: int,
                        process_index: int | None = None, process_count: int | None = None):
    """A checkpointable grain iterator of this process's share of each global batch.

    Yields {"image": [B_local, H, W, C] float32, "label": [B_local] int32}.
    `it.get_state()` / `it.set_state(state)` save and restore its position.
    """
    p = jax.process_index() if process_index is None else process_index
    n = jax.process_count() if process_count is None else process_count
    if global_batch_size % n:
        raise ValueError(f"batch_size={global_batch_size} is not divisible by the process count {n}")
    local = global_batch_size // n
    ds = (grain.MapDataset.source(source).seed(seed).shuffle().repeat()
          .batch(global_batch_size, drop_remainder=True))
    if n > 1:
        ds = ds.map(lambda b: jax.tree.map(lambda x: x[p * local:(p + 1) * local], b))
    return iter(ds.to_iter_dataset())


def eval_batches(source, batch_size: int, max_examples: int | None = None) -> Iterator[tuple[dict, int]]:
    """Every example of `source` once, in order, as fixed-shape batches: yields (batch, num_valid).

    The last batch is padded by repeating its final example; callers weight by `num_valid`.
    """
    total = len(source) if max_examples is None else min(len(source), max_examples)
    for start in range(0, total, batch_size):
        idx = np.arange(start, min(start + batch_size, total))
        valid = len(idx)
        idx = np.concatenate([idx, np.full(batch_size - valid, idx[-1])])
        examples = [source[int(i)] for i in idx]
        batch = {k: np.stack([ex[k] for ex in examples]) for k in examples[0]}
        yield batch, valid


def spread_batch(source, num: int) -> dict:
    """`num` examples at evenly spaced indices of `source` (all classes for label-sorted splits), stacked."""
    idx = np.linspace(0, len(source) - 1, num).round().astype(int)
    examples = [source[int(i)] for i in idx]
    return {k: np.stack([ex[k] for ex in examples]) for k in examples[0]}
