"""EDM against eps at equal training budget, and guidance variants, measured the way `jgen eval` measures.

    python benchmarks/edm_study.py samplers --workdir runs/edm_mnist --rows "heun:18;dpm_solver_sde:18" --seeds 0,1,2 \
        --out docs/figures/edm_study
    python benchmarks/edm_study.py guidance --workdir runs/edm_mnist --guide_step 500 --weights 1,1.5,2,3 \
        --interval 0.28,2.9 --rows dpm_solver:18 --seeds 0 --out docs/figures/edm_study

Every row is `jgen eval --num_samples N --seed S` in one process (`jgen.run.evaluate_run` on the run's EMA
parameters, class-balanced labels, FID and IS in the run's feature net's space against the test split), one
per seed, so that a sampler compiles once for all its seeds. A row is SAMPLER:STEPS[:key=value,...] as in
benchmarks/diffusion_fid.py (keys clip, spacing, order, guidance, eta, s_churn, s_tmin, s_tmax, s_noise); SAMPLER
`-` is the method's own sampling (the few-step methods: `-:2` is two network evaluations).
`samplers` evaluates each row; `guidance` evaluates each row at each weight as plain classifier-free guidance,
CFG in the noise-level interval and autoguidance by the run's checkpoint at --guide_step.
Finished rows are appended to OUT/results.jsonl at once and a rerun skips them; `table` prints the Markdown table
(mean +- std over seeds) and `plot` draws OUT/guidance.png (FID and IS against the weight).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.diffusion_fid import parse_row  # noqa: E402
from jgen.run import attach_guide, evaluate_run, load_run  # noqa: E402


def done_rows(path: str) -> list[dict]:
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []


def evaluate_rows(workdir: str, jobs: list[tuple[str, dict]], seeds: list[int], num: int, out: str) -> None:
    """Each job (label, sampling options) at each seed, appended to OUT/results.jsonl; finished ones skipped."""
    path = os.path.join(out, "results.jsonl")
    os.makedirs(out, exist_ok=True)
    run = load_run(workdir)
    run_name = os.path.basename(os.path.normpath(workdir))
    have = {(r["run"], r["row"], r["seed"]) for r in done_rows(path)}
    guides: dict[int, str] = {}
    for label, options in jobs:
        options = dict(options)
        if "guide_step" in options:
            step = options.pop("guide_step")
            guides.setdefault(step, attach_guide(run, workdir, step))
            options["guide"] = guides[step]
        spec = run.method.sampling_spec(**options)
        for seed in seeds:
            if (run_name, label, seed) in have:
                continue
            row = evaluate_run(run, num, seed, spec=spec)
            net = run.config.eval.feature_net
            keep = {
                "run": run_name,
                "step": row["step"],
                "row": label,
                "seed": seed,
                "nfe": row["nfe"],
                "num_samples": row["num_samples"],
                "fid": row[f"fid_{net}"],
                "is": row[f"is_{net}"],
            }
            with open(path, "a") as f:
                f.write(json.dumps(keep) + "\n")
            print(json.dumps(keep), flush=True)


def table(out: str) -> str:
    """Markdown: one line per (run, row), FID and IS as mean +- sample std over its seeds (one seed: the value)."""

    def spread(v: np.ndarray) -> str:
        return f"{v.mean():.1f} +- {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v[0]:.1f}"

    groups: dict[tuple[str, str], list[dict]] = {}
    for r in done_rows(os.path.join(out, "results.jsonl")):
        groups.setdefault((r["run"], r["row"]), []).append(r)
    lines = ["| run | sampling | NFE | seeds | FID | IS |", "|---|---|---|---|---|---|"]
    for (run, row), rs in groups.items():
        fid, isc = np.array([r["fid"] for r in rs]), np.array([r["is"] for r in rs])
        lines.append(
            f"| {run} (step {rs[0]['step']}) | `{row}` | {rs[0]['nfe']} | {len(rs)} | {spread(fid)} | {spread(isc)} |"
        )
    return "\n".join(lines)


def plot(out: str) -> str:
    """OUT/guidance.png: FID and IS against the guidance weight, one line per guidance kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[float, list[dict]]] = {}
    for r in done_rows(os.path.join(out, "results.jsonl")):
        if "|w=" in r["row"]:
            kind, w = r["row"].rsplit("|w=", 1)
            series.setdefault(kind, {}).setdefault(float(w), []).append(r)
    shared = {w: rs for kind, by_w in series.items() if kind.endswith(" conditional") for w, rs in by_w.items()}
    series = {kind: {**shared, **by_w} for kind, by_w in series.items() if not kind.endswith(" conditional")}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for kind, by_w in sorted(series.items()):
        ws = sorted(by_w)
        for ax, key in zip(axes, ("fid", "is")):
            vals = [np.mean([r[key] for r in by_w[w]]) for w in ws]
            ax.plot(ws, vals, marker="o", label=kind)
    for ax, name in zip(axes, ("FID (mnist_classifier)", "IS (mnist_classifier)")):
        ax.set_xlabel("guidance weight w")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "guidance.png")
    fig.savefig(path, dpi=120)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["samplers", "guidance", "table", "plot"])
    p.add_argument("--workdir")
    p.add_argument("--rows", default="", help="SAMPLER:STEPS[:key=value,...] rows separated by ';'")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--num", type=int, default=1000)
    p.add_argument("--weights", default="1,1.5,2,3")
    p.add_argument("--interval", default="0.28,2.9", help="the guidance interval lo,hi in s = sigma / alpha")
    p.add_argument("--guide_step", type=int, default=None, help="autoguidance: the run's checkpoint that guides")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    rows = [r for r in a.rows.split(";") if r]
    if a.what == "samplers":
        jobs = []
        for row in rows:
            sampler, steps, opts = parse_row(row)
            jobs.append((row, {**({} if sampler == "-" else {"sampler": sampler}), "steps": steps, **opts}))
        evaluate_rows(a.workdir, jobs, seeds, a.num, a.out)
    elif a.what == "guidance":
        lo, hi = (float(v) for v in a.interval.split(","))
        jobs = []
        for row in rows:
            sampler, steps, opts = parse_row(row)
            base = {"sampler": sampler, "steps": steps, **opts}
            for w in (float(v) for v in a.weights.split(",")):
                if w == 1.0:  # every kind is the conditional model itself there: one row, on every curve
                    jobs.append((f"{row} conditional|w=1", {**base, "guidance": 1.0}))
                    continue
                jobs.append((f"{row} CFG|w={w:g}", {**base, "guidance": w}))
                jobs.append(
                    (f"{row} CFG in ({lo:g}, {hi:g}]|w={w:g}", {**base, "guidance": w, "guidance_interval": (lo, hi)})
                )
                if a.guide_step is not None:
                    jobs.append(
                        (
                            f"{row} autoguidance by step {a.guide_step}|w={w:g}",
                            {**base, "guidance": w, "guide_step": a.guide_step},
                        )
                    )
        evaluate_rows(a.workdir, jobs, seeds, a.num, a.out)
    elif a.what == "table":
        print(table(a.out))
    else:
        print(plot(a.out))


if __name__ == "__main__":
    main()
