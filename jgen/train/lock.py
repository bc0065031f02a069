"""Locks on a run directory: one training process per workdir, and checkpoint reads that do not race rotation.

    with hold_workdir("runs/vae"):        # the training run's life; WorkdirBusy names the holder if taken
        ...
    with checkpoints_locked("runs/vae", exclusive=True):   # a save and the rotation it does
        ...
    with checkpoints_locked("runs/vae"):  # a reader (sample, eval, compare): the newest complete checkpoint

Both are the kernel's advisory locks (`fcntl.flock`): a process that exits in any way, kill -9 included, releases
them, so a stale lock never blocks. The workdir lock's file, `<workdir>/lock`, records the holder (pid, host, start
time) for the refusal; the checkpoint lock is taken on the checkpoints folder itself, so readers create nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator

from jgen.config import InputError

LOCK_FILE = "lock"


class WorkdirBusy(InputError):
    """Another process holds the workdir's lock (is training in it)."""


def _holder(path: str) -> str:
    try:
        with open(path) as f:
            h = json.loads(f.read())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h["started"]))
        return f"pid {h['pid']} on host {h['host']}, started {since}"
    except (OSError, ValueError, KeyError, TypeError):  # written a moment ago, or by something else
        return "another process"


@contextlib.contextmanager
def hold_workdir(workdir: str) -> Iterator[None]:
    """Hold `<workdir>/lock` exclusively for the body (the directory must exist); WorkdirBusy if a live process
    holds it."""
    path = os.path.join(workdir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirBusy(
                f"workdir {workdir!r} is in use by another jgen train ({_holder(path)}); wait for it to finish or "
                "stop it, or train in another --workdir"
            ) from None
        os.ftruncate(fd, 0)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": round(time.time(), 3)}
        os.write(fd, json.dumps(record).encode())
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def checkpoints_locked(checkpoint_dir: str, exclusive: bool = False) -> Iterator[None]:
    """A lock on the checkpoints folder for the body: `exclusive` for a save and its rotation, shared for reading.
    No lock (and nothing created) where the folder does not exist."""
    try:
        fd = os.open(checkpoint_dir, os.O_RDONLY)
    except FileNotFoundError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)
