"""Nothing silently wrong: one training process per workdir, readers that do not race it, config.json written only
once a run starts, runs that remember the first stage they were trained on, flags that apply or are refused, and a
metrics log that survives a torn line."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from jgen import cli, pipeline
from jgen.pipeline import Pipeline
from jgen.run import load_run, read_config, train_and_evaluate
from jgen.sampling import Generated
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


@pytest.fixture(scope="module")
def diffusion_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("flags") / "diffusion"
    d = tiny_config("diffusion", steps=2)
    d.method.update(dict(timesteps=50, sample_steps=3))
    d.model.update(dict(channels=8, channel_mult=(1,), attention_resolutions=()))
    train_and_evaluate(d, str(workdir))
    return workdir


SAMPLE_FLAGS = {  # flag -> (value, what the request that reached the generation path must then hold)
    "sampler": ("ddpm", lambda req: req["spec"].sampler == "ddpm"),
    "steps": ("2", lambda req: req["spec"].steps == 2),
    "spacing": ("time_quadratic", lambda req: req["spec"].spacing == "time_quadratic"),
    "guidance": ("0", lambda req: req["spec"].guidance == 0.0),
    "eta": ("0.5", lambda req: req["spec"].eta == 0.5),
    "guidance_interval": ("0.28,2.9", lambda req: req["spec"].guidance_interval == (0.28, 2.9)),
    "guide_workdir": ("{run}", lambda req: req["spec"].guide is not None),  # autoguidance by the run itself
    "labels": ("3", lambda req: req["labels"] is not None and list(req["labels"]) == [3] * 8),
    "num_samples": ("2", lambda req: req["num"] == 2),
    "seed": ("7", lambda req: req["seed"] == 7),
}


def test_every_sample_flag_changes_the_request_or_is_refused(diffusion_run, tmp_path, monkeypatch, capsys):
    """Each of `sample`'s flags either reaches the one generation path (`jgen.sampling.generate`, recorded here in
    place of sampling) or is refused in one line for this run."""
    requests = []

    def record(method, params, model_state, num, spec=None, *, seed=None, labels=None, **kwargs):
        requests.append({"num": num, "spec": spec, "seed": seed, "labels": labels})
        return np.zeros((num, *method.info.shape), np.float32), Generated(num, 1, 0.0)

    monkeypatch.setattr(pipeline, "generate", record)
    loaded = Pipeline.from_workdir(str(diffusion_run))  # loaded once: each command below would load it again
    monkeypatch.setattr(Pipeline, "from_workdir", classmethod(lambda cls, workdir, step=None: loaded))
    base = ["sample", f"--workdir={diffusion_run}", f"--out={tmp_path}/s.png"]
    assert cli.run_command(base) == cli.EXIT_OK, capsys.readouterr().err
    for flag, (value, holds) in SAMPLE_FLAGS.items():
        value = value.format(run=diffusion_run)
        assert cli.run_command([*base, f"--{flag}={value}"]) == cli.EXIT_OK, capsys.readouterr().err
        assert holds(requests[-1]) and not holds(requests[0]), (flag, requests[-1], requests[0])
    assert (tmp_path / "s.png").exists()
    capsys.readouterr()
    # a language model's flags, and --guide_step without the --guide_workdir it picks a checkpoint of
    for flag in set(cli.COMMANDS["sample"].flags) - set(SAMPLE_FLAGS) - {"out", "workdir"}:
        code = cli.run_command([*base, f"--{flag}=1"])
        assert code == cli.EXIT_BAD_INPUT and flag in _one_error_line(capsys.readouterr().err), flag


def test_ctrl_c_in_sample_or_eval_is_one_line_and_exit_130(diffusion_run, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Pipeline, "__call__", interrupted)
    monkeypatch.setattr(cli.run_lib, "evaluate_run", interrupted)
    for command in ("sample", "eval"):
        code = cli.run_command([command, f"--workdir={diffusion_run}"])
        assert code == 130 and "interrupted" in _one_error_line(capsys.readouterr().err)
    assert not (diffusion_run / "samples.png").exists() and not (diffusion_run / "eval.json").exists()
