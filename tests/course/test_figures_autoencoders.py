"""Charts 12, 13 and 15 on tiny autoencoder and VAE runs: PNGs written, data equal to the runs' files and models.

Slow: the two tiny runs and the charts' programs take about 30 s of CPU on 2 cores (`make test-slow`)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course import CHARTS
from course.autoencoders import (
    ae_success_data,
    draw_ae_success,
    draw_generation_problem,
    draw_vae_plane,
    generation_problem_data,
    vae_plane_data,
)
from course.common import pick_test_images
from jgen.run import load_run
from jgen.sampling import generate
from jgen.train.writer import read_metrics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ae_charts(ae_runs):
    """Charts 12 and 13's data from the tiny runs (computed once)."""
    runs = {"ae_mnist": str(ae_runs / "ae_mnist"), "vae_mnist": str(ae_runs / "vae_mnist")}
    return {12: ae_success_data(runs), 13: generation_problem_data(runs, num=4, num_codes=100, seed=3)}


def test_chart12_curves_are_the_logged_mse_rows(ae_runs, ae_charts):
    workdir = ae_runs / "ae_mnist"
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    d = ae_charts[12]
    run = load_run(str(workdir))
    for split in ("train", "eval"):
        logged = [r for r in rows if r["split"] == split]
        np.testing.assert_array_equal(d["curves"][split]["per_pixel"], [r["mse"] for r in logged])
        np.testing.assert_allclose(d["curves"][split]["per_image_sum"], [64 * r["mse"] for r in logged])
        np.testing.assert_allclose(d["curves"][split]["epoch"], [r["step"] * 32 / run.info.num_train for r in logged])
    assert len(d["curves"]["eval"]["per_pixel"]) == 4
    assert sorted(d["slide"]) == sorted(
        (s, c) for s in ("train", "eval") for c in ("per_pixel", "per_image_sum", "rmse")
    )
    labels = [int(run.test_source[i]["label"]) for i in range(len(run.test_source))]
    assert len(d["images"]) == len(set(labels))  # one test digit per class
    np.testing.assert_allclose(
        d["reconstructions"], run.method.reconstruct(run.state.ema_params, d["images"]), atol=1e-6
    )


def test_chart13_shows_the_models_own_samples_and_projects_the_codes(ae_runs, ae_charts):
    runs = {"ae_mnist": str(ae_runs / "ae_mnist"), "vae_mnist": str(ae_runs / "vae_mnist")}
    d = ae_charts[13]
    ae, vae = load_run(runs["ae_mnist"]), load_run(runs["vae_mnist"])
    np.testing.assert_array_equal(
        d["fitted"], generate(ae.method, ae.state.ema_params, ae.state.model_state, 4, seed=3)[0]
    )
    np.testing.assert_array_equal(
        d["vae"], generate(vae.method, vae.state.ema_params, vae.state.model_state, 4, seed=3)[0]
    )
    z = jax.random.normal(jax.random.PRNGKey(3), (4, 4))
    np.testing.assert_allclose(d["normal"], ae.method.decode(ae.state.ema_params, z), atol=1e-6)
    codes = d["plane"]["codes"]
    assert codes.shape == (100, 2) and 0 < d["explained"] <= 1
    np.testing.assert_allclose(codes.mean(axis=0), 0, atol=1e-9)  # centred, principal axes
    assert abs(np.cov(codes.T)[0, 1]) < 1e-8 and np.var(codes[:, 0]) >= np.var(codes[:, 1])
    images, _ = pick_test_images(ae, 100)
    full = np.asarray(ae.method.encode(ae.state.ema_params, jnp.asarray(images)), np.float64)
    dist = np.linalg.norm(full[:, None] - full[None], axis=-1) + np.diag(np.full(len(full), np.inf))
    np.testing.assert_allclose(d["nearest"]["test"], dist.min(axis=1), rtol=1e-5)
    assert len(d["nearest"]["fitted"]) == len(d["nearest"]["normal"]) == 100


def test_autoencoder_charts_write_pngs(ae_charts, tmp_path):
    for chart_id, draw in ((12, draw_ae_success), (13, draw_generation_problem)):
        path = tmp_path / CHARTS[chart_id].filename
        draw(ae_charts[chart_id], str(path))
        assert path.stat().st_size > 30_000


def test_chart15_plane_and_elbo_terms(vae_2d_runs, tmp_path):
    workdir = str(vae_2d_runs / "vae_2d_mnist")
    d = vae_plane_data({"vae_2d_mnist": workdir}, num_codes=50, grid=3, extent=2.0)
    run = load_run(workdir)
    images, labels = pick_test_images(run, 50)
    mean, _ = run.method.encode(run.state.ema_params, jnp.asarray(images))
    np.testing.assert_allclose(d["codes"], mean, atol=1e-6)
    np.testing.assert_array_equal(d["labels"], labels)
    corner = run.method.decode(run.state.ema_params, jnp.asarray([[-2.0, 2.0]]))  # top-left: z1 = -2, z2 = +2
    np.testing.assert_allclose(d["decoded"][0, 0], corner[0], atol=1e-6)
    rows = [r for r in read_metrics(workdir, "eval")]
    np.testing.assert_allclose(d["terms"]["eval"]["reconstruction"], [r["elbo"] + r["kl"] for r in rows])
    assert list(d["terms"]["eval"]["step"]) == [5, 10]
    draw_vae_plane(d, str(tmp_path / "15.png"))
    assert (tmp_path / "15.png").stat().st_size > 20_000
