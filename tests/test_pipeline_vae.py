import os
import subprocess
import sys

import numpy as np
import pytest

from jgen.pipeline import Pipeline
from jgen.run import train_and_evaluate
from tests.conftest import ROOT, tiny_config


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("vae_run"))
    train_and_evaluate(tiny_config("vae", steps=10), workdir)
    return workdir


def test_same_seed_same_images(vae_run):
    pipe = Pipeline.from_workdir(vae_run)
    a = pipe(num_samples_per_label=6, seed=1)
    b = pipe(num_samples_per_label=6, seed=1)
    c = pipe(num_samples_per_label=6, seed=2)
    assert a.dtype == np.uint8 and a.shape == (6, 8, 8, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_arguments_say_what_is_allowed(vae_run, tmp_path):
    pipe = Pipeline.from_workdir(vae_run)
    with pytest.raises(ValueError, match="unconditional"):
        pipe(labels=[1])
    with pytest.raises(ValueError, match=r"does not take the sampling option\(s\) \['sampler'\].*single-pass"):
        pipe(sampler="ddim")
    with pytest.raises(ValueError, match="num_samples_per_label=0: must be an integer >= 1"):
        pipe(num_samples_per_label=0)
    with pytest.raises(ValueError, match="does not take the sampling option"):
        pipe(guidance=-1.0)
    with pytest.raises(FileNotFoundError, match="not a jgen run directory"):
        Pipeline.from_workdir(str(tmp_path))


def test_interpolation_strip(vae_run):
    pipe = Pipeline.from_workdir(vae_run)
    a, b = np.zeros((8, 8, 1), np.float32), np.ones((8, 8, 1), np.float32)
    strip = pipe.interpolate(a, b, num=5)
    assert strip.shape == (5, 8, 8, 1) and strip.dtype == np.uint8


def test_cli_sample_writes_a_grid(vae_run, tmp_path):
    out = tmp_path / "grid.png"
    r = subprocess.run(
        [sys.executable, "-m", "jgen", "sample", "--workdir", vae_run, "--num_samples", "9", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert out.exists() and '"num_images": 9' in r.stdout


def test_cli_rejects_bad_config_before_compute(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "jgen",
            "train",
            "--config",
            os.path.join(ROOT, "tests", "tiny_vae_config.py"),
            "--workdir",
            str(tmp_path / "w"),
            "--config.optim.learning_rate=-1.0",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode != 0
    assert "config.optim.learning_rate=-1.0 is invalid: must be a finite number > 0" in r.stderr
    assert not (tmp_path / "w").exists()
