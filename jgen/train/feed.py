"""The training loop's input: global batches put on the devices ahead of use by a background thread.

Each call of the compiled train step takes K = train.steps_per_call local batches (stacked on a new leading axis
when K > 1) as one global array sharded over the mesh. `DeviceFeed` makes these on a daemon thread -- `next(it)`
K times, the stacking, and the host-to-device transfer -- and keeps `depth` of them ready, so that on an
accelerator the host has nothing to do between two dispatches of the step. Each batch comes with the data
iterator's state after it: the thread reads ahead of the loop, so a checkpoint saved after a call must hold the
state of the batches that call consumed, not the iterator's own. With depth 0 everything happens inline on the
caller's thread, as it is needed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

_END = object()


class DeviceFeed:
    """Iterator of (global batch, data state after it); `put(local batch) -> global batch`."""

    def __init__(self, it, steps_per_call: int, put: Callable[[Any], Any], depth: int = 2):
        self._it, self._k, self._put = it, steps_per_call, put
        self._thread = None
        if depth > 0:
            self._queue: queue.Queue = queue.Queue(maxsize=depth)
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._fill, name="jgen-feed", daemon=True)
            self._thread.start()

    def _make(self) -> tuple[Any, dict]:
        if self._k == 1:
            local = next(self._it)
        else:  # K local batches stacked on a new leading axis
            local = jax.tree.map(lambda *xs: np.stack(xs), *[next(self._it) for _ in range(self._k)])
        return self._put(local), self._it.get_state()

    def _fill(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._make()
            except BaseException as e:  # re-raised on the caller's thread at its next batch
                item = (_END, e)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[0] is _END:
                return

    def __iter__(self) -> DeviceFeed:
        return self

    def __next__(self) -> tuple[Any, dict]:
        if self._thread is None:
            return self._make()
        batch, state = self._queue.get()
        if batch is _END:
            raise state
        return batch, state

    def close(self) -> None:
        """Stop the thread (the batches it read ahead are dropped; the iterator is left where it got to)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
