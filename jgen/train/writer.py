"""Metrics to metrics.jsonl and TensorBoard, pictures to PNG: the loop's only outputs besides checkpoints.

metrics.jsonl is strict JSON, one object per line: a non-finite value (NaN, inf) is written as `null`. When a run
reopens, `repair_metrics` drops a torn last line (a kill during a write) and every row past the step the run resumes
from, so an interrupted-and-resumed run's file equals an uninterrupted one's (timing fields aside).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time

import jax
import numpy as np

from jgen.viz import save_png

log = logging.getLogger("jgen")


def grid_path(workdir: str, name: str, step: int) -> str:
    """Where the loop writes the image grid `name` of `step`: <workdir>/samples/<name>_step_XXXXXXX.png."""
    return os.path.join(workdir, "samples", f"{name}_step_{int(step):07d}.png")


class MetricWriter:
    """Appends {"step", "split", <name>: value} rows to <workdir>/metrics.jsonl and the same scalars to TensorBoard.

    Only process 0 writes. TensorBoard tags are "<split>/<name>".
    """

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.active = jax.process_index() == 0
        self._tb = None
        if self.active:
            from tensorboardX import SummaryWriter  # local: heavy (protobuf); only process 0 writes

            self._tb = SummaryWriter(workdir)
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")

    def write(self, step: int, split: str, scalars: dict) -> None:
        if not self.active:
            return
        row = {"step": int(step), "split": split, "time": round(time.time(), 3)}
        row.update({k: _finite_or_none(v) for k, v in scalars.items()})
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        for k, v in scalars.items():
            self._tb.add_scalar(f"{split}/{k}", float(v), int(step))
        self._tb.flush()

    def write_images(self, step: int, images: dict[str, np.ndarray]) -> list[str]:
        """Save each named uint8 grid as samples/<name>_step_XXXXXXX.png; also to TensorBoard."""
        paths = []
        if not self.active:
            return paths
        for name, img in images.items():
            path = grid_path(self.workdir, name, step)
            save_png(path, img)
            paths.append(path)
            self._tb.add_image(name, img if img.ndim == 3 else img[..., None], int(step), dataformats="HWC")
        return paths

    def close(self) -> None:
        if self.active:
            self._jsonl.close()
            self._tb.close()


def _finite_or_none(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _parse_lines(text: str, path: str) -> tuple[list[dict], int]:
    """(rows of the metrics file `path` holds as `text`, the number of lines that are not rows). A torn last line (a
    kill during a write) is left out silently; any other line that is not a JSON row is left out with a warning
    naming the file and the line."""
    lines = text.split("\n")
    rows, bad = [], 0
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or "step" not in row or "split" not in row:
                raise ValueError("not a metrics row")
            rows.append(row)
        except ValueError:  # json.JSONDecodeError is one
            bad += 1
            if i < len(lines) - 1 and any(rest.strip() for rest in lines[i + 1 :]):
                log.warning("%s:%d is not a JSON metrics row (a torn or edited line); skipped it", path, i + 1)
    return rows, bad


def repair_metrics(workdir: str, resume_step: int) -> int:
    """Rewrite <workdir>/metrics.jsonl without lines that are not rows (a torn last line) and without rows past
    `resume_step` (they are written again by the resumed run). Returns the number of rows dropped."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path) or jax.process_index() != 0:
        return 0
    with open(path) as f:
        text = f.read()
    rows, bad = _parse_lines(text, path)
    keep = [r for r in rows if r["step"] <= resume_step]
    if len(keep) == len(rows) and not bad and (not text or text.endswith("\n")):
        return 0
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in keep)
    os.replace(tmp, path)
    return len(rows) - len(keep)


def sample_grids(workdir: str, name: str = "samples") -> dict[int, str]:
    """step -> path of each <workdir>/samples/<name>_step_XXXXXXX.png grid `write_images` wrote, in step order."""
    folder = os.path.join(workdir, "samples")
    if not os.path.isdir(folder):
        return {}
    pattern = re.compile(re.escape(name) + r"_step_(\d+)\.png")
    found = {int(m.group(1)): os.path.join(folder, f) for f in os.listdir(folder) if (m := pattern.fullmatch(f))}
    return dict(sorted(found.items()))


def read_metrics(workdir: str, split: str | None = None) -> list[dict]:
    """Rows of <workdir>/metrics.jsonl, optionally of one split ("train", "eval", ...); a torn last line is skipped."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows, _ = _parse_lines(f.read(), path)
    return [r for r in rows if split is None or r["split"] == split]
