"""End to end on the 8x8 digits: first stage -> latent diffusion -> Pipeline -> compare."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from jgen import cli
from jgen.config import ConfigError
from jgen.data import get_source
from jgen.nn.dit import DiT
from jgen.pipeline import Pipeline
from jgen.run import build_method, load_run, train_and_evaluate, validate, with_defaults
from tests.conftest import tiny_config


def tiny_diffusion_config(method: str = "latent_diffusion", first_stage: str = "", steps: int = 6):
    c = tiny_config("vae", steps=steps)
    c.train.sample_every = -1  # sampling is tested through the Pipeline; skip the loop's grids
    c.method = type(c.method)(
        dict(
            name=method,
            schedule="linear",
            timesteps=100,
            parameterization="eps",
            loss_weighting="none",
            min_snr_gamma=5.0,
            conditional=True,
            label_dropout=0.2,
            sampler="dpm_solver",
            sample_steps=5,
            guidance=1.0,
            eta=0.0,
            clip_denoised=method == "diffusion",
            first_stage_workdir=first_stage,
            latent_scale=0.0,
        )
    )
    c.model = type(c.model)(
        dict(channels=8, channel_mult=(1,), num_res_blocks=1, attention_resolutions=(), num_heads=1, dropout=0.0)
    )
    return c


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ldm")
    fs = tiny_config("vae", steps=10)
    fs.model.kind, fs.model.features, fs.method.latent_dim = "conv_spatial", (8,), 2  # 8x8x1 -> 4x4x2
    train_and_evaluate(fs, str(root / "first_stage"))
    cwd = os.getcwd()
    os.chdir(root)  # the first stage named by a relative path, as the README's commands name it
    try:
        train_and_evaluate(tiny_diffusion_config(first_stage="first_stage"), str(root / "ldm"))
    finally:
        os.chdir(cwd)
    return root


def test_the_run_decodes_with_its_own_first_stage_from_any_folder(runs, tmp_path, monkeypatch, capsys):
    """Sampling from a folder with another `first_stage` uses the one the run was trained on; a first stage that is
    not that one (replaced, or moved away) is refused in one line."""
    fs = tiny_config("vae", steps=2)
    fs.model.kind, fs.model.features, fs.method.latent_dim, fs.seed = "conv_spatial", (8,), 2, 1
    train_and_evaluate(fs, str(tmp_path / "first_stage"))  # another first stage at the same relative path
    monkeypatch.chdir(tmp_path)
    decoder = load_run(str(runs / "ldm")).method.first_stage_params
    for x, y in zip(jax.tree.leaves(decoder), jax.tree.leaves(load_run(str(runs / "first_stage")).state.ema_params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    shutil.copytree(runs / "ldm", tmp_path / "ldm")
    requires = tmp_path / "ldm" / "requires.json"
    recorded = json.loads(requires.read_text())
    for where, fragment in ((tmp_path / "first_stage", "is not the one"), (tmp_path / "gone", "is not at")):
        requires.write_text(json.dumps({"first_stage": {**recorded["first_stage"], "workdir": str(where)}}))
        code = cli.run_command(["sample", "--workdir", str(tmp_path / "ldm"), f"--out={tmp_path}/s.png"])
        err = capsys.readouterr().err
        assert code == cli.EXIT_BAD_INPUT and fragment in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s.png").exists()


def test_pipeline_is_deterministic_and_conditional(runs):
    pipe = Pipeline.from_workdir(str(runs / "ldm"))
    assert pipe.num_classes == 10 and pipe.method.info.shape == (4, 4, 2)
    a, info = pipe(
        labels=[3, 7], num_samples_per_label=2, sampler="ddim", steps=4, guidance=2.0, seed=5, return_info=True
    )
    b = pipe(labels=[3, 7], num_samples_per_label=2, sampler="ddim", steps=4, guidance=2.0, seed=5)
    assert a.shape == (4, 8, 8, 1) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert info["nfe_per_image"] == 4  # guided: one network call per step on the [cond; uncond] batch
    assert pipe(labels=[3], num_samples_per_label=2, steps=4, guidance=0.0, seed=1).shape == (2, 8, 8, 1)


def test_the_dit_backbone_runs_on_the_latents(runs):
    """model.kind=dit in latent diffusion: the DiT is built for the first stage's 4x4x2 latents, so its patch must
    tile those, not the 8x8 images (built and initialised abstractly; the DiT's training is tests/test_dit.py's)."""
    c = tiny_diffusion_config(first_stage=str(runs / "first_stage"))
    c.method.latent_scale = 1.0
    c.model = type(c.model)(dict(kind="dit", patch_size=2, hidden_size=16, depth=1, num_heads=2))
    c = with_defaults(c)
    validate(c, num_devices=1)
    train, _, info = get_source(c.data)
    method = build_method(c, info, train)
    assert isinstance(method.net, DiT) and method.info.shape == (4, 4, 2)
    batch = {"image": np.zeros((2, 8, 8, 1), np.float32), "label": np.zeros((2,), np.int32)}
    params = jax.eval_shape(method.init_state, jax.random.PRNGKey(0), batch).params
    assert params["patch_embed"]["kernel"].shape == (2 * 2 * 2, 16)
    assert params["final_linear"]["kernel"].shape == (16, 2 * 2 * 2)
    c.model.patch_size = 3
    with pytest.raises(ConfigError, match="patch_size=3 is invalid: must divide the 4x4 inputs the DiT sees"):
        build_method(c, info, train)


def test_pipeline_argument_errors(runs, tmp_path):
    pipe = Pipeline.from_workdir(str(runs / "ldm"))
    with pytest.raises(ValueError, match=r"labels \[10\] are out of range: this model has 10 classes, labels 0..9"):
        pipe(labels=[10])
    with pytest.raises(ValueError, match="steps=0"):
        pipe(labels=[1], steps=0)
    with pytest.raises(ValueError, match="unknown"):
        pipe(labels=[1], sampler="euler_magic")
    with pytest.raises(ValueError, match="guidance=-2.0: must be a finite number >= 0"):
        pipe(labels=[1], guidance=-2.0)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text((runs / "ldm" / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Pipeline.from_workdir(str(empty))


def test_missing_first_stage_is_explained(tmp_path):
    with pytest.raises(
        ValueError, match="first_stage_workdir='' is invalid: latent diffusion needs a trained first stage"
    ):
        train_and_evaluate(tiny_diffusion_config(first_stage=""), str(tmp_path))


@pytest.mark.slow  # a DDIM inversion program of its own (about 4 s of CI time); chart 23 covers interpolation too
def test_ddim_interpolation_strip(runs):
    pipe = Pipeline.from_workdir(str(runs / "ldm"))
    a, b = np.zeros((8, 8, 1), np.float32), np.ones((8, 8, 1), np.float32) * 0.5
    strip = pipe.interpolate(a, b, num=5, label=2, steps=4)
    assert strip.shape == (5, 8, 8, 1) and strip.dtype == np.uint8


def test_compare_two_runs(runs, tmp_path, monkeypatch):
    from jgen import compare
    from jgen.metrics import feature_nets
    from jgen.run import load_run

    cls = tiny_config("vae", steps=10)
    cls.method = type(cls.method)(dict(name="classifier", max_shift=1))
    cls.model = type(cls.model)(dict(features=(4, 8), feature_dim=16, dropout=0.0))
    train_and_evaluate(cls, str(tmp_path / "classifier"))
    run = load_run(str(tmp_path / "classifier"))
    method, state = run.method, run.state
    # The real feature net is the 28x28 MNIST classifier; an 8x8 digits classifier stands in for it here.
    monkeypatch.setattr(
        compare, "load_feature_net", lambda name: feature_nets.classifier_feature_net(method, state.ema_params, name)
    )
    workdirs, out = [str(runs / "first_stage"), str(runs / "ldm")], str(tmp_path / "out")
    md = compare.compare_workdirs(workdirs, out, num_samples=40, sampler="ddim", steps=3)  # for the diffusion row
    rows = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert [r["method"] for r in rows] == ["vae", "latent_diffusion"]
    assert rows[1]["nfe"] == 3 and rows[1]["sampling"].startswith("sampler ddim, steps 3,"), rows[1]
    assert all(np.isfinite(r["fid_mnist_classifier"]) and 0 <= r["recall_mnist_classifier"] <= 1 for r in rows)
    assert rows[0]["bits_per_dim"] > 0 and "bits_per_dim" not in rows[1]
    assert "| first_stage | vae | — | 40 |" in md
    assert os.path.getsize(tmp_path / "out" / "compare.png") > 1000


@pytest.mark.slow  # a latent MeanFlow's programs of its own: make test-slow
def test_a_few_step_family_runs_on_the_latents(runs):
    """method.first_stage_workdir on a few-step family (MeanFlow): it trains on the first stage's scaled latents, its
    backbone is built for them (4x4x2), and its samples are decoded images; requires.json pins the first stage."""
    from tests.families.test_few_step_methods import few_config

    c = few_config("meanflow", steps=2)
    c.method.first_stage_workdir = str(runs / "first_stage")
    train_and_evaluate(c, str(runs / "latent_meanflow"))
    run = load_run(str(runs / "latent_meanflow"))
    fs = load_run(str(runs / "first_stage"))
    assert tuple(run.method.info.shape) == (4, 4, 2) and run.method.latent.scale > 0
    images = np.asarray(jax.numpy.arange(2 * 64, dtype=np.float32).reshape(2, 8, 8, 1) / 128)
    mean, _ = fs.method.encode(fs.state.ema_params, images)
    np.testing.assert_allclose(run.method.encode_x0(images), np.asarray(mean) * run.method.latent.scale, rtol=1e-6)
    out, info = Pipeline(run)(labels=[1, 2, 3], num_samples_per_label=1, steps=2, return_info=True)
    assert out.shape == (3, 8, 8, 1) and info["nfe_per_image"] == 2
    with open(runs / "latent_meanflow" / "requires.json") as f:
        assert json.load(f)["first_stage"]["workdir"] == str(runs / "first_stage")
