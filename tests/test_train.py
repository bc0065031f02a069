import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jgen.config import ConfigError
from jgen.run import load_run, train_and_evaluate
from jgen.train import checkpoint as ckpt
from jgen.train.loop import choose_steps_per_call
from jgen.train.writer import read_metrics
from tests.conftest import ROOT, host_devices_flags, tiny_config


def test_short_run_reduces_loss_and_writes_run_dir(tmp_path):
    c = tiny_config("vae", steps=60)
    c.train.sample_every = 60
    final = train_and_evaluate(c, str(tmp_path))
    rows = read_metrics(str(tmp_path), "train")
    assert rows[-1]["loss"] < 0.8 * rows[0]["loss"], (rows[0]["loss"], rows[-1]["loss"])
    assert {"elbo", "bpd", "iwae", "bpd_iwae", "kl"} <= set(final) and np.isfinite(final["bpd"])
    names = set(os.listdir(tmp_path))
    assert {"config.json", "metrics.jsonl", "checkpoints", "samples"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    pngs = os.listdir(tmp_path / "samples")
    assert {f"{k}_step_0000060.png" for k in ("samples", "reconstructions", "interpolation")} <= set(pngs)
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["method"]["name"] == "vae"


def test_autoencoder_trains(tmp_path):
    c = tiny_config("autoencoder", steps=40)
    c.model.kind = "mlp"
    c.model.features = (32,)
    c.train.ema_decay = 0.0
    final = train_and_evaluate(c, str(tmp_path))
    rows = read_metrics(str(tmp_path), "train")
    assert rows[-1]["mse"] < rows[0]["mse"] and 0.0 < final["mse"] < rows[0]["mse"]


def test_rerun_of_finished_run_does_not_retrain(tmp_path):
    c = tiny_config("vae", steps=10)
    first = train_and_evaluate(c, str(tmp_path))
    n_rows = len(read_metrics(str(tmp_path)))
    again = train_and_evaluate(c, str(tmp_path))
    assert len(read_metrics(str(tmp_path))) == n_rows
    assert again == pytest.approx(first)


def test_resume_refuses_a_different_model(tmp_path):
    train_and_evaluate(tiny_config("vae", steps=5), str(tmp_path))
    other = tiny_config("vae", steps=5)
    other.method.latent_dim = 7
    with pytest.raises(ValueError, match=r"(?s)different model.*method.latent_dim: checkpoint has 4, config has 7"):
        train_and_evaluate(other, str(tmp_path))


def _cli_train(workdir, steps, extra=(), env=None):
    cmd = [
        sys.executable,
        "-m",
        "jgen",
        "train",
        "--config",
        os.path.join(ROOT, "tests", "tiny_vae_config.py"),
        "--workdir",
        str(workdir),
        f"--config.train.steps={steps}",
        *extra,
    ]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _params(workdir):
    state = load_run(str(workdir)).state
    return jax.tree.map(np.asarray, (state.params, state.opt_state, state.ema_params))


def _metrics_without_timing(workdir):
    return [{k: v for k, v in r.items() if k not in ("time", "steps_per_sec")} for r in read_metrics(str(workdir))]


def _wait_for_rows(run, metrics, rows, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline and run.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= rows:
            return True
        time.sleep(0.02)
    return False


def test_interrupted_runs_resume_to_the_same_parameters_and_metrics(tmp_path):
    """SIGTERM (saves, exit 75) and kill -9 (loses the steps since the last checkpoint) both resume to parameters
    bitwise equal to an uninterrupted run's, and to the same metrics.jsonl (timing fields aside)."""
    # 7 divides neither the checkpoint interval nor the cut; the extra log steps fall before and after the cuts
    steps, extra = 400, ["--config.train.log_every=7", "--config.train.log_steps=(1,10,100,250)"]
    # the three first runs overlap (process start-up and compilation are mostly single-threaded)
    full, term, kill = (_cli_train(tmp_path / name, steps, extra) for name in ("full", "term", "kill"))

    # rows at 1, 7, 10, 14, 21: the fifth row is past step 20
    assert _wait_for_rows(term, tmp_path / "term" / "metrics.jsonl", 5), "the run ended before it could be cut"
    term.send_signal(signal.SIGTERM)
    assert _wait_for_rows(kill, tmp_path / "kill" / "metrics.jsonl", 20), "the run ended before it could be killed"
    kill.kill()  # SIGKILL: no chance to save; rows past the last checkpoint (step 100 or later) are in the file
    kill.communicate(timeout=60)
    out, _ = term.communicate(timeout=300)
    assert term.returncode == 75, out
    assert "interrupted: received signal 15: saved a checkpoint" in out and "Traceback" not in out
    out, _ = full.communicate(timeout=300)
    assert full.returncode == 0, out
    cut_state = load_run(str(tmp_path / "term")).state
    assert 21 <= int(cut_state.step) < steps, "the run was not interrupted mid-way"
    assert max(r["step"] for r in read_metrics(str(tmp_path / "kill"))) > 100

    resumed = {name: _cli_train(tmp_path / name, steps, extra) for name in ("term", "kill")}
    for name, run in resumed.items():
        out, _ = run.communicate(timeout=300)
        assert run.returncode == 0, out
        a, b = _params(tmp_path / "full"), _params(tmp_path / name)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_array_equal(x, y)
        assert _metrics_without_timing(tmp_path / name) == _metrics_without_timing(tmp_path / "full"), name


@pytest.mark.slow  # two tiny runs, ~9 s; make test covers log_steps through the resume test and chart 21's
def test_log_steps_add_rows_and_leave_the_trajectory_alone(tmp_path):
    """train.log_steps end extra train rows (each the mean since the previous row) and change no parameter."""
    finals = {}
    for name, log_steps in (("plain", ()), ("extra", (1, 2, 9))):
        c = tiny_config("autoencoder", steps=12)
        c.train.log_every, c.train.log_steps, c.train.eval_every = 6, log_steps, -1
        train_and_evaluate(c, str(tmp_path / name))
        finals[name] = load_run(str(tmp_path / name)).state.params
    for x, y in zip(jax.tree.leaves(finals["plain"]), jax.tree.leaves(finals["extra"])):
        np.testing.assert_array_equal(x, y)
    plain, extra = (read_metrics(str(tmp_path / n), "train") for n in ("plain", "extra"))
    assert [r["step"] for r in plain] == [6, 12] and [r["step"] for r in extra] == [1, 2, 6, 9, 12]
    # the row at 12 averages steps 10-12 in one run and 7-12 in the other; the row at 6 covers 3-6 against 1-6
    assert extra[0]["loss"] != extra[1]["loss"]


def test_log_steps_must_be_multiples_of_steps_per_call(tmp_path):
    c = tiny_config("vae", steps=8)
    c.train.steps_per_call, c.train.log_every, c.train.log_steps = 2, 4, (1, 4)
    with pytest.raises(
        ConfigError,
        match=r"config.train.log_steps=\(1, 4\) is invalid: steps \[1\] are not "
        r"multiples of train.steps_per_call=2",
    ):
        train_and_evaluate(c, str(tmp_path))


@pytest.mark.slow  # ~20 s; the 8-device FSDP test and the 2-process test cover multi-device training in make test
def test_one_and_eight_devices_agree(tmp_path):
    procs = {}
    for n in (1, 8):
        env = {"XLA_FLAGS": host_devices_flags(n), "JAX_PLATFORMS": "cpu"}
        procs[n] = _cli_train(tmp_path / f"dev{n}", 8, ["--config.train.ema_decay=0.5"], env=env)
    for p in procs.values():
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
    a, b = _params(tmp_path / "dev1"), _params(tmp_path / "dev8")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)
    la = read_metrics(str(tmp_path / "dev1"), "train")[-1]["loss"]
    lb = read_metrics(str(tmp_path / "dev8"), "train")[-1]["loss"]
    assert la == pytest.approx(lb, rel=1e-4)


def test_quality_over_training_rows_compile_the_sampler_once(tmp_path):
    import logging

    from jgen.metrics import feature_nets

    cls = tiny_config("vae", steps=10)
    cls.method = type(cls.method)(dict(name="classifier", max_shift=1))
    cls.model = type(cls.model)(dict(features=(4, 8), feature_dim=16, dropout=0.0))
    train_and_evaluate(cls, str(tmp_path / "classifier"))
    run = load_run(str(tmp_path / "classifier"))
    # An 8x8 digits classifier stands in for the 28x28 MNIST one under its own name.
    net = feature_nets.classifier_feature_net(run.method, run.state.ema_params, "tiny_digits")
    feature_nets.register_feature_net(feature_nets.FeatureNetSpec("tiny_digits", "an 8x8 classifier", load=lambda: net))
    c = tiny_config("vae", steps=15)
    c.eval.sample_metrics_every, c.eval.num_samples, c.eval.feature_net = 5, 60, "tiny_digits"
    compiled = []

    class Compiles(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("Compiling "):
                compiled.append(record.getMessage().split()[1])

    handler = Compiles()
    logging.getLogger("jax").addHandler(handler)
    jax.config.update("jax_log_compiles", True)
    try:
        train_and_evaluate(c, str(tmp_path / "vae"))
    finally:
        jax.config.update("jax_log_compiles", False)
        logging.getLogger("jax").removeHandler(handler)
    rows = read_metrics(str(tmp_path / "vae"), "sample_quality")
    assert [r["step"] for r in rows] == [5, 10, 15]
    assert all(np.isfinite(r["fid_tiny_digits"]) and 0 <= r["recall_tiny_digits"] <= 1 for r in rows)
    # three sample-metric intervals: one compiled sampler and one compiled feature net in total
    assert compiled.count("jit(generate)") == 1 and compiled.count("jit(apply)") == 1, compiled


def test_steps_per_call_is_bitwise_k_single_calls(tmp_path):
    """train.steps_per_call=4 (4 steps per compiled call, lax.scan) ends with the same bits and the same
    metrics.jsonl as one step per call; checkpoints and logs keep their steps."""
    runs = {}
    for k in (1, 4):
        c = tiny_config("vae", steps=16)
        c.train.steps_per_call, c.train.log_every, c.train.checkpoint_every = k, 4, 8
        train_and_evaluate(c, str(tmp_path / f"k{k}"))
        runs[k] = _params(tmp_path / f"k{k}")
    for x, y in zip(jax.tree.leaves(runs[1]), jax.tree.leaves(runs[4])):
        np.testing.assert_array_equal(x, y)
    assert _metrics_without_timing(tmp_path / "k1") == _metrics_without_timing(tmp_path / "k4")
    assert [r["step"] for r in read_metrics(str(tmp_path / "k4"), "train")] == [4, 8, 12, 16]
    assert sorted(ckpt.make_manager(str(tmp_path / "k4")).all_steps()) == [8, 16]


def test_steps_per_call_must_divide_the_intervals(tmp_path):
    c = tiny_config("vae", steps=20)
    c.train.steps_per_call = 4  # log_every is 5
    with pytest.raises(
        ConfigError,
        match=r"config.train.log_every=5 is invalid: must be a multiple of "
        r"train.steps_per_call=4.*Fix: --config.train.log_every=4",
    ):
        train_and_evaluate(c, str(tmp_path))
    c.train.steps_per_call = -1
    with pytest.raises(ConfigError, match="train.steps_per_call=-1 is invalid: must be an integer >= 0"):
        train_and_evaluate(c, str(tmp_path))


def test_steps_per_call_auto_divides_every_interval_and_the_start():
    """train.steps_per_call=0: 1 on the CPU; on an accelerator the largest K <= 16 that every interval, log step and
    the resumed step are multiples of; a K the config sets is kept."""
    t = tiny_config("vae", steps=1000).train
    t.steps_per_call, t.log_every, t.checkpoint_every, t.eval_every, t.sample_every = 0, 50, 500, 500, -1
    assert choose_steps_per_call(t, 0, 0, "cpu") == 1
    assert choose_steps_per_call(t, 0, 0, "gpu") == 10  # gcd 50: 10 is its largest divisor <= 16
    assert choose_steps_per_call(t, 0, 500, "tpu") == 10
    assert choose_steps_per_call(t, 0, 30, "gpu") == 10  # gcd(50, 30) = 10
    assert choose_steps_per_call(t, 0, 7, "gpu") == 1
    assert choose_steps_per_call(t, 40, 0, "gpu") == 10  # eval.sample_metrics_every 40: gcd 10
    t.log_every, t.checkpoint_every, t.eval_every = 64, 512, 0
    t.steps = 1024
    assert choose_steps_per_call(t, 0, 0, "gpu") == 16
    t.log_steps = (1, 64)
    assert choose_steps_per_call(t, 0, 0, "gpu") == 1
    t.steps_per_call = 4
    assert choose_steps_per_call(t, 0, 0, "cpu") == 4
