"""Charts 16, 18 and 21 on a tiny GAN run, 25 on a short toy experiment: each writes its PNG, and its data are the
run's own files."""

import json

import numpy as np
import pytest
from PIL import Image

from course import CHARTS, draw_charts
from course.gans import (
    detective_data,
    draw_dstar,
    draw_ring_dynamics,
    dstar_data,
    gan_steps_data,
    mastery_data,
    ring_dynamics_data,
)


def _rows(workdir, split):
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


def _png_cell(workdir, step, index, size=8):
    """Image `index` of the 8-per-row grid samples_step_<step>.png, cut out of the file by hand."""
    grid = np.asarray(Image.open(workdir / "samples" / f"samples_step_{step:07d}.png"), np.float32) / 255.0
    r, c = divmod(index, 8)
    return grid[1 + r * (size + 1) : 1 + r * (size + 1) + size, 1 + c * (size + 1) : 1 + c * (size + 1) + size]


def test_chart21_table_is_the_metrics_rows_at_the_requested_steps(gan_runs):
    workdir = gan_runs / "gan_mnist"
    data = gan_steps_data({"gan_mnist": str(workdir)})
    train = {r["step"]: r for r in _rows(workdir, "train")}
    last = max(train)
    # train.log_every=8 with train.log_steps=(1, 10): rows at 1, 8, 10, 16, 24. Steps 0 and 1 are answered by the
    # first row (D is measured before each update), 10 by its own row (the mean over steps 9-10), then the last
    assert sorted(train) == [1, 8, 10, 16, 24]
    assert [r["steps"] for r in data["table"]] == [[0, 1], [10], [last]]
    assert [r["window"] for r in data["table"]] == [(1, 1), (9, 10), (17, 24)]
    for row in data["table"]:
        logged = train[row["step"]]
        assert {k: row[k] for k in ("d_loss", "g_loss", "d_real", "d_fake")} == {
            k: logged[k] for k in ("d_loss", "g_loss", "d_real", "d_fake")
        }
    np.testing.assert_array_equal(data["curve"]["step"], sorted(train))
    np.testing.assert_array_equal(data["curve"]["d_fake"], [train[s]["d_fake"] for s in sorted(train)])
    # samples: the first grid at or after each row's step (grids every 8 steps), cut from the PNG files
    assert list(data["samples"]) == [8, 16, 24]
    np.testing.assert_allclose(data["samples"][16][3, ..., 0], _png_cell(workdir, 16, 3), atol=1e-6)


def test_chart18_and_16_read_the_curves_and_grids(gan_runs):
    workdir = gan_runs / "gan_mnist"
    d18 = detective_data({"gan_mnist": str(workdir)}, num_grids=2)
    train, evals = _rows(workdir, "train"), _rows(workdir, "eval")
    np.testing.assert_array_equal(d18["train"]["d_real"], [r["d_real"] for r in train])
    np.testing.assert_array_equal(d18["eval"]["d_fake"], [r["d_fake"] for r in evals])
    assert [s for s, _ in d18["samples"]] == [8, 24]  # first and last grid
    d16 = mastery_data({"gan_mnist": str(workdir)}, num_images=5)
    np.testing.assert_array_equal(d16["steps"], [8, 16, 24])
    assert d16["images"].shape == (3, 5, 8, 8, 1)
    np.testing.assert_allclose(d16["images"][2, 4, ..., 0], _png_cell(workdir, 24, 4), atol=1e-6)


def test_gan_charts_write_pngs(gan_runs, tmp_path):
    outcomes = draw_charts(str(gan_runs), str(tmp_path), [16, 18, 21], log=lambda _: None)
    assert [(o.chart, o.status) for o in outcomes] == [(16, "drawn"), (18, "drawn"), (21, "drawn")], outcomes
    for i in (16, 18, 21):
        with Image.open(tmp_path / CHARTS[i].filename) as im:
            assert im.size[0] > 500 and im.size[1] > 400


@pytest.mark.slow  # trains the toy's two discriminators: about 10 s of CPU
def test_chart25_is_the_toy_experiments_files(tmp_path):
    from experiments import gan_toys  # local: the toy experiment's script makes the chart's run
    from experiments.configs import gan_dstar

    config = gan_dstar.get_config()
    config.toy.steps, config.toy.hidden, config.toy.batch_size = 100, (16,), 256
    workdir = tmp_path / "gan_dstar"
    gan_toys.run(config, str(workdir))
    d = dstar_data({"gan_dstar": str(workdir)})
    curves = json.loads((workdir / "dstar_curves.json").read_text())
    numbers = json.loads((workdir / "dstar.json").read_text())
    assert len(d["curves"]["loss"]) == len(d["curves"]["loss_equal"]) == 100
    for k in ("x", "d", "d_star", "p_data", "p_g", "loss"):
        np.testing.assert_array_equal(d["curves"][k], curves[k])
    np.testing.assert_allclose(
        d["curves"]["d_star"],  # D* = p_data / (p_data + p_g) on the grid
        curves["p_data"] / (np.asarray(curves["p_data"]) + curves["p_g"]),
        atol=1e-5,
    )
    assert d["numbers"] == numbers and d["jsd"] == pytest.approx((2 * np.log(2) - numbers["optimal_loss"]) / 2)
    draw_dstar(d, str(tmp_path / "25.png"))
    assert (tmp_path / "25.png").stat().st_size > 20_000


@pytest.mark.slow  # trains the ring toy for 200 steps: about 10 s of CPU
def test_chart20_is_the_ring_toys_snapshots(tmp_path):
    from experiments import gan_toys  # local: the toy experiment's script makes the chart's run
    from experiments.configs import gan_ring

    config = gan_ring.get_config()
    config.toy.steps, config.toy.snapshot_every, config.toy.num_eval, config.toy.hidden = 300, 100, 200, (32,)
    workdir = tmp_path / "gan_ring"
    gan_toys.run(config, str(workdir))
    d = ring_dynamics_data({"gan_ring": str(workdir)}, num_shown=2)
    rows = json.loads((workdir / "ring.json").read_text())["rows"]
    with np.load(workdir / "ring_snapshots.npz") as z:
        np.testing.assert_array_equal(d["samples"], z["samples"][[0, 2]])
        np.testing.assert_array_equal(d["d_grid"], z["d_grid"][[0, 2]])
    assert list(d["steps"]) == [100, 300] and d["rows"] == [rows[0], rows[2]]
    assert d["d_grid"].shape[1:] == (len(d["grid_axis"]),) * 2 and d["push"].shape[-1] == 2
    assert 0 <= d["d_grid"].min() and d["d_grid"].max() <= 1
    draw_ring_dynamics(d, str(tmp_path / "20.png"))
    assert (tmp_path / "20.png").stat().st_size > 20_000
