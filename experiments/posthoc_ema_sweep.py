"""FID against the EMA width sigma_rel, reconstructed after training by post-hoc EMA (docs/posthoc_ema.md).

    python experiments/posthoc_ema_sweep.py --workdirs runs/ddpm_s0,runs/ddpm_s1,runs/ddpm_s2 \\
        --sigma_rels 0.02,0.03,0.05,0.07,0.10,0.13,0.17,0.21,0.25 --num_samples 1000 \\
        --results runs/posthoc_ema_sweep.json --out docs/figures/posthoc_ema_fid.png

Each workdir is a run trained with `train.posthoc_ema` (snapshots in ema_snapshots/). For every run and width the
EMA is reconstructed at the newest snapshot (`jgen.run.posthoc_ema.reconstruct_ema`, written under
<workdir>/posthoc_ema/) and scored by `evaluate_run` (the run's feature net, class-balanced samples, seed 0), as is
the run's own EMA (`train.ema_decay`) for reference. Finished rows are kept in --results, so an interrupted sweep
resumes where it stopped. The chart shows the mean over the runs with +- one standard deviation (with several).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jgen.run import evaluate_run, load_run  # noqa: E402
from jgen.run.posthoc_ema import reconstruct_ema  # noqa: E402
from jgen.viz import pyplot  # noqa: E402

OWN = "own_ema"  # the results key of a run's own EMA


def _fid(row: dict) -> float:
    (key,) = [k for k in row if k.startswith("fid_")]
    return float(row[key])


def sweep(workdirs: list[str], sigma_rels: list[float], num_samples: int, results_path: str) -> dict:
    """{workdir: {str(sigma_rel) or OWN: eval row}}, read from and saved to `results_path` after every row."""
    results = {}
    if os.path.exists(results_path):
        with open(results_path) as f:
            results = json.load(f)
    for workdir in workdirs:
        rows = results.setdefault(workdir, {})
        for s in [OWN, *sigma_rels]:
            key = OWN if s == OWN else f"{s:.3f}"
            if key in rows:
                continue
            t0 = time.perf_counter()
            if s == OWN:
                target, extra = workdir, {}
            else:
                made = reconstruct_ema(workdir, s)
                target, extra = made["out"], {"relative_residual": made["relative_residual"]}
            row = evaluate_run(load_run(target), num_samples, seed=0)
            rows[key] = {**row, **extra, "seconds": time.perf_counter() - t0}
            print(f"{workdir} {key}: FID {_fid(row):.3f} ({rows[key]['seconds']:.0f} s)", flush=True)
            tmp = results_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(results, f, indent=2)
            os.replace(tmp, results_path)
    return results


def chart(results: dict, workdirs: list[str], sigma_rels: list[float], stored: tuple, out: str) -> str:
    """The PNG of FID against sigma_rel (mean +- std over the runs) and a Markdown table of the same numbers."""
    fids = np.array([[_fid(results[w][f"{s:.3f}"]) for s in sigma_rels] for w in workdirs])  # [runs, widths]
    own = np.array([_fid(results[w][OWN]) for w in workdirs])
    mean, std = fids.mean(0), fids.std(0, ddof=1) if len(workdirs) > 1 else np.zeros(len(sigma_rels))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    label = "post-hoc EMA (reconstructed)" + (f", mean of {len(workdirs)} runs" if len(workdirs) > 1 else "")
    ax.plot(sigma_rels, mean, "o-", color="C0", label=label)
    if len(workdirs) > 1:
        ax.fill_between(sigma_rels, mean - std, mean + std, color="C0", alpha=0.2, label="+- 1 std over runs")
        for row in fids:
            ax.plot(sigma_rels, row, "-", color="C0", lw=0.6, alpha=0.6)
    ax.axhline(own.mean(), color="C1", ls="--", label="the run's own EMA (train.ema_decay)")
    for s in stored:
        ax.axvline(s, color="0.6", ls=":", lw=1)
    ax.set_xlabel("sigma_rel (EMA width / training length); dotted: the stored profiles")
    ax.set_ylabel("FID (MNIST classifier features)")
    n = results[workdirs[0]][OWN]["num_samples"]
    ax.set_title(f"FID vs EMA length, {len(workdirs)} run(s), {n} samples each")
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    many = len(workdirs) > 1
    lines = [
        "| sigma_rel | "
        + " | ".join(os.path.basename(w.rstrip("/")) for w in workdirs)
        + (" | mean +- std |" if many else " |")
    ]
    lines.append("|---" * (len(workdirs) + 1 + many) + "|")
    for name, col in [*((f"{s:.3f}", fids[:, j]) for j, s in enumerate(sigma_rels)), ("own EMA", own)]:
        summary = f" | {col.mean():.2f} +- {col.std(ddof=1):.2f}" if many else ""
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in col) + summary + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdirs", required=True, help="comma-separated run directories with post-hoc EMA snapshots")
    p.add_argument("--sigma_rels", default="0.02,0.03,0.05,0.07,0.10,0.13,0.17,0.21,0.25")
    p.add_argument("--num_samples", type=int, default=1000)
    p.add_argument("--results", required=True, help="JSON file of the finished rows (resumed from when it exists)")
    p.add_argument("--out", default="docs/figures/posthoc_ema_fid.png")
    a = p.parse_args()
    workdirs = a.workdirs.split(",")
    sigma_rels = [float(s) for s in a.sigma_rels.split(",")]
    results = sweep(workdirs, sigma_rels, a.num_samples, a.results)
    stored = tuple(load_run(workdirs[0]).config.train.posthoc_ema.sigma_rels)
    print(chart(results, workdirs, sigma_rels, stored, a.out))


if __name__ == "__main__":
    main()
