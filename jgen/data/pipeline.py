"""Deterministic input pipelines built with grain.

The training stream is a pure function of (source, seed, global batch size): it shuffles with a new permutation
every epoch, repeats forever and cuts the global order into global batches. With several processes, process p of n
reads only its own examples: positions [p*B/n, (p+1)*B/n) of every global batch, which grain fetches and batches
locally. Laid side by side in process order (`jax.make_array_from_process_local_data`), the local batches are the
1-process global batch, row for row, so the data seen by the model does not depend on the process count.
The iterator's state (a small dict: the number of batches read) is the same on every process and for every
process count, so a checkpoint's data position resumes on any topology.

Reading: `TrainIterator` reads the batches in this process (grain reader threads keep `read_ahead` batches in
flight) or, with `worker_count` > 0, in grain worker processes that each read every worker_count-th batch and keep
`worker_buffer_size` finished batches ready; the stream is interleaved back in order, so the batches are bitwise
the same for every worker count, and so is the iterator state.
"""

from __future__ import annotations

from collections.abc import Iterator

import grain
import jax
import numpy as np
from absl import flags

from jgen.config import is_integer

# Reader threads per reading process; grain's own default (16) and the most `read_ahead` can keep busy.
MAX_READ_THREADS = 16


class _ProcessRows(grain.MapDataset):
    """The elements of `parent` that process `p` reads: for each global batch b (of `global_batch` elements), the
    `local` elements from position b * global_batch + p * local on."""

    def __init__(self, parent: grain.MapDataset, global_batch: int, local: int, p: int):
        super().__init__(parent)
        self._global, self._local, self._p = global_batch, local, p

    def __len__(self) -> int:
        return (len(self._parent) // self._global) * self._local

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        b, i = divmod(index, self._local)
        return self._parent[b * self._global + self._p * self._local + i]

    def __str__(self) -> str:
        return f"ProcessRows(global_batch={self._global}, local={self._local}, process={self._p})"


def _random_flip(example: dict, rng: np.random.Generator) -> dict:
    """Mirror the image left-right with probability 1/2."""
    if rng.random() < 0.5:
        return {**example, "image": example["image"][:, ::-1]}
    return example


def train_batches(
    source,
    seed: int,
    global_batch_size: int,
    process_index: int | None = None,
    process_count: int | None = None,
    random_flip: bool = False,
) -> grain.MapDataset:
    """This process's local batches as a random-access grain dataset: element b is its share of global batch b,
    and reading it reads only those examples of `source`.

    `random_flip`: each example is mirrored left-right with probability 1/2, drawn by grain from (seed, the
    example's position in the global stream): a pure function of the position, so a resumed run and any process
    count see the same flips."""
    p = jax.process_index() if process_index is None else process_index
    n = jax.process_count() if process_count is None else process_count
    if global_batch_size % n:
        raise ValueError(f"batch_size={global_batch_size} is not divisible by the process count {n}")
    local = global_batch_size // n
    ds = grain.MapDataset.source(source).seed(seed).shuffle().repeat()
    if random_flip:
        ds = ds.random_map(_random_flip)
    if n > 1:
        ds = _ProcessRows(ds, global_batch_size, local, p)
    return ds.batch(local, drop_remainder=True)


class TrainIterator:
    """This process's batches of `train_batches`, read from position `get_state()["next_index"]` on.

    worker_count: 0 reads in this process; N > 0 starts N grain worker processes (spawned: each imports jgen and
        unpickles the source, seconds of start-up) when the first batch is asked for; worker w reads batches
        w, w + N, ... and the iterator interleaves them back in order.
    worker_buffer_size: finished batches each worker keeps ready (>= 1).
    read_ahead: batches each reading process (this one, or each worker) keeps in flight on its reader threads
        (min(read_ahead, MAX_READ_THREADS) threads; 0: read on demand, no threads). Host memory for input is about
        (read_ahead + worker_buffer_size) x max(1, worker_count) batches.

    The state is {"next_index": batches read}, whatever the worker count: `set_state` closes the workers and the
    next batch reopens the stream at that position. `dataset` is the random-access grain dataset (element b is
    batch b), for reading a batch without moving the iterator. Close it (or use it as a context manager) to stop
    the workers.
    """

    def __init__(
        self, dataset: grain.MapDataset, worker_count: int = 0, worker_buffer_size: int = 1, read_ahead: int = 16
    ):
        if worker_count < 0 or worker_buffer_size < 1 or read_ahead < 0:
            raise ValueError(
                f"TrainIterator wants worker_count >= 0, worker_buffer_size >= 1 and read_ahead >= 0; "
                f"got {worker_count}, {worker_buffer_size}, {read_ahead}"
            )
        self.dataset = dataset
        self._workers, self._buffer, self._read_ahead = worker_count, worker_buffer_size, read_ahead
        self._next = 0
        self._it = None

    def _open(self):
        ds = self.dataset[self._next :]  # batch `next_index` on: a fresh start and a resume are one path
        threads = min(self._read_ahead, MAX_READ_THREADS)
        ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=self._read_ahead))
        if self._workers:
            if not flags.FLAGS.is_parsed():  # grain reads its absl flags when it starts workers; jgen parses none
                flags.FLAGS.mark_as_parsed()
            ds = ds.mp_prefetch(
                grain.multiprocessing.MultiprocessingOptions(
                    num_workers=self._workers, per_worker_buffer_size=self._buffer
                )
            )
        return iter(ds)

    def __iter__(self) -> TrainIterator:
        return self

    def __next__(self) -> dict:
        if self._it is None:
            self._it = self._open()
        batch = next(self._it)
        self._next += 1
        return batch

    def get_state(self) -> dict:
        return {"next_index": self._next}

    def set_state(self, state: dict) -> None:
        n = state.get("next_index") if isinstance(state, dict) else None
        if not is_integer(n, 0):
            raise ValueError(f"a data iterator state is {{'next_index': batches read >= 0}}; got {state!r}")
        if n != self._next:
            self.close()
        self._next = n

    def close(self) -> None:
        """Stop the reader threads and worker processes (the next batch starts them again)."""
        if self._it is not None:
            self._it.close()
            self._it = None

    def __enter__(self) -> TrainIterator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_train_iterator(
    source,
    seed: int,
    global_batch_size: int,
    process_index: int | None = None,
    process_count: int | None = None,
    random_flip: bool = False,
    worker_count: int = 0,
    worker_buffer_size: int = 1,
    read_ahead: int = 16,
) -> TrainIterator:
    """A checkpointable `TrainIterator` over `train_batches` (this process's share of each global batch).

    Yields {"image": [B_local, H, W, C] float32, "label": [B_local] int32} (text sources: {"tokens": ...}).
    `it.get_state()` / `it.set_state(state)` save and restore its position.
    """
    return TrainIterator(
        train_batches(source, seed, global_batch_size, process_index, process_count, random_flip),
        worker_count,
        worker_buffer_size,
        read_ahead,
    )


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
