"""Multi-process jobs on one CPU: N local processes (gloo collectives) with fake host devices each, started by
experiments/launch_local.py as a pod or SLURM job would start them."""

import io
import os
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from experiments import launch_local
from jgen.config import InputError
from jgen.run import load_run
from jgen.train import distributed
from jgen.train.writer import read_metrics
from tests.conftest import ROOT, host_devices_flags

CONFIG = os.path.join(ROOT, "tests", "tiny_vae_config.py")


def _train_args(workdir, steps, *extra):
    return [
        "train",
        "--config",
        CONFIG,
        "--workdir",
        str(workdir),
        f"--config.train.steps={steps}",
        "--config.train.log_every=5",
        *extra,
    ]


def _one_process(workdir, steps, devices, *extra):
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": host_devices_flags(devices),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "jgen", *_train_args(workdir, steps, *extra)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class _Launch(threading.Thread):
    """launch_local.launch on a thread, its output collected."""

    def __init__(self, args, num_processes=2, devices=2):
        super().__init__(daemon=True)
        self.args, self.n, self.devices, self.out, self.code = args, num_processes, devices, io.StringIO(), None
        self.start()

    def run(self):
        self.code = launch_local.launch(self.args, self.n, self.devices, grace=20, out=self.out)

    def result(self, timeout=400):
        self.join(timeout)
        assert not self.is_alive(), self.out.getvalue()
        return self.code, self.out.getvalue()


def _leaves(workdir):
    state = load_run(str(workdir)).state
    return [np.asarray(x) for x in jax.tree.leaves((state.params, state.opt_state, state.ema_params))]


def _losses(workdir):
    return {r["step"]: r["loss"] for r in read_metrics(str(workdir), "train")}


def test_two_processes_train_like_one_and_their_checkpoint_resumes_in_one(tmp_path):
    """2 processes x 2 devices vs 1 process x 4 devices, the same global batch and seed: the same losses (1e-6
    relative) and final parameters (1e-4); the 2-process checkpoint resumes in 1 process like the 1-process run."""
    two = _Launch(_train_args(tmp_path / "two", 20, "--config.train.sample_every=20"))
    one = _one_process(tmp_path / "one", 20, 4)
    out, _ = one.communicate(timeout=400)
    assert one.returncode == 0, out
    code, out = two.result()
    assert code == 0, out
    assert "[0] " in out and "[1] " in out and "[launch] exit codes [0, 0]" in out

    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert sorted(a) == sorted(b) == [5, 10, 15, 20]
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-6), step
    for x, y in zip(_leaves(tmp_path / "one"), _leaves(tmp_path / "two")):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5)
    # only process 0 wrote: one row per logged step, one TensorBoard file, one set of sample grids
    assert [r["step"] for r in read_metrics(str(tmp_path / "two"), "train")] == [5, 10, 15, 20]
    assert len([n for n in os.listdir(tmp_path / "two") if n.startswith("events.out.tfevents")]) == 1
    assert sorted(os.listdir(tmp_path / "two" / "samples")) == sorted(
        f"{k}_step_0000020.png" for k in ("interpolation", "reconstructions", "samples")
    )

    # the 2-process checkpoint (and its data position) resumes in 1 process x 4 devices
    resumed = [_one_process(tmp_path / name, 30, 4) for name in ("one", "two")]
    outs = [p.communicate(timeout=400)[0] for p in resumed]
    assert [p.returncode for p in resumed] == [0, 0], outs
    assert "resumed from step 20" in outs[1]
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert sorted(b) == [5, 10, 15, 20, 25, 30]
    assert b[30] == pytest.approx(a[30], rel=1e-5)
    for x, y in zip(_leaves(tmp_path / "one"), _leaves(tmp_path / "two")):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # two more processes starting JAX (about 3 s of CI time); the 2-process equality test stays fast
def test_processes_with_different_configs_are_refused(tmp_path):
    port = launch_local.free_port()
    env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jgen",
                *_train_args(tmp_path, 10, f"--config.seed={p}"),
                f"--coordinator_address=localhost:{port}",
                "--num_processes=2",
                f"--process_id={p}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for p in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [2, 2], outs
    assert "the processes of this job hold different configs: process 1" in outs[1], outs[1]
    assert not os.path.exists(tmp_path / "checkpoints")


@pytest.mark.slow
def test_sigterm_to_one_process_stops_all_and_the_job_resumes_exactly(tmp_path):
    """SIGTERM to process 1 only: both processes agree on a step, save one checkpoint and exit 75; the rerun job ends
    with the parameters (bitwise) and metrics of an uninterrupted 2-process job."""
    steps = 300
    full = _Launch(_train_args(tmp_path / "full", steps, "--config.train.log_every=7"))
    cut = _Launch(_train_args(tmp_path / "cut", steps, "--config.train.log_every=7"))
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        time.sleep(0.05)
    pid = int(cut.out.getvalue().split("[launch] process 1 pid ")[1].split(":")[0])
    os.kill(pid, signal.SIGTERM)
    code, out = cut.result()
    assert code == launch_local.INTERRUPTED, out
    assert "[launch] exit codes [75, 75]" in out, out
    assert "[1] jgen train: interrupted: received signal 15: saved a checkpoint" in out
    assert "[0] jgen train: interrupted: another process of this job received a signal: saved a checkpoint" in out
    step = load_run(str(tmp_path / "cut")).step
    assert 21 <= step < steps
    code, out = full.result()
    assert code == 0, out
    code, out = _Launch(_train_args(tmp_path / "cut", steps, "--config.train.log_every=7")).result()
    assert code == 0, out
    for x, y in zip(_leaves(tmp_path / "full"), _leaves(tmp_path / "cut")):
        np.testing.assert_array_equal(x, y)
    drop = ("time", "steps_per_sec")
    rows = [
        [{k: v for k, v in r.items() if k not in drop} for r in read_metrics(str(tmp_path / d))]
        for d in ("full", "cut")
    ]
    assert rows[0] == rows[1]


@pytest.mark.slow  # two jobs of 2 processes
def test_fsdp_across_processes_trains_like_one_process(tmp_path):
    """parallel.fsdp=4 over 2 processes x 2 devices (each parameter split across both processes): the same losses
    (1e-6 relative) and final parameters as 1 process x 4 devices with replicated parameters; evaluation and
    sample grids gather the sharded parameters on every process."""
    fsdp = _Launch(_train_args(tmp_path / "fsdp", 10, "--config.parallel.fsdp=4", "--config.train.sample_every=10"))
    one = _one_process(tmp_path / "one", 10, 4)
    out, _ = one.communicate(timeout=400)
    assert one.returncode == 0, out
    code, out = fsdp.result()
    assert code == 0, out
    assert "[0] " in out and "'fsdp': 4" in out
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "fsdp")
    assert sorted(a) == sorted(b) == [5, 10]
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-6), step
    assert len(os.listdir(tmp_path / "fsdp" / "samples")) == 3
    for x, y in zip(_leaves(tmp_path / "one"), _leaves(tmp_path / "fsdp")):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5)


def test_distributed_spec_from_flags_and_environment():
    env = {"JGEN_COORDINATOR_ADDRESS": "h0:1234", "JGEN_NUM_PROCESSES": "4", "JGEN_PROCESS_ID": "3"}
    assert distributed.spec_from(environ=env).explicit == {
        "coordinator_address": "h0:1234",
        "num_processes": 4,
        "process_id": 3,
    }
    assert distributed.spec_from(process_id=1, environ=env).process_id == 1  # a flag wins over the environment
    assert not distributed.spec_from(environ={}).wanted
    assert distributed.spec_from(mode="auto", environ={}).explicit == {}  # initialize() with no arguments
    with pytest.raises(InputError, match="missing: --num_processes, --process_id"):
        distributed.spec_from("h0:1234", environ={})
    with pytest.raises(InputError, match="process_id=4: must be in"):
        distributed.spec_from("h0:1234", 4, 4, environ={})
    with pytest.raises(InputError, match="JGEN_NUM_PROCESSES='two': must be an integer"):
        distributed.spec_from(environ={**env, "JGEN_NUM_PROCESSES": "two"})
    with pytest.raises(InputError, match="must be host:port"):
        distributed.spec_from("h0", 2, 0, environ={})
    assert launch_local.worst([0, 0]) == 0 and launch_local.worst([75, 0]) == 75
    assert launch_local.worst([75, 2]) == 2 and launch_local.worst([0, -9]) == 137
