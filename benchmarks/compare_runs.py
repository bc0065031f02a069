"""Are two or more training runs bitwise the same? Their metrics.jsonl (timing fields aside) and final states.

    python benchmarks/compare_runs.py runs/a runs/b [runs/c ...]

Each run is compared with the first: the rows of metrics.jsonl without the wall-clock fields (`time`,
`steps_per_sec`), and the newest checkpoint's parameters, optimizer state and EMA, leaf by leaf, bitwise. Printed
per run: whether the rows are equal, the first row that differs, how many state leaves differ and the largest
absolute difference. Used for the GPU determinism figures (`benchmarks/gpu_checks.sh`, stage determinism).
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    a = p.parse_args()
    if len(a.runs) < 2:
        p.error("give at least two run directories")

    import jax
    import numpy as np

    from jgen.run import load_run
    from jgen.train.writer import read_metrics

    def rows(workdir: str) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in ("time", "steps_per_sec")} for r in read_metrics(workdir)]

    def state(workdir: str):
        s = load_run(workdir).state
        return int(s.step), jax.tree.leaves(jax.tree.map(np.asarray, (s.params, s.opt_state, s.ema_params)))

    ref_rows, (ref_step, ref_leaves) = rows(a.runs[0]), state(a.runs[0])
    print(f"reference {a.runs[0]}: {len(ref_rows)} metrics rows, step {ref_step}, {len(ref_leaves)} state leaves")
    print("| run | metrics rows equal | first differing row | step | state leaves differing | max abs difference |")
    print("|---|---|---|---|---|---|")
    for run in a.runs[1:]:
        r, (step, leaves) = rows(run), state(run)
        first = next((i for i, (x, y) in enumerate(zip(ref_rows, r)) if x != y), None)
        if first is None and len(r) != len(ref_rows):
            first = min(len(r), len(ref_rows))
        differing = [
            np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))
            for x, y in zip(ref_leaves, leaves)
            if x.shape != y.shape or not np.array_equal(x, y)
        ]
        shown = "—" if first is None else f"{first} (step {r[first]['step'] if first < len(r) else '?'})"
        print(
            f"| {os.path.basename(run.rstrip('/'))} | {'yes' if first is None else 'no'} | {shown} | {step} | "
            f"{len(differing)} of {len(leaves)} | {max(differing, default=0.0):.3g} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
