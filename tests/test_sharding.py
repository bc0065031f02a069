"""FSDP (config.parallel.fsdp): the layout rule, the config check, and on 8 fake CPU devices data=2 x fsdp=4 and
1 x fsdp=8 runs next to a data=8 one, checkpoints restored under other fsdp sizes, and a run resumed under another
fsdp size."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jgen.config import ConfigError
from jgen.run import load_run, validate
from jgen.train.sharding import fsdp_spec
from jgen.train.writer import read_metrics
from tests.conftest import ROOT, host_devices_flags, tiny_config

EIGHT = {
    **os.environ,
    "PYTHONPATH": ROOT,
    "JAX_PLATFORMS": "cpu",
    "XLA_FLAGS": host_devices_flags(8),
}


def test_fsdp_spec_splits_the_largest_divisible_axis():
    assert fsdp_spec((3, 3, 16, 32), 4) == P(None, None, None, "fsdp")  # a conv kernel: its output channels
    assert fsdp_spec((64, 32), 4) == P("fsdp")
    assert fsdp_spec((32, 32), 4) == P(None, "fsdp")  # a tie: the last axis
    assert fsdp_spec((6, 10), 4) == P()  # nothing divisible: replicated
    assert fsdp_spec((), 4) == P() and fsdp_spec((2,), 4) == P()  # scalars, arrays smaller than fsdp
    assert fsdp_spec((64, 32), 1) == P()


def test_fsdp_must_divide_the_device_count():
    c = tiny_config()
    c.parallel.fsdp = 3
    with pytest.raises(
        ConfigError,
        match=r"config.parallel.fsdp=3 is invalid: must divide the number of devices "
        r"\(8\).*--config.parallel.fsdp=2",
    ):
        validate(c, num_devices=8)
    c.parallel.fsdp = 0
    with pytest.raises(ConfigError, match="parallel.fsdp=0"):
        validate(c, num_devices=8)
    c.parallel.fsdp = 4
    validate(c, num_devices=8)


def _fsdp_check(workdir, fsdp: int, steps: int) -> dict:
    """tests/fsdp_check.py's JSON for `steps` steps at data=8 and at (8 / fsdp) x fsdp, in a process of 8 devices."""
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fsdp_check", str(workdir), str(fsdp), str(steps)],
        cwd=ROOT,
        env=EIGHT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_fsdp_on_eight_devices_trains_like_data_parallel(tmp_path):
    """tests/fsdp_check.py in a process with 8 CPU devices: the same 4 steps on data=8 (replicated) and on
    data=2 x fsdp=4 give the same losses (1e-6 relative; they agree bitwise here), every parameter array of the tiny
    VAE is split, so each device holds 1/4 of the parameter and EMA bytes (26,912 -> 6,728) and about 1/4 of the
    optimizer state's (Adam's step count is replicated); the fsdp=4 checkpoint restores into fsdp=2 and fsdp=1
    layouts with equal values."""
    out = _fsdp_check(tmp_path, 4, 4)
    rep, fsdp = out["fsdp1"], out["fsdp4"]
    assert out["devices"] == 8 and rep["mesh"] == {"data": 8, "fsdp": 1} and fsdp["mesh"] == {"data": 2, "fsdp": 4}
    np.testing.assert_allclose(fsdp["losses"], rep["losses"], rtol=1e-6)
    assert rep["sharded_leaves"] == 0 and fsdp["sharded_leaves"] == fsdp["leaves"] == 8
    for k in ("params", "ema_params"):
        assert fsdp["bytes"][k] * 4 == rep["bytes"][k]
    assert 0.25 <= fsdp["bytes"]["opt_state"] / rep["bytes"]["opt_state"] < 0.26
    for n in (2, 1):
        r = out[f"restored_fsdp{n}"]
        assert r["equal"] and r["sharding_as_asked"], (n, r)
    assert out["restored_fsdp2"]["param_bytes"] * 2 == out["restored_fsdp1"]["param_bytes"] == rep["bytes"]["params"]


@pytest.mark.slow  # ~11 s: a second 8-device process, 20 steps on each mesh
def test_fsdp_over_all_eight_devices_trains_like_data_parallel(tmp_path):
    """fsdp=8 (a 1 x 8 mesh: the batch and every divisible array split 8 ways) against data=8 over 20 steps: losses to
    1e-5 relative; each parameter and optimizer array with an axis divisible by 8 holds 1/8 of its bytes per device,
    the others (Adam's step count) all of them; the checkpoint restores into fsdp=4 and fsdp=1 layouts."""
    out = _fsdp_check(tmp_path, 8, 20)
    rep, fsdp = out["fsdp1"], out["fsdp8"]
    assert rep["mesh"] == {"data": 8, "fsdp": 1} and fsdp["mesh"] == {"data": 1, "fsdp": 8}
    assert len(fsdp["losses"]) == 20
    np.testing.assert_allclose(fsdp["losses"], rep["losses"], rtol=1e-5)
    divisible = 0
    for (shape, nbytes, full), (shape8, nbytes8, part) in zip(rep["arrays"], fsdp["arrays"]):
        assert shape == shape8 and full == nbytes == nbytes8
        splits = any(d % 8 == 0 for d in shape)
        divisible += splits
        assert part * (8 if splits else 1) == nbytes, (shape, nbytes, part)
    assert divisible == fsdp["sharded_leaves"] * 3  # each parameter, its Adam mu and nu
    for k in ("params", "ema_params"):
        assert fsdp["bytes"][k] * 8 == rep["bytes"][k]
    for n in (4, 1):
        r = out[f"restored_fsdp{n}"]
        assert r["equal"] and r["sharding_as_asked"], (n, r)


def _cli_train(workdir, steps, fsdp, *extra):
    args = [
        sys.executable,
        "-m",
        "jgen",
        "train",
        "--config",
        os.path.join(ROOT, "tests", "tiny_vae_config.py"),
        "--workdir",
        str(workdir),
        f"--config.train.steps={steps}",
        f"--config.parallel.fsdp={fsdp}",
        "--config.train.checkpoint_every=10",
        "--config.train.sample_every=10",
        *extra,
    ]
    proc = subprocess.run(args, cwd=ROOT, env=EIGHT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.mark.slow  # three CLI runs on 8 devices
def test_a_run_resumes_under_another_fsdp_size(tmp_path):
    """Through the CLI and the loop (evaluation, sample grids and checkpoints on sharded state): 10 steps at fsdp=4
    resumed to 20 at fsdp=2 end like 20 steps at fsdp=1: the same losses and final parameters."""
    _cli_train(tmp_path / "whole", 20, 1)
    _cli_train(tmp_path / "cut", 10, 4)
    _cli_train(tmp_path / "cut", 20, 2)
    a, b = read_metrics(str(tmp_path / "whole"), "train"), read_metrics(str(tmp_path / "cut"), "train")
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5)
    assert (tmp_path / "cut" / "samples").is_dir()
    pa, pb = load_run(str(tmp_path / "whole")).state.params, load_run(str(tmp_path / "cut")).state.params
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-4, atol=1e-6)
