"""Evaluation and the landscape of approaches, charts that set families side by side: 17 (GAN and diffusion), 23 (latent
interpolation in the VAE, the GAN and diffusion), 26 (quality metrics throughout training, every image family),
28 (every family on quality, diversity, speed and likelihood, measured by `jgen.run.evaluate_run`) and 29 (the
trade-offs table, with training stability as the spread of FID over the seed runs of `common.SEED_STEPS`).

Sample-quality rows are what the loop writes every `eval.sample_metrics_every` steps (split "sample_quality":
FID, IS, precision, recall of EMA samples under the run's `eval.feature_net`, keys `<metric>_<net>`).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np

from course.common import (
    SEED_STEPS,
    SEEDS,
    MissingData,
    draw_table,
    metric_rows,
    new_figure,
    pick_test_images,
    save,
    seed_run,
    show_images,
)
from jgen.data import from_model_range
from jgen.methods.base import slerp
from jgen.pipeline import Pipeline
from jgen.run import evaluate_run, load_feature_net, load_run, read_config
from jgen.sampling import balanced_labels, generate
from jgen.train.writer import read_metrics

QUALITY_METRICS = (
    ("fid", "FID (lower is better)"),
    ("is", "Inception Score (higher is better)"),
    ("precision", "precision: samples on the data manifold"),
    ("recall", "recall: data covered by the samples"),
)


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
        curves[name] = {
            "net": net,
            "step": np.array([r["step"] for r in rows]),
            **{
                m: np.array([np.nan if r.get(f"{m}_{net}") is None else r[f"{m}_{net}"] for r in rows])
                for m, _ in QUALITY_METRICS
            },
        }
    if not curves:
        raise MissingData(
            f"none of the runs {sorted(runs)} logs sample quality during training: train them with "
            "--config.eval.sample_metrics_every=<steps> (e.g. 500; needs the MNIST classifier)"
        )
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


# -- 23: latent interpolation --------------------------------------------------------------------------------------
def interpolation_data(
    runs: Mapping[str, str],
    vae: str = "vae_mnist",
    gan: str = "gan_mnist",
    diffusion: str = "ddpm_mnist",
    num: int = 10,
    steps: int = 50,
    seed: int = 0,
) -> dict:
    """Chart 23's data, for whichever of the three runs exist: the two test digits a, b ([H, W, C]; the first and
    last class of `pick_test_images(..., one_per_class=True)`) and strips {run: images [num, H, W, C]}:
    the VAE's posterior means interpolated linearly (`Pipeline.interpolate`), diffusion's DDIM codes (`steps` steps)
    interpolated spherically (`Pipeline.interpolate`, unconditional), and the GAN's generator on the great circle
    between two random latents (`slerp`; a GAN has no encoder, so its ends are not a and b).
    ends_error: {run: mean |pixel error| of the strip's ends against a and b} for the strips that start and end
    at the digits."""
    present = [n for n in (vae, diffusion, gan) if n in runs]
    if not present:
        raise MissingData(f"chart 23 needs one of the runs {vae}, {gan}, {diffusion}")
    first = load_run(runs[present[0]])
    images, _ = pick_test_images(first, 20, one_per_class=True)
    a, b = images[0], images[-1]
    strips, kinds, ends = {}, {}, {}
    for name, kind in (
        (vae, "VAE: linear between posterior means"),
        (diffusion, f"diffusion: DDIM inversion ({steps} steps) + slerp"),
    ):
        if name in runs:
            pipe = Pipeline(first if name == present[0] else load_run(runs[name]))
            kw = {"steps": steps} if name == diffusion else {}
            strips[name] = pipe.interpolate(a, b, num, **kw).astype(np.float32) / 255.0
            kinds[name] = kind
            ends[name] = float((np.abs(strips[name][0] - a).mean() + np.abs(strips[name][-1] - b).mean()) / 2)
    if gan in runs:
        g = first if gan == present[0] else load_run(runs[gan])
        z = g.method.latents(jax.random.PRNGKey(seed), 2)
        x = g.method.generate_model_range(g.state.ema_params["generator"], slerp(z[0], z[1], num))
        strips[gan] = np.asarray(from_model_range(x))
        kinds[gan] = "GAN: slerp between two random latents (no encoder)"
    return {"a": a, "b": b, "strips": strips, "kinds": kinds, "ends_error": ends}


def draw_interpolation(data: dict, path: str) -> None:
    strips = data["strips"]
    plt, fig = new_figure(1.0 * len(next(iter(strips.values()))) + 2.6, 1.45 * len(strips) + 0.9)
    gs = fig.add_gridspec(len(strips), 2, width_ratios=[1.2, len(next(iter(strips.values())))])
    show_images(fig.add_subplot(gs[:, 0]), np.stack([data["a"], data["b"]]), ncol=1, title="a (top), b")
    for i, (name, images) in enumerate(strips.items()):
        ax = fig.add_subplot(gs[i, 1])
        end = f"; ends: mean pixel error {data['ends_error'][name]:.3f}" if name in data["ends_error"] else ""
        show_images(ax, images, ncol=len(images), title=f"{name}: {data['kinds'][name]}{end}")
    fig.suptitle("23 Latent interpolation between the same two test digits")
    save(fig, path)


# -- 17: two approaches ----------------------------------------------------------------------------------------
def _training_seconds(rows: list[dict]) -> float:
    """Wall time of the logged training steps: each row's steps over its steps/s (compilation excluded)."""
    prev, total = 0, 0.0
    for r in rows:
        total += (r["step"] - prev) / r["steps_per_sec"]
        prev = r["step"]
    return total


def two_approaches_data(
    runs: Mapping[str, str],
    gan: str = "gan_mnist",
    diffusion: str = "ddpm_mnist",
    num: int = 20,
    timing_num: int = 64,
    seed: int = 0,
) -> dict:
    """Chart 17's data, GAN beside diffusion: for each, samples [num, H, W, C] with class-balanced labels where the
    model is conditional (labels [num] or None), its train-loss curves {metric: (steps [R], values [R])}, and its
    cost: NFE per image and images/s (`generate(..., timed=True)` of `timing_num` images, compilation excluded),
    training seconds (from the logged steps/s) and steps."""
    out = {}
    for name, keys in ((gan, ("d_loss", "g_loss")), (diffusion, ("loss",))):
        r = load_run(runs[name])
        m = r.method
        labels = balanced_labels(num, m.num_classes)
        images, _ = generate(m, r.state.ema_params, r.state.model_state, num, seed=seed, labels=labels)
        _, cost = generate(
            m,
            r.state.ema_params,
            r.state.model_state,
            timing_num,
            seed=seed + 1,
            labels=balanced_labels(timing_num, m.num_classes),
            timed=True,
        )
        rows = metric_rows(r.workdir, "train", keys)
        out[name] = {
            "method": m.name,
            "images": images,
            "labels": labels,
            "curves": {k: (np.array([row["step"] for row in rows]), np.array([row[k] for row in rows])) for k in keys},
            "nfe": cost.nfe_per_image,
            "images_per_sec": cost.images_per_sec,
            "train_seconds": _training_seconds(metric_rows(r.workdir, "train", ("steps_per_sec",))),
            "steps": r.step,
        }
    return out


def draw_two_approaches(data: dict, path: str) -> None:
    names = list(data)
    plt, fig = new_figure(12, 9)
    gs = fig.add_gridspec(3, len(names), height_ratios=[1, 1.4, 0.5])
    for j, name in enumerate(names):
        d = data[name]
        labels = "unconditional" if d["labels"] is None else "labels 0..9 by column"
        show_images(fig.add_subplot(gs[0, j]), d["images"], ncol=10, title=f"{name} ({d['method']}): {labels}")
        ax = fig.add_subplot(gs[1, j])
        for k, (steps, values) in d["curves"].items():
            ax.plot(steps, values, label=k)
        ax.set_xlabel("training step")
        ax.set_title(f"{name}: training losses", fontsize=9)
        ax.legend(fontsize=8)
        if d["method"] != "gan":
            ax.set_yscale("log")
    rows = [
        [n, data[n]["nfe"], data[n]["images_per_sec"], data[n]["steps"], data[n]["train_seconds"] / 60] for n in names
    ]
    draw_table(
        fig.add_subplot(gs[2, :]),
        ["run", "network calls / image", "images / s (sampling)", "train steps", "train minutes (as logged)"],
        rows,
    )
    fig.suptitle("17 Two approaches: one network call (GAN) against many (diffusion)")
    fig.tight_layout()
    save(fig, path)


# -- 28: the landscape of approaches -------------------------------------------------------------------------------
def _evaluate(run, num_samples: int, seed: int, net, likelihood_images: int) -> dict:
    """Charts 28 and 29's row of one run: `evaluate_run` timed, with the likelihood of a method that computes it on
    demand (the probability-flow ODE) on `likelihood_images` test images; the others keep their evaluations'."""
    on_demand = likelihood_images if "likelihood" in run.method.capabilities else 0
    return evaluate_run(run, num_samples, seed, net, timed=True, likelihood_images=on_demand)


def landscape_data(
    runs: Mapping[str, str],
    num_samples: int = 1000,
    seed: int = 0,
    feature_net: str | None = None,
    likelihood_images: int = 64,
) -> dict:
    """Chart 28's data: one `evaluate_run` row per run (FID, precision, recall, IS, images/s after compilation,
    NFE, bits/dim and whether it is exact or a bound), all under one feature net (default: the first run's
    config.eval.feature_net) against the same test images; a method whose likelihood is computed on demand
    (diffusion's and flow matching's probability-flow ODE) gets it on `likelihood_images` test images."""
    names = list(runs)
    if not names:
        raise MissingData("chart 28 needs at least one image family's run")
    net_name = feature_net or read_config(runs[names[0]]).eval.feature_net
    net = load_feature_net(net_name)
    rows = []
    for name in names:
        row = _evaluate(load_run(runs[name]), num_samples, seed, net, likelihood_images)
        rows.append(
            {
                "run": name,
                "method": row["method"],
                "fid": row[f"fid_{net_name}"],
                "precision": row[f"precision_{net_name}"],
                "recall": row[f"recall_{net_name}"],
                "is": row.get(f"is_{net_name}"),
                "images_per_sec": row["images_per_sec"],
                "nfe": row["nfe"],
                "bits_per_dim": row.get("bits_per_dim"),
                "bits_per_dim_kind": row.get("bits_per_dim_kind"),
            }
        )
    return {"net": net_name, "num_samples": num_samples, "rows": rows}


def draw_landscape(data: dict, path: str) -> None:
    rows = data["rows"]
    plt, fig = new_figure(10, 6.2 + 0.3 * len(rows))
    gs = fig.add_gridspec(2, 1, height_ratios=[5, 0.8 + 0.3 * len(rows)])
    ax = fig.add_subplot(gs[0])
    speed = np.array([r["images_per_sec"] for r in rows])
    sizes = 40 + 260 * np.log10(speed / speed.min() + 1) / np.log10(speed.max() / speed.min() + 1)
    for r, size in zip(rows, sizes):
        ax.scatter(r["recall"], r["fid"], s=size, alpha=0.7)
        bpd = "" if r["bits_per_dim"] is None else f"\n{r['bits_per_dim']:.3g} bits/dim ({r['bits_per_dim_kind']})"
        ax.annotate(f"{r['run']}{bpd}", (r["recall"], r["fid"]), textcoords="offset points", xytext=(8, 4), fontsize=8)
    ax.set_xlabel("recall (diversity: share of test digits near a sample) →")
    ax.set_ylabel("FID (lower is better)")
    ax.set_yscale("log")
    ax.set_xlim(-0.02, 1.02)
    ax.set_title(
        f"quality against diversity; marker area grows with images/s ({data['net']} features, "
        f"{data['num_samples']} samples)",
        fontsize=9,
    )
    header = ["run", "FID", "precision", "recall", "IS", "images/s", "NFE", "bits/dim"]
    cells = [
        [
            r["run"],
            r["fid"],
            r["precision"],
            r["recall"],
            r["is"],
            r["images_per_sec"],
            r["nfe"],
            None if r["bits_per_dim"] is None else f"{r['bits_per_dim']:.3g} ({r['bits_per_dim_kind']})",
        ]
        for r in rows
    ]
    draw_table(fig.add_subplot(gs[1]), header, cells)
    fig.suptitle("28 The landscape of approaches: every family on quality, diversity, speed and likelihood")
    fig.tight_layout()
    save(fig, path)


# -- 32: quality against network evaluations ------------------------------------------------------------------
NFE_BUDGETS = (1, 2, 4, 8, 12, 20)


def fid_nfe_data(
    runs: Mapping[str, str],
    budgets: tuple[int, ...] = NFE_BUDGETS,
    num_samples: int = 1000,
    seed: int = 0,
    feature_net: str | None = None,
) -> dict:
    """Chart 32's data: for each run whose method samples iteratively (`Method.spec_for_nfe` is not None), one
    `evaluate_run` per budget with its configured sampler on the largest grid within it: {"curves": {run: {"nfe":
    [K] spent, "fid": [K], "is": [K], "sampling": the configured sampler or the method}}, "fixed": the runs whose
    cost per image is fixed}, all under one feature net (default: the first run's)."""
    names = list(runs)
    if not names:
        raise MissingData("chart 32 needs at least one run that samples iteratively")
    net_name = feature_net or read_config(runs[names[0]]).eval.feature_net
    net = load_feature_net(net_name)
    curves, fixed = {}, []
    for name in names:
        run = load_run(runs[name])
        if run.method.spec_for_nfe(1) is None:
            fixed.append(name)
            continue
        rows = [evaluate_run(run, num_samples, seed, net, spec=run.method.spec_for_nfe(k)) for k in budgets]
        curves[name] = {
            "nfe": np.array([r["nfe"] for r in rows]),
            "fid": np.array([r[f"fid_{net_name}"] for r in rows]),
            "is": np.array([np.nan if r.get(f"is_{net_name}") is None else r[f"is_{net_name}"] for r in rows]),
            "sampling": run.config.method.get("sampler", run.method.name),
        }
    if not curves:
        raise MissingData(f"none of the runs {names} samples iteratively (their cost per image is fixed)")
    return {"net": net_name, "num_samples": num_samples, "curves": curves, "fixed": fixed}


def draw_fid_nfe(data: dict, path: str) -> None:
    from matplotlib.ticker import ScalarFormatter

    plt, fig = new_figure(12, 5)
    axes = fig.subplots(1, 2)
    for name, c in data["curves"].items():
        for ax, key in zip(axes, ("fid", "is")):
            ax.plot(c["nfe"], c[key], "o-", ms=4, label=f"{name} ({c['sampling']})")
    for ax, title in zip(axes, ("FID (lower is better)", "Inception Score (higher is better)")):
        ax.set_xscale("log")
        ticks: list[int] = []
        for n in sorted({int(n) for c in data["curves"].values() for n in c["nfe"]}, reverse=True):
            if not ticks or 1.15 * n <= ticks[-1]:  # 19 beside 20 or 11 beside 12 would print over each other
                ticks.append(n)
        ax.set_xticks(ticks)
        ax.get_xaxis().set_major_formatter(ScalarFormatter())
        ax.set_xlabel("network evaluations per image (NFE)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7)
    note = f"; fixed cost, not drawn: {', '.join(data['fixed'])}" if data["fixed"] else ""
    fig.suptitle(
        f"32 Quality against network evaluations ({data['net']} features, {data['num_samples']} samples{note})",
        fontsize=11,
    )
    fig.tight_layout()
    save(fig, path)


# -- 29: trade-offs ("no free lunch") --------------------------------------------------------------------------------
def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def tradeoffs_data(
    runs: Mapping[str, str],
    families=tuple(SEED_STEPS),
    seeds=SEEDS,
    num_samples: int = 500,
    seed: int = 0,
    feature_net: str | None = None,
    likelihood_images: int = 64,
) -> dict:
    """Chart 29's data from the seed runs `runs[seed_run(family, s)]` of each family:

    per_run: one row per seed run: `evaluate_run(run, num_samples, seed, net, timed=True)`'s FID, recall, bits/dim
      (and kind), images/s, NFE, plus the run's training seconds (its logged steps over steps/s, compilation
      excluded) and steps.
    families: one row per family: the means over its seeds of those values, and the FID's spread over the seeds:
      fid_std (sample std, ddof = 1) and fid_range (max - min) -- the training-stability column.
    All under one feature net (default: the first run's config.eval.feature_net) against the same test images; a
    method whose likelihood is computed on demand (diffusion's probability-flow ODE) gets it on `likelihood_images`
    test images, the others report the bits/dim of their last evaluation."""
    names = [seed_run(f, s) for f in families for s in seeds]
    missing = [n for n in names if n not in runs]
    if missing:
        raise MissingData(f"chart 29 needs the seed runs {missing}")
    net_name = feature_net or read_config(runs[names[0]]).eval.feature_net
    net = load_feature_net(net_name)
    per_run, summary = [], []
    for family in families:
        rows = []
        for s in seeds:
            workdir = runs[seed_run(family, s)]
            run = load_run(workdir)
            ev = _evaluate(run, num_samples, seed, net, likelihood_images)
            rows.append(
                {
                    "run": seed_run(family, s),
                    "family": family,
                    "seed": s,
                    "method": ev["method"],
                    "fid": ev[f"fid_{net_name}"],
                    "recall": ev[f"recall_{net_name}"],
                    "bits_per_dim": ev.get("bits_per_dim"),
                    "bits_per_dim_kind": ev.get("bits_per_dim_kind"),
                    "images_per_sec": ev["images_per_sec"],
                    "nfe": ev["nfe"],
                    "steps": run.step,
                    "train_seconds": _training_seconds(metric_rows(workdir, "train", ("steps_per_sec",))),
                }
            )
        per_run += rows
        fids = np.array([r["fid"] for r in rows])
        summary.append(
            {
                "family": family,
                "method": rows[0]["method"],
                "seeds": len(rows),
                "steps": rows[0]["steps"],
                "fid": float(fids.mean()),
                "fid_std": float(fids.std(ddof=1)),
                "fid_range": float(fids.max() - fids.min()),
                "recall": _mean(r["recall"] for r in rows),
                "bits_per_dim": _mean(r["bits_per_dim"] for r in rows),
                "bits_per_dim_kind": rows[0]["bits_per_dim_kind"],
                "images_per_sec": _mean(r["images_per_sec"] for r in rows),
                "nfe": rows[0]["nfe"],
                "train_seconds": _mean(r["train_seconds"] for r in rows),
            }
        )
    return {"net": net_name, "num_samples": num_samples, "families": summary, "per_run": per_run}


def draw_tradeoffs(data: dict, path: str) -> None:
    fams = data["families"]
    plt, fig = new_figure(12, 5.5 + 0.35 * len(fams))
    gs = fig.add_gridspec(2, 1, height_ratios=[3.2, 0.9 + 0.35 * len(fams)])
    ax = fig.add_subplot(gs[0])
    for i, f in enumerate(fams):
        fids = [r["fid"] for r in data["per_run"] if r["family"] == f["family"]]
        ax.plot([i] * len(fids), fids, "o", alpha=0.7)
        ax.errorbar(i + 0.15, f["fid"], yerr=f["fid_std"], fmt="_", color="black", capsize=4)
    ax.set_xticks(range(len(fams)), [f["family"] for f in fams])
    ax.set_yscale("log")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title(
        f"FID of each seed run (dots) and mean ± std over seeds: the spread is training stability "
        f"({data['net']} features, {data['num_samples']} samples)",
        fontsize=9,
    )
    header = [
        "family",
        "train steps",
        "FID",
        "FID std / range",
        "recall",
        "bits/dim",
        "images/s",
        "NFE",
        "train minutes",
    ]
    cells = [
        [
            f["family"],
            f["steps"],
            f["fid"],
            f"{f['fid_std']:.3g} / {f['fid_range']:.3g} (n={f['seeds']})",
            f["recall"],
            None if f["bits_per_dim"] is None else f"{f['bits_per_dim']:.3g} ({f['bits_per_dim_kind']})",
            f["images_per_sec"],
            f["nfe"],
            f["train_seconds"] / 60,
        ]
        for f in fams
    ]
    draw_table(
        fig.add_subplot(gs[1]),
        header,
        cells,
        title="quality (FID, mean over seeds), stability (its spread over "
        "seeds), diversity (recall), likelihood (bits/dim, exact or bound), sampling speed (images/s after "
        "compilation, NFE), training time (logged steps/s)",
    )
    fig.suptitle(
        "29 Trade-offs (no free lunch): quality, diversity, likelihood, speed, training time and stability, measured"
    )
    fig.tight_layout()
    save(fig, path)
