"""Chart 26 (and the other cross-family charts) on tiny runs: PNGs written, data equal to the runs' files."""

import json

import numpy as np
import pytest

from jgen.figures import CHARTS, MissingData, draw_charts
from jgen.figures.landscape import quality_curves_data
from tests.figures.tiny_runs import PIXEL_NET


def test_chart26_curves_are_the_sample_quality_rows(gan_runs, tmp_path):
    workdir = gan_runs / "gan_mnist"
    rows = [r for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())
            if r["split"] == "sample_quality"]
    data = quality_curves_data({"gan_mnist": str(workdir)})
    c = data["curves"]["gan_mnist"]
    assert c["net"] == PIXEL_NET and data["without"] == []
    np.testing.assert_array_equal(c["step"], [8, 16, 24])
    for m in ("fid", "is", "precision", "recall"):
        np.testing.assert_array_equal(c[m], [r[f"{m}_{PIXEL_NET}"] for r in rows])
    out = draw_charts(str(gan_runs), str(tmp_path), [26], log=lambda _: None)[0]
    assert out.status == "drawn" and "ddpm_mnist" in out.message  # drawn from what exists, the rest named
    assert (tmp_path / CHARTS[26].filename).stat().st_size > 20_000


def test_chart26_without_quality_rows_says_how_to_log_them(tmp_path):
    (tmp_path / "gan_mnist").mkdir()
    (tmp_path / "gan_mnist" / "config.json").write_text(json.dumps({"method": {"name": "gan"}}))
    with pytest.raises(MissingData, match="sample_metrics_every"):
        quality_curves_data({"gan_mnist": str(tmp_path / "gan_mnist")})
