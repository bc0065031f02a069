"""The research-scale CIFAR-10 DDPM config: the paper's parameter count, and a 2-step run at tiny width."""

import math
import os

import jax
import numpy as np
import pytest

from jgen.data import DataInfo
from jgen.run import build_method, load_config, train_and_evaluate, validate
from jgen.train.writer import read_metrics
from tests.conftest import ROOT

CONFIG = os.path.join(ROOT, "experiments", "configs", "ddpm_cifar10.py")
CIFAR10 = DataInfo("cifar10", (32, 32, 3), 10, 50_000, 10_000)


def test_ddpm_cifar10_has_the_papers_parameter_count():
    """Ho et al. 2020 report 35.7M parameters for their CIFAR-10 model; counted here without allocating them."""
    config = load_config(CONFIG)
    validate(config, num_devices=8)
    method = build_method(config, CIFAR10, None)
    batch = {"image": np.zeros((1, 32, 32, 3), np.float32), "label": np.zeros((1,), np.int32)}
    state = jax.eval_shape(method.init_state, jax.random.PRNGKey(0), batch)
    count = sum(math.prod(x.shape) for x in jax.tree.leaves(state.params))
    assert count == 35_746_307
    assert abs(count - 35.7e6) / 35.7e6 < 0.01
    assert config.data.random_flip and config.optim.warmup_steps == 5000 and config.train.ema_decay == 0.9999


@pytest.mark.slow  # compiling even a tiny 4-level UNet takes about 2 minutes on 2 shared cores
def test_ddpm_cifar10_trains_two_steps_at_tiny_width_on_mock_cifar10(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    tiny = [
        "model.channels=8",
        "model.num_res_blocks=1",
        "data.batch_size=4",
        "train.steps=2",
        "train.log_every=1",
        "train.eval_every=0",
        "train.sample_every=-1",
        "train.checkpoint_every=0",
        "train.eval_batch_size=4",
        "train.num_eval_examples=4",
        "train.progress=false",
        f"data.data_dir={tmp_path / 'tfds'}",
    ]
    config = load_config(CONFIG, tiny)
    with tfds.testing.mock_data(num_examples=8):
        final = train_and_evaluate(config, str(tmp_path / "run"))
    rows = read_metrics(str(tmp_path / "run"), "train")
    assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
    assert np.isfinite(final["loss"])
