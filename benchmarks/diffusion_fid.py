"""Sample quality against network evaluations on a trained diffusion run: what closes the gap to ancestral DDPM.

    python benchmarks/diffusion_fid.py --workdir runs/ddpm_mnist --plan gap --num 1000
    python benchmarks/diffusion_fid.py --workdir runs/ddpm_mnist --plan nfe --num 1000 --out runs/ddpm_mnist/nfe
    python benchmarks/diffusion_fid.py --workdir runs/ddpm_mnist --rows "dpm_solver:20:spacing=karras,clip=0"

Every row draws `--num` class-balanced samples (labels 0, 1, ..., 9, 0, ...) with the same keys, from the run's
EMA parameters, and scores them against as many test images with the MNIST classifier's features (FID,
precision, recall; `jgen.metrics.quality.images_quality`), taken evenly across the split. A row is
SAMPLER:STEPS[:key=value,...] with keys spacing, guidance, clip (0/1: clip the x0 prediction to [-1, 1]), eta,
order, s_churn, s_tmin, s_tmax, s_noise.

  --plan gap   the suspects for the deterministic samplers' gap to DDPM-1000 (issue 15), one change per row:
               the old terminal grid (DDIM 'trailing' spacing), x0 clipping, the spacing, guidance, and
               stochastic against deterministic sampling at the same NFE
  --plan nfe   DDPM-1000, then every sampler (--samplers) at each NFE budget (--budgets, in that order; the
               multi-stage samplers at the grid closest below), each with the run's own clipping and guidance;
               with --out a Markdown table and a PNG of FID against NFE

With --out, every finished row is appended to OUT/results.jsonl at once, and a rerun skips the rows already there
(an interrupted sweep loses at most the row it was drawing); the table and the PNG cover all rows in the file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jgen.diffusion.samplers import steps_for_nfe  # noqa: E402
from jgen.sampling import balanced_labels, generate  # noqa: E402

GAP_PLAN = [
    "ddpm:1000",
    "ddpm:1000:clip=0",
    "dpm_solver:20:spacing=trailing",  # the pre-fix grid (ends at t = 1/20), clipping as configured
    "dpm_solver:20",  # grid to t_min, logsnr_uniform, clipping as configured
    "dpm_solver:20:clip=0",
    "dpm_solver:20:spacing=time_uniform,clip=0",
    "dpm_solver:20:spacing=karras,clip=0",
    "dpm_solver:50:clip=0",
    "ddim:50:spacing=trailing",
    "ddim:50:clip=0",
    "ddim:50:eta=1,clip=0",
    "ddpm:50:clip=0",
    "dpm_solver_sde:20:clip=0",
    "dpm_solver_sde:50:clip=0",
    "heun:25:clip=0,s_churn=20,s_tmin=0.05,s_tmax=50",
    "dpm_solver:20:clip=0,guidance=1.5",
    "dpm_solver:20:clip=0,guidance=2",
]
NFE_SAMPLERS = (
    "ddim",
    "dpm_solver",
    "dpm_solver_3m",
    "dpm_solver_2s",
    "dpm_solver_3s",
    "unipc",
    "euler",
    "heun",
    "dpm_solver_sde",
    "ddpm",
)
NFE_BUDGETS = (5, 10, 15, 20, 50, 100)
FLOATS = ("guidance", "eta", "s_churn", "s_tmin", "s_tmax", "s_noise")


def parse_row(row: str) -> tuple[str, int, dict]:
    """'SAMPLER:STEPS[:k=v,...]' -> (sampler, steps, keyword options for Diffusion.generate)."""
    parts = row.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"row {row!r}: expected SAMPLER:STEPS[:key=value,...]")
    opts: dict = {}
    for item in parts[2].split(",") if len(parts) == 3 and parts[2] else []:
        key, _, value = item.partition("=")
        if key == "clip":
            opts["clip_denoised"] = bool(int(value))
        elif key == "spacing":
            opts["spacing"] = value
        elif key == "order":
            opts["order"] = int(value)
        elif key in FLOATS:
            opts[key] = float(value)
        else:
            raise ValueError(f"row {row!r}: unknown option {key!r}; allowed: clip, spacing, order, {FLOATS}")
    return parts[0], int(parts[1]), opts


def nfe_plan(
    samplers: tuple[str, ...] = NFE_SAMPLERS, budgets: tuple[int, ...] = NFE_BUDGETS, reference: int = 1000
) -> list[str]:
    """DDPM-`reference` (none if 0), then for each budget every sampler at the step count whose NFE is closest at
    or below it."""
    rows = [f"ddpm:{reference}"] if reference else []
    for nfe in budgets:
        for name in samplers:
            row = f"{name}:{steps_for_nfe(name, nfe)}"
            if row not in rows:
                rows.append(row)
    return rows


def generate_row(method, state, sampler: str, steps: int, opts: dict, num: int, seed: int, batch: int):
    """(images [num, H, W, C] in [0, 1], NFE per image) through jgen's one generation path: class-balanced labels,
    the same keys for every row."""
    images, info = generate(
        method,
        state.ema_params,
        state.model_state,
        num,
        method.sampling_spec(sampler=sampler, steps=steps, **opts),
        seed=seed,
        labels=balanced_labels(num, method.num_classes),
        batch_size=batch,
    )
    return images, info.nfe_per_image


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True)
    p.add_argument("--plan", choices=("gap", "nfe"), default=None)
    p.add_argument("--rows", default=None, help="';'-separated rows SAMPLER:STEPS[:k=v,...] (instead of --plan)")
    p.add_argument("--num", type=int, default=1000, help="samples per row (and test images)")
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="directory for results.jsonl, table.md and (nfe plan) fid_vs_nfe.png")
    p.add_argument("--samplers", default=",".join(NFE_SAMPLERS), help="nfe plan: comma-separated samplers")
    p.add_argument("--budgets", default=",".join(map(str, NFE_BUDGETS)), help="nfe plan: NFE budgets, in run order")
    p.add_argument(
        "--reference", type=int, default=1000, help="nfe plan: steps of the ancestral DDPM reference row (0: none)"
    )
    args = p.parse_args()

    import jgen.methods.diffusion  # noqa: F401  (registers the method)
    from jgen.data import get_source
    from jgen.metrics.quality import images_quality
    from jgen.run import load_feature_net, load_run

    if args.rows:
        rows = args.rows.split(";")
    elif args.plan == "gap":
        rows = GAP_PLAN
    elif args.plan == "nfe":
        rows = nfe_plan(tuple(args.samplers.split(",")), tuple(int(b) for b in args.budgets.split(",")), args.reference)
    else:
        p.error("give --plan or --rows")
    parsed = [parse_row(r) for r in rows]  # check every row before any compute
    done: dict[str, dict] = {}
    if args.out and os.path.exists(os.path.join(args.out, "results.jsonl")):
        with open(os.path.join(args.out, "results.jsonl")) as f:
            done = {r["row"]: r for r in map(json.loads, filter(str.strip, f))}
    run = load_run(args.workdir)
    config, method, state = run.config, run.method, run.state
    _, test, _ = get_source(config.data)
    net = load_feature_net("mnist_classifier")
    # an evenly strided subset of the test split: its first images are sorted by class (the embedded MNIST test
    # split's first 500 hold digits 0-4 only), which would score class-balanced samples against half the classes
    idx = np.unique(np.round(np.linspace(0, len(test) - 1, min(args.num, len(test)))).astype(int))
    real = np.stack([test[int(i)]["image"] for i in idx])
    print(
        f"run {args.workdir} step {int(state.step)}; {args.num} samples per row vs {len(real)} test images; "
        f"config guidance {config.method.guidance}, clip_denoised {config.method.clip_denoised}",
        flush=True,
    )
    results = list(done.values())
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    for row, (sampler, steps, opts) in zip(rows, parsed):
        if row in done:
            print(f"| {row} | already in {args.out}/results.jsonl |", flush=True)
            continue
        t0 = time.perf_counter()
        fake, nfe = generate_row(method, state, sampler, steps, opts, args.num, args.seed, args.batch)
        secs = time.perf_counter() - t0
        q = images_quality(real, fake, net, seed=args.seed)
        r = {
            "row": row,
            "sampler": sampler,
            "steps": steps,
            "nfe": nfe,
            "seconds": secs,
            "fid": q["fid_mnist_classifier"],
            "precision": q["precision_mnist_classifier"],
            "recall": q["recall_mnist_classifier"],
        }
        results.append(r)
        print(
            f"| {row} | {nfe} | {r['fid']:.1f} | {r['precision']:.3f} | {r['recall']:.3f} | {secs:.0f} s |", flush=True
        )
        if args.out:
            with open(os.path.join(args.out, "results.jsonl"), "a") as f:
                f.write(json.dumps(r) + "\n")
    table = "| row | NFE | FID | precision | recall | time |\n|---|---|---|---|---|---|\n" + "".join(
        f"| {r['row']} | {r['nfe']} | {r['fid']:.1f} | {r['precision']:.3f} | {r['recall']:.3f} | "
        f"{r['seconds']:.0f} s |\n"
        for r in results
    )
    print("\n" + table)
    if args.out:
        with open(os.path.join(args.out, "table.md"), "w") as f:
            f.write(table)
        if args.plan == "nfe":
            results.sort(key=lambda r: (r["sampler"], r["nfe"]))
            plot_nfe(results, os.path.join(args.out, "fid_vs_nfe.png"))
            pivot = nfe_pivot(results)
            print("\n" + pivot)
            with open(os.path.join(args.out, "fid_by_nfe.md"), "w") as f:
                f.write(pivot)


def _budget(nfe: int) -> int | None:
    """The smallest NFE budget at or above `nfe` (a multi-stage sampler's grid lands at or below its budget)."""
    return next((b for b in NFE_BUDGETS if b >= nfe), None)


def nfe_pivot(results) -> str:
    """Markdown: one row per sampler, one column per NFE budget, FID in each cell (the NFE actually spent in
    brackets where the sampler's stages land below the budget); the ancestral reference rows first."""
    results = [r for r in results if r["row"].count(":") == 1]  # default settings only (rows with options aside)
    refs = [r for r in results if r["sampler"] == "ddpm" and r["steps"] >= 1000]
    rows = [r for r in results if r not in refs and _budget(r["nfe"]) is not None]
    budgets = sorted({_budget(r["nfe"]) for r in rows})
    lines = ["| sampler | " + " | ".join(f"NFE {b}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    lines += [
        f"| ddpm, {r['steps']} steps (reference) | {r['fid']:.1f} at NFE {r['nfe']} |" + " |" * (len(budgets) - 1)
        for r in refs
    ]
    for name in sorted({r["sampler"] for r in rows}):
        cell = {_budget(r["nfe"]): r for r in rows if r["sampler"] == name}
        lines.append(
            f"| {name} | "
            + " | ".join(
                ""
                if b not in cell
                else f"{cell[b]['fid']:.1f}" + ("" if cell[b]["nfe"] == b else f" ({cell[b]['nfe']})")
                for b in budgets
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def plot_nfe(results, path: str) -> None:
    from jgen.viz import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name in sorted({r["sampler"] for r in results}):
        pts = sorted((r["nfe"], r["fid"]) for r in results if r["sampler"] == name and r["steps"] != 1000)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=name)
    ref = [r["fid"] for r in results if r["sampler"] == "ddpm" and r["steps"] == 1000]
    if ref:
        ax.axhline(ref[0], color="gray", ls="--", lw=1, label="DDPM-1000")
    ax.set(xscale="log", yscale="log", xlabel="NFE", ylabel="FID (MNIST classifier)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
