"""Evaluation and the landscape of approaches: chart 26 (quality metrics throughout training, every image family).

Sample-quality rows are what the loop writes every `eval.sample_metrics_every` steps (split "sample_quality":
FID, IS, precision, recall of EMA samples under the run's `eval.feature_net`, keys `<metric>_<net>`).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from jgen.figures.common import MissingData, new_figure, save
from jgen.run import read_config
from jgen.train.writer import read_metrics

QUALITY_METRICS = (("fid", "FID (lower is better)"), ("is", "Inception Score (higher is better)"),
                   ("precision", "precision: samples on the data manifold"),
                   ("recall", "recall: data covered by the samples"))


# -- 26: quality metrics throughout training ---------------------------------------------------------------------
def quality_curves_data(runs: Mapping[str, str]) -> dict:
    """Chart 26's data: for each run with sample-quality rows, {"net": its feature net, "step": [R], and per
    metric of QUALITY_METRICS an array [R] (nan where a row lacks it, e.g. IS under a net without classes)}; and
    "without": the runs that log none. MissingData when no run logs any."""
    curves, without = {}, []
    for name, workdir in runs.items():
        net = read_config(workdir).eval.feature_net
        rows = [r for r in read_metrics(workdir, "sample_quality") if f"fid_{net}" in r]
        if not rows:
            without.append(name)
            continue
        curves[name] = {"net": net, "step": np.array([r["step"] for r in rows]),
                        **{m: np.array([np.nan if r.get(f"{m}_{net}") is None else r[f"{m}_{net}"] for r in rows])
                           for m, _ in QUALITY_METRICS}}
    if not curves:
        raise MissingData(f"none of the runs {sorted(runs)} logs sample quality during training: train them with "
                          "--config.eval.sample_metrics_every=<steps> (e.g. 500; needs the MNIST classifier)")
    return {"curves": curves, "without": without}


def draw_quality_curves(data: dict, path: str) -> None:
    curves = data["curves"]
    plt, fig = new_figure(11, 7.5)
    axes = fig.subplots(2, 2).ravel()
    nets = sorted({c["net"] for c in curves.values()})
    for ax, (metric, title) in zip(axes, QUALITY_METRICS):
        for name, c in curves.items():
            if np.any(np.isfinite(c[metric])):
                ax.plot(c["step"], c[metric], "o-", ms=3, label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        if metric == "fid":
            ax.set_yscale("log")
        if metric in ("precision", "recall"):
            ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    note = f"; no sample-quality rows in {', '.join(data['without'])}" if data["without"] else ""
    fig.suptitle(f"26 Quality metrics throughout training (features: {', '.join(nets)}{note})", fontsize=11)
    fig.tight_layout()
    save(fig, path)
