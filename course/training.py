"""`python -m course --train_missing`: train every run the charts need that is not finished, then draw.

The plan reads the same registry as the skip messages (`CHARTS[i].runs`, `common.RUNS`, `common.train_argv`), so a
run is made by exactly the command `python -m course` prints for it. Runs come in dependency order (a run's `built_on`
runs first, e.g. ldm_autoencoder before ldm_mnist); finished runs are left alone; an unfinished one is resumed by
the same command (the loop restarts from its newest checkpoint). Each run trains in a child process with its output
shown as it comes; an interrupted or failed run stops the plan with the child's exit code, and a rerun picks up
there.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from course.common import (
    MNIST_CLASSIFIER,
    RUNS,
    classifier_argv,
    classifier_missing,
    run_missing,
    shell_command,
    train_argv,
)
from course.registry import CHARTS, needs_classifier


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One run to train: its name, why it is needed now (e.g. "no run directory", "unfinished (step 40 of 100)")
    and the arguments after `python` that make or resume it."""

    name: str
    why: str
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        return shell_command(self.argv)


def needed_runs(ids: Sequence[int]) -> list[str]:
    """Every run the charts `ids` read (all of an `any_of` chart's runs too), each after the runs it is built on,
    without repeats, in the charts' order."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for _, dep in RUNS[name].built_on:
            visit(dep)
        order.append(name)

    for i in ids:
        for name in CHARTS[i].runs:
            visit(name)
    return order


def training_plan(ids: Sequence[int], runs_dir: str) -> list[PlannedRun]:
    """The runs among `needed_runs(ids)` that are not finished under `runs_dir`, in the order they must train; first
    the MNIST classifier when it is not trained and a planned run or one of the charts scores samples with it."""
    plan = []
    for name in needed_runs(ids):
        why = run_missing(name, os.path.join(runs_dir, name))
        if why:
            plan.append(PlannedRun(name, why, tuple(train_argv(name, runs_dir))))
    planned = [p.name for p in plan]
    if any(needs_classifier(CHARTS[i], planned) for i in ids) and (why := classifier_missing()):
        plan.insert(
            0, PlannedRun(MNIST_CLASSIFIER, f"the feature network that scores samples: {why}", tuple(classifier_argv()))
        )
    return plan


def run_child(argv: Sequence[str]) -> int:
    """Run `python argv...` with this interpreter, its output going straight to ours; its exit code. On Ctrl-C (which
    the child receives too, and answers by saving a checkpoint) wait for it to finish before returning its code."""
    proc = subprocess.Popen([sys.executable, *argv])
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue  # the child got the same SIGINT: let it checkpoint and stop, then report its exit code


def train_missing(
    ids: Sequence[int],
    runs_dir: str,
    log: Callable[[str], None] = print,
    run: Callable[[Sequence[str]], int] | None = None,
) -> int:
    """Train the unfinished runs of `training_plan(ids, runs_dir)` one after the other with `run` (default:
    `run_child`), with progress lines; 0 when all finished, else the exit code of the run that stopped
    (interrupted: rerun to resume)."""
    run = run or run_child
    plan = training_plan(ids, runs_dir)
    if not plan:
        log(f"every run the charts need is finished under {runs_dir}/")
        return 0
    log(f"training {len(plan)} run(s) the charts need: {', '.join(p.name for p in plan)}")
    for k, p in enumerate(plan, 1):
        log(f"[train {k}/{len(plan)}] {p.name} ({p.why}): {p.command}")
        t0 = time.perf_counter()
        code = run(p.argv)
        minutes = (time.perf_counter() - t0) / 60
        if code != 0:
            log(
                f"[train {k}/{len(plan)}] {p.name} stopped with exit code {code} after {minutes:.1f} min; "
                f"rerun the same command to resume it and train the rest"
            )
            return code
        log(f"[train {k}/{len(plan)}] {p.name} finished in {minutes:.1f} min")
    return 0
