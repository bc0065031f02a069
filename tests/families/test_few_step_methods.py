"""The few-step families (meanflow, shortcut, consistency) as Methods on the shared loop: their boundary cases
reduce to flow matching / the identity exactly, they train, sample in `steps` NFE through the one generation path
and the CLI, and refuse what they cannot do in one line."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import cli
from jgen.config import ConfigError, InputError
from jgen.data import DataInfo, to_model_range
from jgen.diffusion.few_step import flow_path
from jgen.diffusion.meanflow import sample_interval
from jgen.methods import get_method
from jgen.run import load_run, train_and_evaluate, validate
from jgen.sampling import generate
from jgen.train.warm_start import overlay
from jgen.train.writer import read_metrics
from tests.conftest import tiny_config
from tests.course.tiny_runs import PIXEL_NET

DIGITS = DataInfo("digits", (8, 8, 1), 10, 1438, 359)
TINY_UNET = dict(channels=8, channel_mult=(1,), num_res_blocks=1, attention_resolutions=(), num_heads=1)


def few_config(name, steps=4, **method):
    c = tiny_config(name, steps=steps)
    c.model.update(TINY_UNET)
    c.method.update(method)
    c.train.log_every = 1
    c.optim.warmup_steps = 0
    return c


def method_and_params(name, model=None, **method):
    """A built method on the 8x8 digits and parameters perturbed off their init (the zero-initialised output layer
    would make every prediction 0), with a batch."""
    c = few_config(name, **method)
    c.model.update(model or {})
    m = get_method(name)(c, DIGITS)
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.uniform(size=(8, 8, 8, 1)), jnp.float32), "label": jnp.arange(8) % 10}
    params, _ = m.init_variables(jax.random.PRNGKey(0), batch)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = tree.unflatten([p + 0.1 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
    return m, params, batch


def test_meanflow_at_r_equal_t_is_flow_matching():
    """With every example at r = t (interval_fraction 0) and no adaptive weight (power 0) the MeanFlow loss is
    the flow-matching loss of the network at interval 0: ||u(z_t, t, t) - (eps - x0)||^2, to float32 rounding."""
    m, params, batch = method_and_params("meanflow", interval_fraction=0.0, weight_power=0.0, label_dropout=0.0)
    key = jax.random.PRNGKey(5)
    got = jax.jit(m.per_example_losses, static_argnames="train")(params, batch, key, False)["loss"]
    x0 = to_model_range(batch["image"])
    k_rt, k_eps, _, _ = jax.random.split(key, 4)
    r, t = sample_interval(k_rt, x0.shape[0], 0.0, m.config.method.logit_mean, m.config.method.logit_std)
    np.testing.assert_array_equal(np.asarray(r), np.asarray(t))
    z, v = flow_path(x0, jax.random.normal(k_eps, x0.shape), t)
    s = m.config.method.time_scale  # the backbone sees (s t, s (t - r))
    u = m.net.apply({"params": params}, z, s * t, batch["label"], interval=jnp.zeros_like(t))
    np.testing.assert_allclose(np.asarray(got), np.asarray(jnp.sum((u - v) ** 2, axis=(1, 2, 3))), rtol=1e-5)


@pytest.mark.slow  # training-time guidance, an option; the unguided target is checked in make test
def test_meanflow_training_guidance_targets_the_guided_velocity():
    """With cfg_scale w and r = t, a kept label's target is w (eps - x0) + (1 - w) u(z_t, t, t; null label)."""
    w = 2.0
    m, params, batch = method_and_params(
        "meanflow", interval_fraction=0.0, weight_power=0.0, label_dropout=1e-9, cfg_scale=w
    )
    key = jax.random.PRNGKey(8)
    got = jax.jit(m.per_example_losses, static_argnames="train")(params, batch, key, True)["loss"]
    x0 = to_model_range(batch["image"])
    k_rt, k_eps, _, _ = jax.random.split(key, 4)
    _, t = sample_interval(k_rt, x0.shape[0], 0.0, m.config.method.logit_mean, m.config.method.logit_std)
    z, v = flow_path(x0, jax.random.normal(k_eps, x0.shape), t)
    s, h = m.config.method.time_scale, jnp.zeros_like(t)
    u = m.net.apply({"params": params}, z, s * t, batch["label"], interval=h)
    u_null = m.net.apply({"params": params}, z, s * t, jnp.full_like(batch["label"], 10), interval=h)
    want = jnp.sum((u - (w * v + (1 - w) * u_null)) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4)


@pytest.mark.slow  # a regression guard for a tuning default; the targets themselves are tested in make test
def test_meanflow_time_scale_keeps_the_jvp_target_of_order_one():
    """The backbones embed 1000 x their time input: fed t itself, du/dt of a random network is ~1000x larger and
    the target v - (t - r) du/dt dwarfs v (training then diverges); the default time_scale feeds t / 1000."""
    errors = {}
    for scale in (0.001, 1.0):
        m, params, batch = method_and_params("meanflow", interval_fraction=1.0, time_scale=scale)
        losses = jax.jit(m.per_example_losses, static_argnames="train")(params, batch, jax.random.PRNGKey(7), False)
        errors[scale] = float(jnp.mean(losses["mse"]))
    assert errors[0.001] < 10.0 and errors[1.0] > 20 * errors[0.001], errors


def test_shortcut_at_d_zero_is_flow_matching():
    """Without self-consistency examples the shortcut loss is flow matching of the network at d = 0."""
    m, params, batch = method_and_params("shortcut", consistency_fraction=0.0, label_dropout=0.0)
    key = jax.random.PRNGKey(6)
    got = jax.jit(m.per_example_losses, static_argnames="train")(params, batch, key, False)["loss"]
    x0 = to_model_range(batch["image"])
    k_t, _, k_eps, _, _ = jax.random.split(key, 5)
    t = jax.random.uniform(k_t, (x0.shape[0],))
    z, v = flow_path(x0, jax.random.normal(k_eps, x0.shape), t)
    s = m.net.apply({"params": params}, z, t, batch["label"], interval=jnp.zeros_like(t))
    np.testing.assert_allclose(np.asarray(got), np.asarray(jnp.mean((s - v) ** 2, axis=(1, 2, 3))), rtol=1e-5)


def test_consistency_function_is_the_identity_at_sigma_min():
    """f(x, sigma_min) = x exactly for a network whose output is far from 0; not at larger sigma."""
    m, params, batch = method_and_params("consistency")
    f = m.consistency_fn(params, batch["label"])
    x = to_model_range(batch["image"]) + 0.01
    b = x.shape[0]
    np.testing.assert_array_equal(np.asarray(f(x, jnp.full((b,), 0.002))), np.asarray(x))
    assert float(jnp.max(jnp.abs(f(x, jnp.full((b,), 1.0)) - x))) > 0.05


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """name -> the workdir of a 4-step run of that family (sample pictures at its last step), trained the first
    time a test asks for it."""
    out = {}

    def run(name: str) -> str:
        if name not in out:
            c = few_config(name, steps=4)
            c.train.sample_every = 4
            out[name] = str(tmp_path_factory.mktemp(name))
            train_and_evaluate(c, out[name])
        return out[name]

    return run


# meanflow (the JVP through the network) in make test; the other two families' loop runs in make test-slow
@pytest.mark.parametrize(
    "name",
    ["meanflow", pytest.param("shortcut", marks=pytest.mark.slow), pytest.param("consistency", marks=pytest.mark.slow)],
)
def test_trains_in_the_loop_and_samples_in_steps_nfe(name, trained):
    workdir = trained(name)
    assert np.isfinite(read_metrics(workdir, "eval")[-1]["loss"])
    assert any(p.startswith("samples_1step") for p in os.listdir(os.path.join(workdir, "samples")))
    run = load_run(workdir)
    for steps in (1, 2):
        spec = run.method.sampling_spec(steps=steps)
        assert run.method.spec_for_nfe(steps) == spec  # one jump per evaluation
        images, info = generate(run.method, run.state.ema_params, {}, 6, spec, seed=0, labels=[0, 1, 2, 3, 4, 5])
        assert images.shape == (6, 8, 8, 1) and info.nfe_per_image == steps
        assert 0.0 <= images.min() and images.max() <= 1.0
    if name == "consistency":  # the discretisation follows the step: iCT's curriculum in the loop
        levels = [row["levels"] for row in read_metrics(workdir, "train")]
        assert levels == sorted(levels) and levels[0] == run.config.method.scales_start + 1


def test_the_sample_command_takes_steps_and_refuses_a_sampler(trained, tmp_path, capsys):
    workdir = trained("meanflow")
    out = str(tmp_path / "grid.png")
    argv = ["sample", "--workdir", workdir, "--steps", "2", "--num_samples", "4", "--labels", "1,2", "--out", out]
    assert cli.run_command(argv) == 0 and os.path.exists(out)
    assert cli.run_command(["sample", "--workdir", workdir, "--sampler", "ddim", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "sampler" in err and "steps" in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(InputError, match="steps=0"):
        load_run(workdir).method.sampling_spec(steps=0)
    evaluate = ["eval", "--workdir", workdir, "--num_samples", "20", "--steps", "2", f"--feature_net={PIXEL_NET}"]
    assert cli.run_command(evaluate) == 0
    with open(os.path.join(workdir, f"eval_{PIXEL_NET}.json")) as f:
        assert json.load(f)["nfe"] == 2  # eval takes --steps as sample does


@pytest.mark.slow  # the DiT's JVP compile: make test-slow
def test_meanflow_takes_a_dit_with_the_interval_input():
    dit = dict(kind="dit", patch_size=4, hidden_size=16, depth=1, num_heads=1)
    dit.update({k: v for k, v in get_method("meanflow").defaults().model.items() if k in TINY_UNET})
    m, params, batch = method_and_params("meanflow", model=dit)
    assert "interval_mlp1" in params and "time_mlp1" in params
    losses = jax.jit(m.per_example_losses, static_argnames="train")(params, batch, jax.random.PRNGKey(0), True)
    assert np.all(np.isfinite(np.asarray(losses["loss"])))


@pytest.mark.parametrize(
    "name,field,value,says",
    [
        ("meanflow", "interval_fraction", 1.5, "interval_fraction"),
        ("meanflow", "cfg_scale", 0.5, "cfg_scale"),
        ("shortcut", "max_doublings", 0, "max_doublings"),
        ("consistency", "sigma_max", 0.001, "sigma_max"),
        ("consistency", "scales_end", 5, "scales_end"),
        ("consistency", "sample_steps", 0, "sample_steps"),
    ],
)
def test_bad_config_values_stop_with_one_line(name, field, value, says):
    c = few_config(name)
    c.method[field] = value
    with pytest.raises(ConfigError, match=says) as e:
        validate(c)
    assert "\n" not in str(e.value)


def test_a_run_starts_from_another_runs_parameters(trained, tmp_path):
    """train.init_from: consistency training from the MeanFlow run's EMA parameters (ECT's initialisation from a
    trained model): every array starts at the source's, so one Adam step leaves each within ~lr of it; the source's
    interval embedding, which consistency models lack, is ignored; requires.json names the source and its step."""
    source = trained("meanflow")
    c = few_config("consistency", steps=1)
    c.train.init_from = source
    workdir = str(tmp_path / "ct")
    train_and_evaluate(c, workdir)
    src, run = load_run(source), load_run(workdir)
    lr = c.optim.learning_rate

    def flat(tree):
        return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}

    start, now = flat(src.state.ema_params), flat(run.state.params)
    assert set(now) < set(start) and any("interval" in k for k in set(start) - set(now))
    assert max(float(np.max(np.abs(now[k] - start[k]))) for k in now) <= 1.01 * lr
    with open(os.path.join(workdir, "requires.json")) as f:
        assert json.load(f)["init_from"]["step"] == src.step


def test_overlay_copies_matching_arrays_keeps_the_rest_and_refuses_other_shapes():
    fresh = {"a": np.zeros((2, 3)), "b": {"c": np.ones(4, np.float32)}, "new": np.full(2, 7.0)}
    source = {"a": np.arange(6.0).reshape(2, 3), "b": {"c": np.arange(4.0)}, "extra": np.ones(5)}
    out, copied, kept = overlay(fresh, source)
    np.testing.assert_array_equal(out["a"], source["a"])
    assert out["b"]["c"].dtype == np.float32 and out["new"] is fresh["new"]
    assert sorted(copied) == ["a", "b/c"] and kept == ["new"]
    with pytest.raises(InputError, match=r"parameter a has shape \(3, 2\) in .* but \(2, 3\)"):
        overlay(fresh, {"a": np.zeros((3, 2))})
    with pytest.raises(InputError, match="shares no parameter"):
        overlay(fresh, {"z": np.zeros(1)})
