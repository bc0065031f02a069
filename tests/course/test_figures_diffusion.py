"""Charts 19, 22, 24 and 27: the exact diffusion maths, and a tiny diffusion run's forward and reverse processes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course import CHARTS
from course.diffusion import (
    MIXTURE,
    ddpm_trajectory_data,
    diffusion_maths_data,
    draw_ddpm_trajectory,
    draw_diffusion_maths,
    draw_guidance,
    draw_reverse_corruption,
    guidance_data,
    reverse_corruption_data,
)
from jgen.diffusion import alpha_sigma, make_schedule
from jgen.diffusion.analytic import mixture_density_1d, mixture_model_fn
from jgen.run import load_run
from jgen.sampling import generate
from tests.diffusion.drawing import draw as draw_samples


def test_chart22_is_exact_and_its_ode_paths_are_what_a_fine_ddim_solve_gives(tmp_path):
    T = 200
    d = diffusion_maths_data(
        timesteps=T, num_times=41, num_x=241, x_range=(-6.0, 6.0), num_ode_paths=8, num_sde_paths=3
    )
    w, m, s = (np.asarray(MIXTURE[k]) for k in ("weights", "means", "stds"))
    # every column of the heat map is a density; t = 0 is the data's own
    np.testing.assert_allclose(np.trapezoid(d["density"], d["x"], axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(d["density"][0], mixture_density_1d(d["x"], w, m, s))
    # the exact probability-flow paths end where DDIM (the ODE's first-order solver) on the exact denoiser lands
    # from the same points at t = 1
    sched = make_schedule("linear", T)
    model_fn = mixture_model_fn(
        sched,
        jnp.asarray(w, jnp.float32),
        jnp.asarray(m[:, None], jnp.float32),
        jnp.asarray((s**2)[:, None, None], jnp.float32),
    )
    starts = d["ode"]["paths"][-1]
    ddim = draw_samples(
        model_fn,
        sched,
        jax.random.PRNGKey(0),
        (8, 1),
        sampler="ddim",
        steps=T,
        parameterization="x0",
        noise=jnp.asarray(starts[:, None], jnp.float32),
    ).samples[:, 0]
    np.testing.assert_allclose(d["ode"]["paths"][0], np.asarray(ddim), atol=0.03)
    assert np.all(np.diff(d["ode"]["paths"], axis=1) > 0)  # 1-D flows never cross
    assert d["sde"]["t"][0] == 1.0 and d["sde"]["t"][-1] == 0.0 and d["sde"]["paths"].shape[1] == 3
    for name, sc in d["schedules"].items():
        if name == "rectified_flow":  # the straight path: alpha_t = 1 - t, sigma_t = t
            np.testing.assert_allclose(sc["alpha"] + sc["sigma"], 1.0, atol=1e-5)
            np.testing.assert_allclose(sc["sigma"], sc["t"], atol=1e-5)
        else:  # variance-preserving
            np.testing.assert_allclose(sc["alpha"] ** 2 + sc["sigma"] ** 2, 1.0, atol=1e-5)
    np.testing.assert_allclose(d["schedules"]["linear"]["alpha"] ** 2, sched.alpha_bars, rtol=1e-4)
    draw_diffusion_maths(d, str(tmp_path / CHARTS[22].filename))
    assert (tmp_path / CHARTS[22].filename).stat().st_size > 50_000


@pytest.fixture(scope="module")
def ddpm_charts(diffusion_runs):
    """Charts 19 and 24's data from the tiny run, at small settings (computed once)."""
    runs = {"ddpm_mnist": str(diffusion_runs / "ddpm_mnist")}
    return {
        19: reverse_corruption_data(runs, index=7, num_points=5, steps=8),
        24: ddpm_trajectory_data(runs, num=3, num_points=6, steps=20, seed=5),
    }


@pytest.mark.slow  # the tiny diffusion run and its samplers: about 40 s of CPU on 2 cores
def test_chart19_forward_shares_one_noise_and_the_reverse_starts_from_its_end(diffusion_runs, ddpm_charts):
    run = load_run(str(diffusion_runs / "ddpm_mnist"))
    d = ddpm_charts[19]
    example = run.test_source[7]
    np.testing.assert_allclose(d["forward"]["images"][0], example["image"], atol=1e-6)  # t = 0: the test image
    assert d["label"] == int(example["label"])
    # x_t = alpha_t x0 + sigma_t eps with the same eps at every t (where no image was clipped to [0, 1])
    a, s = (np.asarray(v) for v in alpha_sigma(run.method.schedule, jnp.asarray(d["forward"]["t"][1:])))
    x0 = 2 * example["image"] - 1
    eps = [(2 * d["forward"]["images"][k + 1] - 1 - a[k] * x0) / s[k] for k in range(len(a))]
    inside = np.all([(x > 1e-3) & (x < 1 - 1e-3) for x in d["forward"]["images"][1:]], axis=0)
    assert inside.sum() > 5
    np.testing.assert_allclose(eps[0][inside], eps[-1][inside], atol=1e-3)
    np.testing.assert_allclose(d["reverse"]["images"][0], d["forward"]["images"][-1], atol=1e-6)
    assert d["reverse"]["t"][0] == 1.0 and d["reverse"]["t"][-1] == 0.0
    np.testing.assert_allclose(d["x0_predictions"][0], example["image"], atol=1e-6)


@pytest.mark.slow  # the tiny diffusion run and its samplers: about 40 s of CPU on 2 cores
def test_chart24_keeps_the_states_at_the_requested_times(ddpm_charts):
    d = ddpm_charts[24]
    t = [1 - k * (1 - 1 / 1000) / 19 for k in (0, 4, 8, 12, 16)] + [0.0]  # 20 time-uniform steps from 1 to 1/T
    np.testing.assert_allclose(d["t"], t, atol=1e-6)
    np.testing.assert_array_equal(d["step"], np.round(np.array(t) * 1000))
    assert d["x_t"].shape == d["x0"].shape == (6, 3, 8, 8, 1)
    np.testing.assert_array_equal(d["x0"][-1], d["x_t"][-1])  # the sample is its own estimate


@pytest.mark.slow  # compiles generate's DDPM program: about 8 s on 2 cores
def test_chart24_ends_at_the_image_generate_draws(diffusion_runs, ddpm_charts):
    d = ddpm_charts[24]
    run = load_run(str(diffusion_runs / "ddpm_mnist"))
    images, _ = generate(
        run.method,
        run.state.ema_params,
        run.state.model_state,
        3,
        run.method.sampling_spec(sampler="ddpm", steps=20),
        seed=5,
        labels=d["labels"],
    )
    np.testing.assert_allclose(d["x_t"][-1], images, atol=1e-5)


@pytest.mark.slow  # the tiny diffusion run and its samplers: about 40 s of CPU on 2 cores
def test_diffusion_charts_write_pngs(ddpm_charts, tmp_path):
    for chart_id, draw in ((19, draw_reverse_corruption), (24, draw_ddpm_trajectory)):
        path = tmp_path / CHARTS[chart_id].filename
        draw(ddpm_charts[chart_id], str(path))
        assert path.stat().st_size > 10_000


@pytest.mark.slow  # one sampling program per guidance scale: about 20 s on 2 cores
def test_chart27_code_shown_is_the_code_that_made_the_images(diffusion_runs, tmp_path):
    workdir = str(diffusion_runs / "ddpm_mnist")
    d = guidance_data({"ddpm_mnist": workdir}, run="ddpm_mnist", labels=[1, 7], scales=[0.0, 4.0], steps=3)
    namespace = {"GUIDANCE_SCALES": d["scales"]}
    exec(d["code"], namespace)  # the figure's text, run as it is
    for i, g in enumerate(d["scales"]):
        np.testing.assert_array_equal(d["images"][i], namespace["images"][g].astype(np.float32) / 255.0)
    assert not np.array_equal(d["images"][0], d["images"][1])  # guidance changes the images
    draw_guidance(d, str(tmp_path / "27.png"))
    assert (tmp_path / "27.png").stat().st_size > 10_000
