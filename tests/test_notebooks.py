"""Every notebook's code runs top to bottom (shortened: fewer steps, a temporary workdir)."""

import glob
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, tmp_path):
    with open(path) as f:
        nb = json.load(f)
    code = "\n\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    code = code.replace("config.train.steps = 300", "config.train.steps = 20")
    code = code.replace("config.train.eval_every = 300", "config.train.eval_every = 20\n"
                        "config.train.num_eval_examples = 250\nconfig.method.eval_iw_samples = 1\n"
                        "config.train.sample_every = 0")
    code = code.replace('"runs/', f'"{tmp_path}/')
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": ROOT, "MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert os.path.exists(tmp_path / "notebook_vae" / "config.json")


def test_there_is_a_notebook():
    assert NOTEBOOKS
