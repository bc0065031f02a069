"""Chart 26 (and the other cross-family charts) on tiny runs: PNGs written, data equal to the runs' files."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from course import CHARTS, MissingData, draw_charts
from course.common import RUNS, SEED_STEPS, SEEDS, seed_run
from course.ethics import copying_z, draw_memorisation, memorisation_data, nearest
from course.landscape import (
    draw_fid_nfe,
    draw_interpolation,
    draw_landscape,
    draw_tradeoffs,
    draw_two_approaches,
    fid_nfe_data,
    interpolation_data,
    landscape_data,
    quality_curves_data,
    tradeoffs_data,
    two_approaches_data,
)
from course.registry import draw_chart
from jgen.diffusion.samplers import SAMPLERS
from jgen.run import evaluate_likelihood, evaluate_run, load_run, train_and_evaluate
from jgen.sampling import generate
from jgen.train.writer import read_metrics
from tests.conftest import tiny_config
from tests.course.tiny_runs import PIXEL_NET, tiny_autoencoder


def test_chart26_curves_are_the_sample_quality_rows(gan_runs, tmp_path):
    workdir = gan_runs / "gan_mnist"
    rows = [
        r
        for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())
        if r["split"] == "sample_quality"
    ]
    data = quality_curves_data({"gan_mnist": str(workdir)})
    c = data["curves"]["gan_mnist"]
    assert c["net"] == PIXEL_NET and data["without"] == []
    np.testing.assert_array_equal(c["step"], [8, 16, 24])
    for m in ("fid", "is", "precision", "recall"):
        np.testing.assert_array_equal(c[m], [r[f"{m}_{PIXEL_NET}"] for r in rows])
    # the chart reads the seed-0 runs (they log sample quality): a runs folder with only the GAN's
    (tmp_path / "runs" / "seeds").mkdir(parents=True)
    (tmp_path / "runs" / seed_run("gan_mnist", 0)).symlink_to(workdir)
    out = draw_charts(str(tmp_path / "runs"), str(tmp_path), [26], log=lambda _: None)[0]
    assert out.status == "drawn" and seed_run("ar_mnist", 0) in out.message  # drawn from what exists, the rest named
    assert (tmp_path / CHARTS[26].filename).stat().st_size > 20_000


def test_seed0_runs_log_sample_quality_and_the_others_do_not():
    for family, steps in SEED_STEPS.items():
        zero = dict(RUNS[seed_run(family, 0)].overrides)
        assert zero["train.steps"] == steps and 1 <= zero["eval.sample_metrics_every"] <= steps
        assert "eval.sample_metrics_every" not in dict(RUNS[seed_run(family, 1)].overrides)


def test_chart26_without_quality_rows_says_how_to_log_them(tmp_path):
    (tmp_path / "gan_mnist").mkdir()
    (tmp_path / "gan_mnist" / "config.json").write_text(json.dumps({"method": {"name": "gan"}}))
    with pytest.raises(MissingData, match="sample_metrics_every"):
        quality_curves_data({"gan_mnist": str(tmp_path / "gan_mnist")})


@pytest.mark.slow  # DDIM inversion, GAN and VAE programs of their own: about 20 s on 2 cores
def test_chart23_strips_run_between_two_test_digits(gan_runs, diffusion_runs, ae_runs, tmp_path):
    runs = {n: str(gan_runs / n) for n in ("vae_mnist", "gan_mnist", "ddpm_mnist")}
    d = interpolation_data(runs, num=5, steps=4)
    vae = load_run(runs["vae_mnist"])
    tests = np.stack([vae.test_source[i]["image"] for i in range(len(vae.test_source))])
    assert any(np.array_equal(d["a"], x) for x in tests) and any(np.array_equal(d["b"], x) for x in tests)
    assert {k: v.shape for k, v in d["strips"].items()} == {n: (5, 8, 8, 1) for n in runs}
    # the VAE strip's ends are its reconstructions of a and b (decoded posterior means)
    mean, _ = vae.method.encode(vae.state.ema_params, jnp.stack([d["a"], d["b"]]))
    ends = np.asarray(vae.method.decode(vae.state.ema_params, mean))
    np.testing.assert_allclose(d["strips"]["vae_mnist"][[0, -1]], ends, atol=1 / 255 + 1e-6)  # uint8 rounding
    assert set(d["ends_error"]) == {"vae_mnist", "ddpm_mnist"}  # the GAN's strip does not start at a digit
    draw_interpolation(d, str(tmp_path / "23.png"))
    assert (tmp_path / "23.png").stat().st_size > 10_000


@pytest.mark.slow  # timed generation of two families: about 15 s on 2 cores
def test_chart17_samples_curves_and_costs(gan_runs, diffusion_runs, tmp_path):
    runs = {n: str(gan_runs / n) for n in ("gan_mnist", "ddpm_mnist")}
    d = two_approaches_data(runs, num=10, timing_num=10)
    for name in runs:
        run = load_run(runs[name])
        images, info = generate(
            run.method, run.state.ema_params, run.state.model_state, 10, seed=0, labels=d[name]["labels"]
        )
        np.testing.assert_array_equal(d[name]["images"], images)
        assert d[name]["nfe"] == info.nfe_per_image and d[name]["images_per_sec"] > 0
        rows = read_metrics(runs[name], "train")
        key = "g_loss" if name == "gan_mnist" else "loss"
        np.testing.assert_array_equal(d[name]["curves"][key][1], [r[key] for r in rows])
        assert d[name]["train_seconds"] > 0 and d[name]["steps"] == rows[-1]["step"]
    assert d["gan_mnist"]["nfe"] == 1 and d["ddpm_mnist"]["nfe"] == 8
    draw_two_approaches(d, str(tmp_path / "17.png"))
    assert (tmp_path / "17.png").stat().st_size > 10_000


@pytest.mark.slow  # evaluations of two runs (timed sampling, every metric, an ODE likelihood): about 20 s on 2 cores
def test_chart28_rows_are_evaluate_run_rows(gan_runs, diffusion_runs, tmp_path):
    runs = {n: str(gan_runs / n) for n in ("gan_mnist", "ddpm_mnist")}
    d = landscape_data(runs, num_samples=40, feature_net=PIXEL_NET, likelihood_images=4)
    gan, ddpm = d["rows"]
    row = evaluate_run(load_run(runs["gan_mnist"]), 40, 0, PIXEL_NET)
    assert (gan["fid"], gan["precision"], gan["recall"], gan["is"], gan["nfe"]) == (
        row[f"fid_{PIXEL_NET}"],
        row[f"precision_{PIXEL_NET}"],
        row[f"recall_{PIXEL_NET}"],
        row[f"is_{PIXEL_NET}"],
        row["nfe"],
    )
    assert gan["images_per_sec"] > 0 and gan["bits_per_dim"] is None  # a GAN has no likelihood
    ode = evaluate_likelihood(load_run(runs["ddpm_mnist"]), 4)  # diffusion's is computed on demand, on 4 test images
    assert ddpm["bits_per_dim"] == pytest.approx(ode["bits_per_dim"])
    assert ddpm["bits_per_dim_kind"] == ode["bits_per_dim_kind"]
    draw_landscape(d, str(tmp_path / "28.png"))
    assert (tmp_path / "28.png").stat().st_size > 10_000


def test_chart31_nearest_neighbours_and_copying_statistic(gan_runs, tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(30, 5))
    dist, idx = nearest(a, b)
    brute = np.linalg.norm(a[:, None] - b[None], axis=-1)
    np.testing.assert_array_equal(idx, brute.argmin(1))
    np.testing.assert_allclose(dist, brute.min(1), rtol=1e-9)
    near, far = rng.uniform(0, 1, 200), rng.uniform(0.5, 1.5, 300)
    assert copying_z(near, far) < -5 < 5 < copying_z(far, near) and abs(copying_z(far, far)) < 1e-9

    workdir = str(gan_runs / "gan_mnist")
    d = memorisation_data({"gan_mnist": workdir}, num_samples=40, num_shown=3, feature_net=PIXEL_NET)
    run = load_run(workdir)
    train = np.stack([run.train_source[i]["image"] for i in range(len(run.train_source))])
    f = d["families"]["gan_mnist"]
    samples, _ = generate(run.method, run.state.ema_params, run.state.model_state, 40, seed=0)
    np.testing.assert_array_equal(f["samples"], samples[:3])
    for k in range(3):  # the nearest training image in pixels, and its distance
        np.testing.assert_allclose(np.linalg.norm(samples[k] - f["pixel_nn"][k]), f["pixel_dist"][k], rtol=1e-5)
        to_train = np.sqrt(((samples[k] - train) ** 2).sum(axis=(1, 2, 3)))
        assert to_train.min() == pytest.approx(f["pixel_dist"][k], rel=1e-5)
    assert len(d["data"]["test_pixel"]) == len(run.test_source) and f["class_freq"].sum() == pytest.approx(1)
    draw_memorisation(d, str(tmp_path / "31.png"))
    assert (tmp_path / "31.png").stat().st_size > 20_000


def test_chart29_without_seed_runs_names_the_commands_that_make_them(tmp_path, monkeypatch):
    monkeypatch.setenv("JGEN_CACHE", str(tmp_path / "cache"))  # no MNIST classifier: the seed-0 runs need it first
    out = draw_chart(CHARTS[29], str(tmp_path), str(tmp_path / "figs"))
    seeds = [c for c in out.commands if "/seeds/" in c]
    assert out.status == "skipped" and len(seeds) == len(SEED_STEPS) * len(SEEDS) >= 3 * 8
    assert (
        f"python -m jgen train --config experiments/configs/gan_mnist.py --workdir {tmp_path}/seeds/gan_mnist_s2 "
        f"--config.seed=2 --config.train.steps={SEED_STEPS['gan_mnist']}" in out.commands
    )
    # first the classifier, then the default first stage the latent diffusion seeds share (once, before theirs)
    classifier, first_stage = [c for c in out.commands if c not in seeds]
    assert (
        out.commands[0] == classifier == "python -m jgen train --config experiments/configs/classifier_mnist.py "
        f"--workdir {tmp_path}/cache/mnist_classifier"
    )
    assert f"--workdir {tmp_path}/ldm_autoencoder" in first_stage
    assert out.commands.index(first_stage) < min(i for i, c in enumerate(out.commands) if "ldm_mnist_s" in c)
    assert f"--config.method.first_stage_workdir={tmp_path}/ldm_autoencoder" in seeds[-4]  # ldm's s2, before ar's


@pytest.mark.slow  # six tiny trainings and six evaluations: about 25 s on 2 cores
def test_chart29_table_is_the_seed_runs_evaluations(tmp_path):
    families = ("ae_mnist", "vae_mnist")
    runs = {}
    for s in SEEDS:
        for family, config in (("ae_mnist", tiny_autoencoder(10)), ("vae_mnist", tiny_config("vae", steps=10))):
            config.seed = s
            runs[seed_run(family, s)] = str(tmp_path / seed_run(family, s))
            train_and_evaluate(config, runs[seed_run(family, s)])
    d = tradeoffs_data(runs, families=families, num_samples=40, feature_net=PIXEL_NET)
    assert [(r["family"], r["seed"]) for r in d["per_run"]] == [(f, s) for f in families for s in SEEDS]
    for r in d["per_run"]:
        row = evaluate_run(load_run(runs[r["run"]]), 40, 0, PIXEL_NET)
        assert (r["fid"], r["recall"], r["bits_per_dim"], r["nfe"], r["steps"]) == (
            row[f"fid_{PIXEL_NET}"],
            row[f"recall_{PIXEL_NET}"],
            row.get("bits_per_dim"),
            row["nfe"],
            10,
        )
        train = read_metrics(runs[r["run"]], "train")  # logged every 5 steps: 5 steps over each row's steps/s
        assert r["train_seconds"] == pytest.approx(sum(5 / t["steps_per_sec"] for t in train))
    assert len({r["fid"] for r in d["per_run"]}) == 6  # the seeds give different models
    for f in d["families"]:
        fids = [r["fid"] for r in d["per_run"] if r["family"] == f["family"]]
        assert f["fid"] == pytest.approx(np.mean(fids)) and f["fid_std"] == pytest.approx(np.std(fids, ddof=1))
        assert f["fid_range"] == pytest.approx(max(fids) - min(fids)) and f["seeds"] == 3
    ae, vae = d["families"]
    assert ae["bits_per_dim"] is None and vae["bits_per_dim"] == pytest.approx(
        np.mean([r["bits_per_dim"] for r in d["per_run"] if r["family"] == "vae_mnist"])
    )
    draw_tradeoffs(d, str(tmp_path / "29.png"))
    assert (tmp_path / "29.png").stat().st_size > 20_000


def test_chart32_curves_are_evaluate_run_at_each_budget(gan_runs, diffusion_runs, tmp_path):
    runs = {n: str(gan_runs / n) for n in ("gan_mnist", "ddpm_mnist")}
    d = fid_nfe_data(runs, budgets=(1, 3), num_samples=40, feature_net=PIXEL_NET)
    assert d["fixed"] == ["gan_mnist"] and list(d["curves"]) == ["ddpm_mnist"]  # a GAN's cost is one pass
    c = d["curves"]["ddpm_mnist"]
    run = load_run(runs["ddpm_mnist"])
    sampler = SAMPLERS[run.config.method.sampler]
    assert c["sampling"] == sampler.name
    np.testing.assert_array_equal(c["nfe"], [sampler.nfe(sampler.steps_for_nfe(k)) for k in (1, 3)])
    assert c["nfe"][0] == 1 and c["nfe"][1] <= 3
    row = evaluate_run(run, 40, 0, PIXEL_NET, spec=run.method.sampling_spec(steps=sampler.steps_for_nfe(3)))
    assert c["fid"][1] == row[f"fid_{PIXEL_NET}"] and c["is"][1] == row[f"is_{PIXEL_NET}"]
    draw_fid_nfe(d, str(tmp_path / "32.png"))
    assert (tmp_path / "32.png").stat().st_size > 10_000
