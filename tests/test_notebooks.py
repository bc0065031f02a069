"""Every notebook's code runs top to bottom at tiny settings.

Mechanism (papermill's convention): a notebook's cell tagged "parameters" sets its knobs (CONFIG, OVERRIDES,
WORKDIR); the test runs the code cells with one more cell right after it that sets other values. The notebook's
own source is never edited.
"""

import glob
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
TINY = ["train.steps=20", "train.eval_every=20", "train.num_eval_examples=250", "method.eval_iw_samples=1",
        "train.sample_every=0"]


def notebook_code(path: str, parameters: dict) -> str:
    """The notebook's code cells joined, with `parameters` assigned right after its "parameters" cell."""
    with open(path) as f:
        cells = [c for c in json.load(f)["cells"] if c["cell_type"] == "code"]
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{path}: needs exactly one code cell tagged 'parameters'; found {len(tagged)}")
    injected = "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    sources = ["".join(c["source"]) for c in cells]
    sources.insert(tagged[0] + 1, injected)
    return "\n\n".join(sources)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, tmp_path):
    workdir = str(tmp_path / "run")
    code = notebook_code(path, {"OVERRIDES": TINY, "WORKDIR": workdir})
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": ROOT, "MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr[-3000:]
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["train"]["steps"] == 20  # the injected parameters took effect


def test_parameters_cell_is_required(tmp_path):
    path = tmp_path / "bare.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "source": ["x = 1"]}]}))
    with pytest.raises(ValueError, match="tagged 'parameters'"):
        notebook_code(str(path), {"X": 2})
    assert NOTEBOOKS
