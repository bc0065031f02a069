"""Nothing silently wrong: one training process per workdir, readers that do not race it, config.json written only
once a run starts, runs that remember the first stage they were trained on, flags that apply or are refused, and a
metrics log that survives a torn line."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from jgen import cli
from jgen.run import load_run, read_config, train_and_evaluate
from jgen.train.writer import read_metrics
from tests.conftest import ROOT, tiny_config

CONFIG = os.path.join(ROOT, "tests", "tiny_vae_config.py")


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _newest_step(workdir) -> int:
    folder = workdir / "checkpoints"
    return max([int(n) for n in os.listdir(folder) if n.isdigit()], default=-1) if folder.is_dir() else -1


def test_a_train_on_a_held_workdir_is_refused_naming_the_holder(tmp_path, capsys):
    w = tmp_path / "run"
    train_and_evaluate(tiny_config("vae", steps=5), str(w))
    before = sorted(os.listdir(w)), (w / "metrics.jsonl").read_text()
    from jgen.train.lock import hold_workdir  # here: this test also runs against code that had no lock

    with hold_workdir(str(w)):  # as a running train holds it
        code = cli.run_command(["train", "--config", CONFIG, "--workdir", str(w), "--config.train.steps=10"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == cli.EXIT_BAD_INPUT and f"is in use by another jgen train (pid {os.getpid()} on host" in line
    assert (sorted(os.listdir(w)), (w / "metrics.jsonl").read_text()) == before
    assert load_run(str(w)).step == 5


@pytest.mark.slow
def test_a_second_train_is_refused_and_readers_see_complete_checkpoints(tmp_path, capsys):
    """A train that is running holds its workdir: a second one is refused naming it; `sample` and `load_run` read
    the newest complete checkpoint while it saves and rotates every step; kill -9 frees the workdir."""
    w = tmp_path / "run"
    cmd = [sys.executable, "-m", "jgen", "train", "--config", CONFIG, "--workdir", str(w)]
    cmd += ["--config.train.steps=1000000", "--config.train.checkpoint_every=1", "--config.train.keep_checkpoints=1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while _newest_step(w) < 3:
            assert proc.poll() is None and time.time() < deadline, "the training run did not start"
            time.sleep(0.2)
        code = cli.run_command(["train", "--config", CONFIG, "--workdir", str(w), "--config.train.steps=7"])
        line = _one_error_line(capsys.readouterr().err)
        assert code == cli.EXIT_BAD_INPUT and f"is in use by another jgen train (pid {proc.pid} on host" in line
        steps = [load_run(str(w)).step for _ in range(4)]  # each while the run saves and deletes a checkpoint a step
        code = cli.run_command(["sample", "--workdir", str(w), "--num_samples=2", f"--out={tmp_path}/s.png"])
        assert code == cli.EXIT_OK, capsys.readouterr().err
        assert steps == sorted(steps) and steps[0] >= 3 and proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    code = cli.run_command(["train", "--config", CONFIG, "--workdir", str(w), "--config.train.steps=1"])
    assert code == cli.EXIT_OK, capsys.readouterr().err  # the killed run's lock does not block (already past step 1)


def test_a_failed_start_leaves_nothing_that_blocks_the_next(tmp_path, capsys):
    """A config whose model cannot be built is refused in one line and leaves no run directory; a failed start in an
    existing run keeps its config.json."""
    w = tmp_path / "run"
    bad = ["--config.model.kind=conv", "--config.model.features=(8, 8, 8, 8, 8)"]
    code = cli.run_command(["train", "--config", CONFIG, "--workdir", str(w), *bad])
    line = _one_error_line(capsys.readouterr().err)
    assert code == cli.EXIT_BAD_INPUT and "cannot be built" in line, line
    assert not w.exists()
    train_and_evaluate(tiny_config("vae", steps=5), str(w))  # the fixed config starts
    before = (w / "config.json").read_text()
    code = cli.run_command(["train", "--config", CONFIG, "--workdir", str(w), "--config.model.hidden=16"])
    assert code == cli.EXIT_BAD_INPUT and "different model/config" in _one_error_line(capsys.readouterr().err)
    assert (w / "config.json").read_text() == before


def test_a_torn_line_inside_metrics_is_skipped_with_a_warning(tmp_path, caplog):
    w = tmp_path / "run"
    train_and_evaluate(tiny_config("vae", steps=10), str(w))
    path = w / "metrics.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], '{"step": 7, "spl', *lines[1:]]) + "\n")
    with caplog.at_level("WARNING", logger="jgen"):
        rows = read_metrics(str(w), "train")
    assert [r["step"] for r in rows] == [5, 10]
    assert any(f"{path}:2" in r.getMessage() for r in caplog.records), caplog.text
    train_and_evaluate(tiny_config("vae", steps=15), str(w))  # resume reads it too
    assert [r["step"] for r in read_metrics(str(w), "train")] == [5, 10, 15]
    assert json.loads(read_config(str(w)).to_json())["train"]["steps"] == 15
