"""The diffusion Method in the shared loop on the 8x8 digits: training, evaluation, sampling, pictures, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgen.methods.diffusion  # noqa: F401  (registers "diffusion")
from jgen.config import ConfigError
from jgen.methods import get_method
from jgen.metrics.quality import real_images
from jgen.pipeline import Pipeline, to_uint8
from jgen.run import attach_guide, evaluate_likelihood, load_run, train_and_evaluate, validate
from jgen.sampling import generate
from jgen.train.writer import read_metrics
from tests.conftest import tiny_config


def diffusion_config(steps=40, **method):
    c = tiny_config("diffusion", steps=steps)
    c.method.update(
        dict(
            schedule="cosine",
            timesteps=1000,
            parameterization="eps",
            loss_weighting="none",
            min_snr_gamma=5.0,
            conditional=True,
            label_dropout=0.2,
            sampler="dpm_solver",
            sample_steps=8,
            guidance=1.0,
            eta=0.0,
            clip_denoised=True,
        )
    )
    c.method.update(method)
    # one resolution level keeps compile times short; the UNet tests cover the multi-level paths
    c.model = c.model.__class__(
        dict(channels=8, channel_mult=(1,), num_res_blocks=1, attention_resolutions=(), num_heads=1, dropout=0.0)
    )
    c.optim.learning_rate = 3e-3
    return c


def test_trains_evaluates_and_samples_in_the_loop(tmp_path):
    """The flow-matching objective (rectified-flow path, velocity target, min-SNR weights) in the shared loop: the
    loss falls, evaluation, sample pictures, reloading and sampling; eps/v/x0 are the same code apart from the
    target (their conversions and weights are tested in test_diffusion_schedules.py)."""
    c = diffusion_config(steps=60, schedule="rectified_flow", parameterization="flow", loss_weighting="min_snr")
    c.train.sample_every = 60
    final = train_and_evaluate(c, str(tmp_path))
    rows = read_metrics(str(tmp_path), "train")
    assert rows[-1]["loss"] < 0.7 * rows[0]["loss"], (rows[0]["loss"], rows[-1]["loss"])
    assert set(final) == {"loss", "mse_eps"} and np.isfinite(final["loss"])
    pngs = set((tmp_path / "samples").iterdir())
    assert {f"{k}_step_0000060.png" for k in ("samples", "trajectory", "forward")} <= {p.name for p in pngs}

    run = load_run(str(tmp_path))
    method, state = run.method, run.state
    key = jax.random.PRNGKey(0)
    # guidance 0 is unconditional sampling: the labels do not matter
    heun = method.sampling_spec(sampler="heun", steps=3, guidance=0.0)
    g0, info = generate(method, state.ema_params, state.model_state, 6, heun, key=key, labels=[0, 1, 2, 3, 4, 5])
    unc, _ = generate(method, state.ema_params, state.model_state, 6, heun, key=key)
    assert g0.shape == (6, 8, 8, 1) and info.nfe_per_image == 5
    assert float(g0.min()) >= 0.0 and float(g0.max()) <= 1.0
    np.testing.assert_array_equal(g0, unc)
    # autoguidance by a run attached through the run layer: guided by itself it is the model, at any weight; a
    # guidance interval is part of the request
    name = attach_guide(run, str(tmp_path))
    assert name.endswith("@60")
    plain = method.sampling_spec(sampler="heun", steps=3)
    auto = method.sampling_spec(sampler="heun", steps=3, guidance=3.0, guide=name, guidance_interval=(0.5, 2.0))
    lab = [0, 1, 2, 3, 4, 5]
    want, _ = generate(method, state.ema_params, state.model_state, 6, plain, key=key, labels=lab)
    got, _ = generate(method, state.ema_params, state.model_state, 6, auto, key=key, labels=lab)
    np.testing.assert_allclose(got, want, atol=2e-3)  # two network calls compiled apart: rounding, times w = 3
    with pytest.raises(ValueError, match="guide='elsewhere': no such guiding model is attached"):
        method.sampling_spec(guide="elsewhere")
    with pytest.raises(ValueError, match=r"labels \[10\] are out of range: .*labels 0..9"):
        generate(method, state.ema_params, state.model_state, 2, key=key, labels=[3, 10])
    with pytest.raises(ValueError, match="labels must be 3 integers"):
        generate(method, state.ema_params, state.model_state, 3, key=key, labels=[3, 1])
    # inpainting through the Pipeline: the known upper half comes back as given (to 8 bits), the rest is drawn
    pipe, test = Pipeline(run), np.asarray(real_images(run.test_source, 3))
    mask = np.zeros(test.shape, np.float32)
    mask[:, :4] = 1.0
    filled = pipe.inpaint(test, mask, sampler="ddim", steps=3, seed=0)
    np.testing.assert_array_equal(filled[:, :4], to_uint8(test)[:, :4])
    with pytest.raises(ValueError, match=r"sampler='heun'.*cannot inpaint.*use one of \['ddim', 'ddpm'"):
        pipe.inpaint(test, mask, sampler="heun")
    with pytest.raises(ValueError, match=r"mask must hold only 0 \(to fill in\) and 1 \(known\)"):
        pipe.inpaint(test, 0.5 * mask)
    # bits/dim by the probability-flow ODE (RK4, 25 steps, one Hutchinson probe) on test images, on demand: on this
    # flow model the ODE runs in t with the learned velocity up to t = 1
    lik = evaluate_likelihood(run, 5, batch_size=4)  # two batches, the second padded
    assert lik["bits_per_dim_kind"] == "exact (ODE)" and lik["likelihood_images"] == 5
    assert 0 < lik["bits_per_dim"] < 16 and lik["bits_per_dim_se"] > 0, lik
    step = method.jitted("likelihood_step", method.likelihood_step)  # the program evaluate_likelihood compiled
    out = step(state.ema_params, state.model_state, {"image": real_images(run.test_source, 4)}, key)
    np.testing.assert_allclose(
        np.asarray(out["bpd_ode"]),  # D = 64 dequantised pixels in [-1, 1]: + D log 128
        (np.asarray(out["nll_ode"]) + 64 * np.log(128)) / (64 * np.log(2)),
        rtol=1e-5,
    )


def test_eval_step_is_per_example_and_config_errors():
    from jgen.data import get_source

    c = diffusion_config(parameterization="x0")
    _, test, info = get_source(c.data)
    method = get_method("diffusion")(c, info)
    batch = {
        "image": jnp.asarray(np.stack([test[i]["image"] for i in range(5)])),
        "label": jnp.asarray(np.stack([test[i]["label"] for i in range(5)])),
    }
    state = jax.jit(method.init_state)(jax.random.PRNGKey(0), batch)
    out = jax.jit(method.eval_step)(state.params, state.model_state, batch, jax.random.PRNGKey(1))
    assert out["loss"].shape == (5,) and out["mse_eps"].shape == (5,)
    # a zero-initialised x0 network predicts 0: its loss is the mean square of the images in [-1, 1]
    x = 2 * np.asarray(batch["image"]) - 1
    np.testing.assert_allclose(np.asarray(out["loss"]), np.mean(x**2, axis=(1, 2, 3)), rtol=1e-5)
    assert method.num_classes == 10
    # DDIM-inversion interpolation: the ends reproduce the two images (with an eps network: a constant x0 network
    # maps every code to the same image, which no inversion can undo)
    eps_method = get_method("diffusion")(diffusion_config(), info)
    strip = eps_method.interpolate(state.params, batch["image"][0], batch["image"][1], num=4, steps=10)
    assert strip.shape == (4, 8, 8, 1)
    np.testing.assert_allclose(np.asarray(strip[0]), np.asarray(batch["image"][0]), atol=1e-3)
    np.testing.assert_allclose(np.asarray(strip[-1]), np.asarray(batch["image"][1]), atol=1e-3)

    for field, value, msg in [
        ("sampler", "euler_magic", "choose one of"),
        ("parameterization", "score", "choose one of"),
        ("label_dropout", 1.0, "must be in"),
        ("sample_steps", 2000, "must be an integer"),
    ]:
        bad = diffusion_config(**{field: value})
        with pytest.raises(ConfigError, match=f"config.method.{field}=.*{msg}"):
            validate(bad, num_devices=1)
    unc = get_method("diffusion")(diffusion_config(conditional=False), info)
    assert unc.num_classes == 0
    with pytest.raises(ValueError, match="unconditional"):
        generate(unc, state.params, {}, 2, seed=0, labels=[1, 2])


def test_flow_objective_config_and_request_errors():
    """Combinations that cannot work are refused before any compute, naming the fields and the fix."""
    cases = [
        (
            dict(schedule="rectified_flow", parameterization="eps"),
            "parameterization",
            "undefined at t = 1.*Fix: --config.method.parameterization=flow",
        ),
        (dict(schedule="rectified_flow", parameterization="v"), "parameterization", "alpha\\^2 \\+ sigma\\^2 = 1"),
        (
            dict(schedule="linear", parameterization="flow"),
            "parameterization",
            "method.schedule='linear'.*Fix: --config.method.schedule=rectified_flow",
        ),
        (
            dict(schedule="rectified_flow", parameterization="flow", sampler="heun", spacing="time_uniform"),
            "sampler",
            "infinite at t = 1.*Fix: --config.method.spacing=karras",
        ),
        (dict(time_sampling="beta"), "time_sampling", "choose one of"),
        (dict(logit_std=0.0), "logit_std", "finite number >= 1e-06"),
    ]
    for method, field, msg in cases:
        with pytest.raises(ConfigError, match=f"config.method.{field}=.*{msg}"):
            validate(diffusion_config(**method), num_devices=1)
    from jgen.data import get_source  # local: the data module only for this test's DataInfo

    c = diffusion_config(schedule="rectified_flow", parameterization="flow", sampler="heun", sample_steps=8)
    validate(c, num_devices=1)  # heun on its karras grid starts at s = 80: fine
    method = get_method("diffusion")(c, get_source(c.data)[2])
    method.sampling_spec(sampler="midpoint", spacing="time_uniform")
    with pytest.raises(ValueError, match="'heun'.* works in the noise level"):
        method.sampling_spec(spacing="time_quadratic")
