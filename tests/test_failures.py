"""Failure and recovery: divergence, checkpoint rotation, damaged checkpoints, the metrics log, signals during
compilation, a full disk, exit codes and --help."""

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from absl import logging as absl_logging

from jgen import cli
from jgen.config import ConfigError
from jgen.data import get_source
from jgen.methods import get_method
from jgen.run import load_run, open_workdir, train_and_evaluate, with_defaults
from jgen.train import checkpoint as ckpt
from jgen.train.loop import TrainingDiverged, train_loop
from jgen.train.writer import MetricWriter, read_metrics
from tests.conftest import ROOT, tiny_config


def _config(steps=20, every=5, keep=2):
    c = tiny_config("vae", steps=steps)
    c.train.checkpoint_every, c.train.keep_checkpoints, c.train.log_every = every, keep, 5
    return c


def _all_finite(workdir, step):
    run_state = load_run(str(workdir), step).state
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree.leaves(run_state.params))


def test_divergence_stops_the_run_and_keeps_the_good_checkpoints(tmp_path, capsys):
    train_and_evaluate(_config(), str(tmp_path))
    bad = [
        f"--config.{k}"
        for k in (
            "train.steps=60",
            "train.checkpoint_every=5",
            "train.keep_checkpoints=2",
            "optim.learning_rate=1e6",
            "train.log_every=5",
        )
    ]
    code = cli.run_command(["train", "--config", f"{ROOT}/tests/tiny_vae_config.py", "--workdir", str(tmp_path), *bad])
    err = capsys.readouterr().err
    assert code == cli.EXIT_DIVERGED, err
    assert "diverged: non-finite train metric at step 2" in err and "last good checkpoint (step 20) is kept" in err
    assert "Traceback" not in err
    manager = ckpt.make_manager(str(tmp_path))
    assert sorted(manager.all_steps()) == [15, 20]  # nothing after the good run was saved, nothing was rotated out
    assert _all_finite(tmp_path, 15) and _all_finite(tmp_path, 20)


class _SometimesNaN(get_method("vae")):
    """A VAE whose loss is NaN on about a third of the steps (drawn from the step's key)."""

    def loss_fn(self, params, model_state, batch, key):
        loss, aux = super().loss_fn(params, model_state, batch, key)
        return jnp.where(jax.random.uniform(jax.random.fold_in(key, 7)) < 0.3, jnp.nan, loss), aux


def _train_sometimes_nan(config, workdir):
    config = with_defaults(config)
    train, test, info = get_source(config.data)
    method = _SometimesNaN(config, info)
    open_workdir(config, workdir)
    return train_loop(config, workdir, method, train, test)


def test_skip_nonfinite_updates_skips_and_counts(tmp_path):
    c = _config(steps=30, every=10)
    with pytest.raises(TrainingDiverged, match="non-finite train metric at step"):
        _train_sometimes_nan(c, str(tmp_path / "stop"))
    c.train.skip_nonfinite_updates = True
    _train_sometimes_nan(c, str(tmp_path / "skip"))
    rows = read_metrics(str(tmp_path / "skip"), "train")
    skipped = sum(r["skipped_updates"] for r in rows)
    assert 3 <= skipped <= 20 and all(math.isfinite(r["loss"]) for r in rows), rows
    state = load_run(str(tmp_path / "skip")).state
    assert int(state.step) == 30 and all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(state.params))


def test_keep_checkpoints_must_be_positive_and_the_final_one_survives(tmp_path):
    with pytest.raises(ConfigError, match="train.keep_checkpoints=0 is invalid: must be an integer >= 1"):
        train_and_evaluate(_config(keep=0), str(tmp_path / "zero"))
    assert not (tmp_path / "zero").exists()
    train_and_evaluate(_config(keep=1), str(tmp_path / "one"))
    assert ckpt.make_manager(str(tmp_path / "one")).all_steps() == [20]


def _damage(step_dir, how):
    state_dir = os.path.join(step_dir, "state")
    if how == "manifest":
        for root, _, files in os.walk(state_dir):
            for f in files:
                if f == "manifest.ocdbt":
                    os.remove(os.path.join(root, f))
    else:  # truncate every data chunk to half its length
        for root, _, files in os.walk(state_dir):
            if os.path.basename(root) == "d":
                for f in files:
                    path = os.path.join(root, f)
                    with open(path, "r+b") as fh:
                        fh.truncate(os.path.getsize(path) // 2)


@pytest.mark.parametrize("how", [pytest.param("truncated", marks=pytest.mark.slow), "manifest"])
def test_damaged_latest_checkpoint_falls_back_and_is_moved_aside(tmp_path, how, caplog):
    full = _config(steps=25, keep=3)
    train_and_evaluate(full, str(tmp_path / "full"))
    train_and_evaluate(_config(steps=20, keep=3), str(tmp_path / "cut"))
    _damage(str(tmp_path / "cut" / "checkpoints" / "20"), how)
    os.makedirs(tmp_path / "cut" / "checkpoints" / "30.orbax-checkpoint-tmp-1234")  # a killed save's leftovers
    with caplog.at_level("WARNING", logger="jgen"):
        train_and_evaluate(full, str(tmp_path / "cut"))
    # only jgen's own lines: asyncio may log orbax's failed reads, whose paths contain this test's name
    warnings = [r.getMessage() for r in caplog.records if r.name == "jgen" and "damaged" in r.getMessage()]
    assert len(warnings) == 1 and "checkpoint at step 20 is damaged" in warnings[0]
    assert len(warnings[0]) < 800 and "\n" not in warnings[0]
    aside = os.listdir(tmp_path / "cut" / "damaged_checkpoints")
    assert len(aside) == 1 and aside[0].startswith("20-")
    assert not any("tmp" in n for n in os.listdir(tmp_path / "cut" / "checkpoints"))
    a, b = load_run(str(tmp_path / "full")).state, load_run(str(tmp_path / "cut")).state
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):  # resumed from 15: the same run
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert [r["step"] for r in read_metrics(str(tmp_path / "cut"), "train")] == [5, 10, 15, 20, 25]


def test_a_model_that_no_checkpoint_fits_is_refused_in_one_message(tmp_path):
    train_and_evaluate(_config(steps=10), str(tmp_path))
    for step in ckpt.make_manager(str(tmp_path)).all_steps():
        _damage(str(tmp_path / "checkpoints" / str(step)), "manifest")
    with pytest.raises(ckpt.NoRestorableCheckpoint, match=r"no checkpoint in .* restores into this model \(step 10"):
        load_run(str(tmp_path))


def test_metrics_log_torn_tail_is_repaired_and_non_finite_is_null(tmp_path):
    train_and_evaluate(_config(steps=10), str(tmp_path))
    path = tmp_path / "metrics.jsonl"
    with open(path, "a") as f:
        f.write('{"step": 15, "split": "tr')  # a kill in the middle of a write
    assert [r["step"] for r in read_metrics(str(tmp_path), "train")] == [5, 10]  # readable as it is
    train_and_evaluate(_config(steps=15), str(tmp_path))
    lines = path.read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line is JSON again
    assert [r["step"] for r in rows if r["split"] == "train"] == [5, 10, 15]
    writer = MetricWriter(str(tmp_path))
    writer.write(16, "eval", {"x": float("nan"), "y": float("inf"), "z": 1.5})
    writer.close()
    last = path.read_text().splitlines()[-1]
    assert '"x": null' in last and '"y": null' in last
    json.loads(last, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_disk_full_during_a_save_says_the_previous_checkpoint_is_intact(tmp_path, monkeypatch, capsys, caplog):
    train_and_evaluate(_config(steps=10), str(tmp_path))

    def full_disk(self, *args, **kwargs):  # as orbax does: log the failure with its traceback, then raise
        absl_logging.error("Traceback (most recent call last):\n" + "  File ...\n" * 300 + "OSError: No space left")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
    code = cli.run_command(
        [
            "train",
            "--config",
            f"{ROOT}/tests/tiny_vae_config.py",
            "--workdir",
            str(tmp_path),
            "--config.train.steps=20",
            "--config.train.checkpoint_every=5",
        ]
    )
    err = capsys.readouterr().err
    assert code == cli.EXIT_WRITE_FAILED
    assert "could not write the checkpoint of step 15" in err and "the disk is full" in err
    assert "the previous checkpoint (step 10) is intact" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not [r for r in caplog.records if "Traceback" in r.getMessage()]  # the library's traceback: not shown


def test_sigterm_while_compiling_the_first_step_stops_at_once(tmp_path):
    """A run that is still compiling when SIGTERM comes stops within seconds, keeping the checkpoint it has."""
    cmd = [
        sys.executable,
        "-m",
        "jgen",
        "train",
        "--config",
        f"{ROOT}/experiments/configs/ddpm_mnist.py",
        "--workdir",
        str(tmp_path),
        "--config.train.progress=false",
        "--config.model.channels=32",
        "--config.model.num_res_blocks=2",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "compiling the train step" in line:
            break
    time.sleep(1.0)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    waited = time.time() - sent
    out = "".join(lines) + proc.stderr.read()
    assert proc.returncode == cli.EXIT_INTERRUPTED, out
    assert "while compiling the first step: stopped at once; it had no checkpoint yet" in out
    assert waited < 20, f"took {waited:.1f} s to stop"


def test_help_lists_the_commands_and_exits_zero(capsys):
    assert cli.run_command(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name}" in out for name in cli.COMMANDS) and "Exit codes" in out
    assert cli.run_command(["train", "--help"]) == 0
    assert "--config.<field>=<value>" in capsys.readouterr().out
    assert cli.run_command([]) == cli.EXIT_BAD_INPUT
    r = subprocess.run(
        [sys.executable, "-m", "jgen", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ROOT},
        timeout=120,
    )
    assert r.returncode == 0 and "sample" in r.stdout
