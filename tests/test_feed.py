"""The loop's input feed (batches made and put on the devices by a background thread) and the deterministic-mode
switch."""

import os
import subprocess
import sys

import numpy as np
import pytest

from jgen.config import ConfigError
from jgen.data import get_source, make_train_iterator
from jgen.train.determinism import FLAGS, use_deterministic_ops
from jgen.train.feed import DeviceFeed
from tests.conftest import ROOT, tiny_config


def _batches(depth: int, k: int, calls: int):
    train, _, _ = get_source(tiny_config().data)
    with make_train_iterator(train, 3, 16, read_ahead=0) as it:
        feed = DeviceFeed(it, k, lambda local: {n: np.asarray(v) for n, v in local.items()}, depth=depth)
        out = [next(feed) for _ in range(calls)]
        feed.close()
    return out


@pytest.mark.parametrize("k", [1, 3])
def test_feed_ahead_gives_the_inline_batches_and_the_state_after_each(k):
    """A feed reading ahead on its thread yields the batches, and after each the iterator state, that reading
    inline does: a checkpoint holds the position of what the loop consumed, not of what the thread read."""
    inline, ahead = _batches(0, k, 4), _batches(2, k, 4)
    for (b0, s0), (b1, s1) in zip(inline, ahead):
        assert s0 == s1
        for name in b0:
            np.testing.assert_array_equal(b0[name], b1[name])
    assert inline[0][0]["image"].shape[: 1 if k == 1 else 2] == ((16,) if k == 1 else (k, 16))
    assert [s for _, s in inline] != [inline[0][1]] * 4  # the state moves on


def test_feed_raises_the_threads_error_at_the_next_batch():
    def put(local):
        raise RuntimeError("cannot put this batch")

    train, _, _ = get_source(tiny_config().data)
    with make_train_iterator(train, 3, 16, read_ahead=0) as it:
        feed = DeviceFeed(it, 1, put, depth=2)
        with pytest.raises(RuntimeError, match="cannot put this batch"):
            next(feed)
        feed.close()


def test_deterministic_mode_sets_xla_flags_in_a_fresh_process_and_refuses_a_started_one(monkeypatch):
    code = (
        "import os, jax; from jgen.train.determinism import use_deterministic_ops; use_deterministic_ops(True); "
        "jax.numpy.ones(1).block_until_ready(); print(os.environ['XLA_FLAGS'])"
    )
    env = {**os.environ, "PYTHONPATH": ROOT, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["--xla_force_host_platform_device_count=2", *FLAGS]
    import jax

    jax.numpy.ones(1).block_until_ready()  # this process's backends have started
    monkeypatch.setenv("XLA_FLAGS", "")
    with pytest.raises(ConfigError, match=r"train.deterministic=True must take effect before JAX starts"):
        use_deterministic_ops(True)
    use_deterministic_ops(False)  # off: nothing to do
    monkeypatch.setenv("XLA_FLAGS", " ".join(FLAGS))
    use_deterministic_ops(True)  # already set when the process started: nothing to do
