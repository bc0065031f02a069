"""Every input a user can get wrong is answered with one clear message naming the value and the fix.

One table for the command line (each row: the arguments, then a fragment of the one-line error; exit code 2, no
traceback, nothing created) and one for the Python API (the call, the exception type, a fragment).
"""

import os

import jax
import numpy as np
import pytest

from jgen import cli
from jgen.config import InputError
from jgen.diffusion import SamplingSpec, make_denoiser, make_schedule
from jgen.metrics import (
    compute_sample_metrics,
    density_coverage,
    feature_stats,
    frechet_distance,
    iwae_bound,
    kid,
    precision_recall,
)
from jgen.metrics.feature_nets import classifier_feature_net
from jgen.pipeline import Pipeline
from jgen.run import load_run
from jgen.sampling import generate
from tests.conftest import ROOT

CONFIG = os.path.join(ROOT, "tests", "tiny_vae_config.py")


@pytest.fixture(scope="module")
def runs(bad_input_runs):
    return bad_input_runs  # shared with tests/test_bad_inputs_table.py (conftest.py)


def _train(*overrides, workdir="{tmp}/w"):
    return ["train", "--config", CONFIG, "--workdir", workdir, *[f"--config.{o}" for o in overrides]]


CLI_CASES = [  # (arguments, fragment of the error)
    (["train"], "--config is required"),
    (["train", "--config", CONFIG], "--workdir is required"),
    (["train", "--config", "{tmp}/nope.py", "--workdir", "{tmp}/w"], "config file '{tmp}/nope.py' does not exist"),
    (_train("foo=1"), "unknown config field 'config.foo': config has the fields ['data', 'eval'"),
    (_train("data.bogus=1"), "unknown config field 'config.data.bogus': config.data has the fields ['batch_size'"),
    (_train("data.batch_sise=32"), "Did you mean 'batch_size'?"),
    (_train("model.features=abc"), "config.model.features='abc' is invalid: must be a tuple like (32,)"),
    (_train("model.features=(0, 4)"), "model.features=(0, 4) is invalid: must be a tuple of 1+ positive integers"),
    (_train("method.latent_dim=0"), "config.method.latent_dim=0 is invalid: must be an integer >= 1"),
    (_train("train.keep_checkpoints=-1"), "config.train.keep_checkpoints=-1 is invalid: must be an integer >= 1"),
    (_train("method.beta=-1"), "config.method.beta=-1.0 is invalid: must be a finite number >= 0.0"),
    (_train("train.num_eval_examples=-1"), "config.train.num_eval_examples=-1 is invalid: must be an integer >= 0"),
    (_train("data.batch_size=8000"), "data.batch_size=8000 is invalid: must not exceed the training split (1438"),
    (_train("train.steps=1.5"), "config.train.steps='1.5' is invalid: must be an integer"),
    (_train("optim.learning_rate=nan"), "config.optim.learning_rate=nan is invalid: must be a finite number > 0"),
    (_train("data.name=cifar11"), "config.data.name='cifar11' is invalid: unknown dataset"),
    (_train("method.name=flow"), "config.method.name='flow' is invalid: unknown method"),
    (_train("train.ema_decay=1.0"), "config.train.ema_decay=1.0 is invalid: must be in [0, 1)"),
    (_train("data=3"), "config.data is a section, not a value"),
    (_train("train.progress=maybe"), "config.train.progress='maybe' is invalid: must be true or false"),
    (_train("eval.feature_net=vgg"), "config.eval.feature_net='vgg' is invalid: choose one of"),
    (_train("train.log_every"), "is not of the form field=value"),
    (_train(workdir="{runs}/a_file"), "is a file, not a directory"),
    (["trian"], "unknown command 'trian'"),
    (["train", "--labels=1", "--config", CONFIG, "--workdir", "{tmp}/w"], "--labels does not apply to train"),
    (["sample", "--workdir", "{runs}/vae", "--config.train.steps=3"], "overrides apply to train only"),
    (["sample", "--workdir", "{runs}/vae", "--steps=abc"], "flag --steps=abc"),
    (["sample", "--workdir", "{runs}/vae", "extra"], "unexpected argument(s) ['extra']"),
    (["sample", "--nosuchflag=1"], "nosuchflag"),
    (["sample"], "--workdir is required"),
    (["sample", "--workdir", "{runs}/empty"], "has no config.json: it is not a jgen run directory"),
    (["sample", "--workdir", "{runs}/vae", "--labels", "a"], "--labels='a': must be comma-separated class labels"),
    (["sample", "--workdir", "{runs}/vae", "--labels", "1"], "model is unconditional: generate without labels"),
    (["sample", "--workdir", "{runs}/vae", "--steps", "5"], "does not take the sampling option(s) ['steps']"),
    (["sample", "--workdir", "{runs}/vae", "--num_samples", "0"], "--num_samples=0: must be an integer >= 1"),
    (["sample", "--workdir", "{runs}/diffusion", "--labels", "50"], "labels [50] are out of range: this model has 10"),
    (["sample", "--workdir", "{runs}/diffusion", "--labels", "-3"], "labels [-3] are out of range"),
    (["sample", "--workdir", "{runs}/diffusion", "--guidance", "nan"], "guidance=nan: must be a finite number >= 0"),
    (["sample", "--workdir", "{runs}/diffusion", "--guidance", "inf"], "guidance=inf: must be a finite number >= 0"),
    (["sample", "--workdir", "{runs}/diffusion", "--sampler", "euler_magic"], "sampler='euler_magic' is unknown"),
    (["sample", "--workdir", "{runs}/diffusion", "--steps", "0"], "steps=0: must be an integer >= 1"),
    (["sample", "--workdir", "{runs}/diffusion", "--spacing", "evenly"], "spacing='evenly' is unknown; choose one of"),
    (["sample", "--workdir", "{runs}/vae", "--spacing", "karras"], "does not take the sampling option(s) ['spacing']"),
    (["sample", "--workdir", "{runs}/diffusion", "--eta", "2"], "eta=2.0: must be in [0, 1]"),
    (["sample", "--workdir", "{runs}/diffusion", "--guidance_interval", "2,1"], "guidance_interval=(2.0, 1.0): must"),
    (["sample", "--workdir", "{runs}/diffusion", "--guidance_interval", "a,1"], "--guidance_interval='a,1': must be"),
    (["sample", "--workdir", "{runs}/diffusion", "--guide_step", "3"], "--guide_step picks a checkpoint"),
    (["sample", "--workdir", "{runs}/vae", "--guide_workdir", "{runs}/vae"], "a guiding model applies to diffusion"),
    (["eval", "--workdir", "{runs}/diffusion", "--guide_workdir", "{runs}/vae"], "guide '"),
    (["eval", "--workdir", "{runs}/vae", "--sampler", "heun"], "does not take the sampling option(s) ['sampler']"),
    (["eval"], "--workdir is required"),
    (["eval", "--workdir", "{runs}/vae", "--feature_net", "vgg"], "feature_net='vgg' is not known"),
    (["eval", "--workdir", "{runs}/vae", "--num_samples", "1"], "num_samples=1: must be an integer >= 2"),
    (["eval", "--workdir", "{runs}/vae", "--likelihood_images", "8"], "a 'vae' run has no on-demand likelihood"),
    (["eval", "--workdir", "{runs}/diffusion", "--likelihood_images", "1"], "likelihood_images=1: must be an integer"),
    (["compare"], "--workdirs is required"),
    (["compare", "--workdirs", "{runs}/vae,{runs}/diffusion", "--guidance_scales", "1,2"], "sweeps one run"),
    (["compare", "--workdirs", "{runs}/diffusion", "--guidance_scales", "x"], "--guidance_scales='x': must be numbers"),
    (
        ["compare", "--workdirs", "{runs}/diffusion", "--guidance_scales", "0,1", "--likelihood_images", "8"],
        "not to a guidance sweep",
    ),
    (["compare", "--workdirs", "{runs}/vae", "--likelihood_images", "8"], "none of these runs has an on-demand"),
]


@pytest.mark.parametrize("args,fragment", CLI_CASES, ids=[" ".join(a[:1] + a[-1:])[:60] for a, _ in CLI_CASES])
def test_cli_bad_input_gets_one_clear_line(runs, tmp_path, capsys, args, fragment):
    fill = {"tmp": str(tmp_path), "runs": str(runs)}
    code = cli.run_command([a.format(**fill) for a in args])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT, err
    assert fragment.format(**fill) in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 12
    assert not (tmp_path / "w").exists()  # rejected before anything was created


def _diffusion_pipe(runs):
    return Pipeline.from_workdir(str(runs / "diffusion"))


NAN = np.full((20, 3), np.nan)
OK = np.random.default_rng(0).normal(size=(20, 3))
API_CASES = [  # (call, fragment)
    (
        lambda r: frechet_distance(np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2)),
        "mu1 has 1 non-finite value(s)",
    ),
    (lambda r: compute_sample_metrics(OK, NAN, None, "x"), "fake_feats has 60 non-finite"),
    (lambda r: feature_stats(NAN), "features has 60 non-finite"),
    (lambda r: kid(NAN, OK), "feats1 has 60 non-finite"),
    (lambda r: precision_recall(NAN, OK), "real features has 60 non-finite"),
    (lambda r: density_coverage(OK, NAN), "fake features has 60 non-finite"),
    (lambda r: _feature_net(r).features(np.full((2, 8, 8, 1), np.nan)), "images has 128 non-finite"),
    (lambda r: _diffusion_pipe(r)(labels=[]), "must be a non-empty list of class labels"),
    (lambda r: _diffusion_pipe(r)(labels=[1.5]), "labels must be integers in [0, 9]"),
    (lambda r: _diffusion_pipe(r)(labels=[3], guidance=float("inf")), "guidance=inf"),
    (lambda r: _diffusion_pipe(r)(labels=[3], guidance=float("nan")), "guidance=nan"),
    (lambda r: _diffusion_pipe(r).interpolate(np.zeros((8, 8)), np.zeros((8, 8, 1))), "add the channel axis"),
    (
        lambda r: _diffusion_pipe(r).interpolate(np.zeros((4, 4, 1)), np.zeros((8, 8, 1))),
        "this model's images are [8, 8, 1]",
    ),
    (
        lambda r: _diffusion_pipe(r).interpolate(np.zeros((8, 8, 1)), np.zeros((8, 8, 1)), num=-2),
        "num=-2: must be an integer >= 2",
    ),
    (
        lambda r: _diffusion_pipe(r).interpolate(np.full((8, 8, 1), 200.0), np.zeros((8, 8, 1))),
        "divide 8-bit images by 255",
    ),
    (
        lambda r: Pipeline.from_workdir(str(r / "vae")).interpolate(np.zeros((8, 8, 1)), np.ones((8, 8, 1)), num=1),
        "num=1: must be an integer >= 2",
    ),
    (lambda r: load_run(str(r / "vae"), step=999), "step=999"),
    (lambda r: generate(load_run(str(r / "vae")).method, {}, {}, 0, seed=0), "num=0: must be an integer >= 1"),
    (
        lambda r: make_denoiser(lambda x, t, y: x, make_schedule("linear", 10), "eps", np.array([0.5, 1.0]), 1.0, 10),
        "labels must be integer class indices",
    ),
    (lambda r: SamplingSpec(sampler="ddim", steps=2, guidance=float("nan")), "guidance=nan"),
]


def _feature_net(runs):
    return classifier_feature_net(_Classifierish(), {}, "x")


class _Classifierish:
    """The smallest object classifier_feature_net accepts: fixed features of 8x8 images."""

    info = type("Info", (), {"shape": (8, 8, 1), "num_classes": 2})()
    net = type("Net", (), {"feature_dim": 4})()

    def apply(self, params, images):
        flat = images.reshape(images.shape[0], -1)
        return flat[:, :2], flat[:, :4]


@pytest.mark.parametrize("call,fragment", API_CASES, ids=[f"api{i}" for i in range(len(API_CASES))])
def test_api_bad_input_names_the_value(runs, call, fragment):
    with pytest.raises(ValueError) as e:  # InputError (and ConfigError) are ValueErrors
        call(runs)
    assert fragment in str(e.value), str(e.value)


def test_inputs_that_used_to_fail_now_work(runs):
    pipe = _diffusion_pipe(runs)
    assert pipe(labels=np.array([1, 2]), num_samples_per_label=2, steps=2).shape == (4, 8, 8, 1)
    w = np.log(np.array([[0.5, 1.0], [1.5, 2.0]]))
    np.testing.assert_allclose(iwae_bound(w.tolist()), iwae_bound(jax.numpy.asarray(w)), rtol=1e-6)


def test_the_tables_are_long_enough():
    assert len(CLI_CASES) + len(API_CASES) >= 60
    assert isinstance(InputError("x"), ValueError)
