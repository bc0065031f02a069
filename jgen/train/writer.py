"""Metrics to metrics.jsonl and TensorBoard, pictures to PNG: the loop's only outputs besides checkpoints."""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np

from jgen.viz import save_png


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
        row.update({k: float(v) for k, v in scalars.items()})
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
            path = os.path.join(self.workdir, "samples", f"{name}_step_{int(step):07d}.png")
            save_png(path, img)
            paths.append(path)
            self._tb.add_image(name, img if img.ndim == 3 else img[..., None], int(step), dataformats="HWC")
        return paths

    def close(self) -> None:
        if self.active:
            self._jsonl.close()
            self._tb.close()


def read_metrics(workdir: str, split: str | None = None) -> list[dict]:
    """Rows of <workdir>/metrics.jsonl, optionally of one split ("train", "eval", ...)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if split is None or r["split"] == split]
