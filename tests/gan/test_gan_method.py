"""The GAN method on the shared loop: training, sample grids, resume, conditioning, config errors."""

import json

import jax
import numpy as np
import pytest

from jgen.config import ConfigError, optim_config
from jgen.run import load_run, train_and_evaluate


def gan_config(tiny, steps=20, **method):
    c = tiny("gan", steps)
    c.method.update(
        dict(loss="non_saturating", n_critic=1, gp_weight=10.0, r1_gamma=0.0, latent_dim=8, conditional=False)
    )
    c.method.update(method)
    c.model.g_features = (16, 8)  # 2x2 -> 4x4 -> 8x8
    c.model.d_features = (8, 16)
    c.optim = {"generator": optim_config(2e-4, b1=0.5), "discriminator": optim_config(2e-4, b1=0.5)}
    c.train.log_every = 2
    c.train.sample_every = 0
    return c


def _rows(workdir, split):
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


def test_short_run_logs_both_players_and_writes_the_sample_grid(tmp_path, tiny):
    train_and_evaluate(gan_config(tiny, steps=20), str(tmp_path))
    rows = _rows(tmp_path, "train")
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert rows[0]["d_loss"] != rows[-1]["d_loss"] and rows[0]["g_loss"] != rows[-1]["g_loss"]
    assert all(0.0 <= r["d_real"] <= 1.0 and 0.0 <= r["d_fake"] <= 1.0 for r in rows)
    ev = _rows(tmp_path, "eval")[-1]
    assert {"d_real", "d_fake", "d_loss", "g_loss"} <= set(ev)
    assert (tmp_path / "samples" / "samples_step_0000020.png").exists()
    assert (tmp_path / "samples" / "samples_raw_step_0000020.png").exists()


def test_resume_gives_bitwise_equal_gan_state(tmp_path, tiny):
    full, cut = tmp_path / "full", tmp_path / "cut"
    train_and_evaluate(gan_config(tiny, steps=12, n_critic=2, loss="wgan_gp"), str(full))
    train_and_evaluate(gan_config(tiny, steps=5, n_critic=2, loss="wgan_gp"), str(cut))
    mid = load_run(str(cut)).state
    assert int(mid.step) == 5
    train_and_evaluate(gan_config(tiny, steps=12, n_critic=2, loss="wgan_gp"), str(cut))
    a, b = load_run(str(full)).state, load_run(str(cut)).state
    assert int(b.step) == 12
    for x, y in zip(
        jax.tree.leaves((a.params, a.opt_state, a.ema_params)), jax.tree.leaves((b.params, b.opt_state, b.ema_params))
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_conditional_gan_generates_requested_labels_through_the_pipeline(tmp_path, tiny):
    from jgen.pipeline import Pipeline

    train_and_evaluate(gan_config(tiny, steps=4, conditional=True, loss="hinge", r1_gamma=1.0), str(tmp_path))
    pipe = Pipeline.from_workdir(str(tmp_path))
    assert pipe.num_classes == 10
    images = pipe(labels=[1, 7], num_samples_per_label=3, seed=0)
    assert images.shape == (6, 8, 8, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, pipe(labels=[1, 7], num_samples_per_label=3, seed=0))
    with pytest.raises(ValueError, match="out of range"):
        pipe(labels=[10])
    with pytest.raises(ValueError, match="single-pass"):
        pipe(labels=[1], steps=10)


def test_config_errors_name_the_field(tmp_path, tiny):
    c = gan_config(tiny)
    c.method.loss = "lsgan"
    with pytest.raises(ConfigError, match="method.loss='lsgan'"):
        train_and_evaluate(c, str(tmp_path / "a"))
    c = gan_config(tiny)
    c.optim = optim_config()
    with pytest.raises(ConfigError, match="optim.generator and config.optim.discriminator"):
        train_and_evaluate(c, str(tmp_path / "b"))
