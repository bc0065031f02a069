"""Every notebook runs top to bottom at tiny settings, through its documented parameters.

Mechanism: a notebook's first code cell calls `course.notebook.notebook_params(defaults)`, which replaces defaults by
the values of the JSON object in $JGEN_NOTEBOOK_PARAMS. The test sets that variable and runs the code cells in
order in a fresh namespace of this process, where the tiny runs' compiled programs and the test feature net already
are. The notebook's source is never edited. The course notebooks read the tiny runs of tests/conftest.py.
"""

import glob
import json
import os

import numpy as np
import pytest

from course import CHARTS
from course.notebook import PARAMS_ENV, notebook_params
from jgen.config import InputError
from jgen.viz import pyplot
from tests.conftest import ROOT
from tests.course.tiny_runs import PIXEL_NET

NOTEBOOKS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
TINY = [
    "train.steps=20",
    "train.eval_every=20",
    "train.num_eval_examples=250",
    "method.eval_iw_samples=1",
    "train.sample_every=0",
]


def code_cells(name: str) -> list[str]:
    """The sources of notebook `name`'s code cells, in order."""
    with open(os.path.join(ROOT, "notebooks", name)) as f:
        return ["".join(c["source"]) for c in json.load(f)["cells"] if c["cell_type"] == "code"]


def run_notebook(name: str, params: dict, monkeypatch) -> dict:
    """Run notebook `name`'s code cells with $JGEN_NOTEBOOK_PARAMS = `params`; the namespace they leave."""
    monkeypatch.setenv(PARAMS_ENV, json.dumps(params))
    monkeypatch.chdir(ROOT)  # the notebook changes to the repository root; undone after the test
    namespace = {"__name__": "__main__"}
    try:
        for i, code in enumerate(code_cells(name)):
            exec(compile(code, f"{name}, code cell {i}", "exec"), namespace)
    finally:
        pyplot().close("all")
    return namespace


def drawn(out) -> set[int]:
    """The chart numbers whose PNG is in `out`."""
    files = {p.name for p in out.iterdir()} if out.exists() else set()
    return {i for i, c in CHARTS.items() if c.filename in files}


@pytest.mark.slow  # ~45 s; the README's tour (tests/test_readme.py) trains and samples the same way in make test
def test_quickstart_runs(tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    run_notebook("quickstart.ipynb", {"overrides": TINY, "workdir": workdir}, monkeypatch)
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["train"]["steps"] == 20  # the parameters took effect


def test_gans_notebook_draws_the_gan_charts_of_its_runs(gan_runs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "figs"
    ns = run_notebook("02_gans.ipynb", {"runs": str(gan_runs), "out": str(out)}, monkeypatch)
    assert drawn(out) == {16, 18, 21}
    text = capsys.readouterr().out
    assert f"experiments/gan_toys.py --config experiments/configs/gan_ring.py --workdir {gan_runs}/gan_ring" in text
    assert ns["ring"] is None and ns["dstar"] is None  # the toy runs are missing: the commands are printed instead
    runs = {"gan_mnist": str(gan_runs / "gan_mnist")}
    assert ns["steps"]["table"] == CHARTS[21].extract(runs)["table"]  # the notebook shows the figure functions' data
    np.testing.assert_array_equal(ns["mastery"]["images"], CHARTS[16].extract(runs)["images"])


@pytest.mark.slow  # the tiny AE, VAE and 2-D VAE runs and the charts' programs: about 30 s on 2 cores
def test_autoencoders_notebook(ae_runs, vae_2d_runs, tmp_path, monkeypatch):
    out = tmp_path / "figs"
    ns = run_notebook(
        "01_autoencoders_vaes.ipynb",
        {"runs": str(ae_runs), "out": str(out), "num": 4, "num_codes": 50, "averaging_data": "digits", "num_eval": 50},
        monkeypatch,
    )
    assert drawn(out) == {12, 13, 14, 15}
    assert len(ns["plane"]["codes"]) == 50 and ns["avg"]["half"] == 4  # the tiny settings reached the charts


@pytest.mark.slow  # the tiny diffusion run and three samplers: about 40 s on 2 cores
def test_diffusion_notebook(diffusion_runs, tmp_path, monkeypatch):
    out = tmp_path / "figs"
    ns = run_notebook(
        "03_diffusion.ipynb",
        {
            "runs": str(diffusion_runs),
            "out": str(out),
            "num_times": 21,
            "num_x": 31,
            "reverse_steps": 8,
            "ddpm_steps": 20,
            "guidance_steps": 4,
        },
        monkeypatch,
    )
    assert drawn(out) == {19, 22, 24}  # 27 needs ldm_mnist
    assert ns["guidance"] is None


@pytest.mark.slow  # evaluations, timed sampling and interpolation of four tiny families: about 60 s on 2 cores
def test_evaluation_notebook(gan_runs, diffusion_runs, ae_runs, tmp_path, monkeypatch):
    out = tmp_path / "figs"
    ns = run_notebook(
        "04_evaluation_landscape.ipynb",
        {
            "runs": str(gan_runs),
            "out": str(out),
            "num_samples": 64,
            "copy_samples": 64,
            "timing_num": 8,
            "num_applications": 16,
            "feature_net": PIXEL_NET,
        },
        monkeypatch,
    )
    assert drawn(out) == {17, 23, 26, 28, 30, 31}
    assert {r["run"] for r in ns["landscape"]["rows"]} == {"ae_mnist", "vae_mnist", "gan_mnist", "ddpm_mnist"}


def test_every_notebook_is_tested_and_stored_without_outputs():
    tested = {
        "quickstart.ipynb",
        "01_autoencoders_vaes.ipynb",
        "02_gans.ipynb",
        "03_diffusion.ipynb",
        "04_evaluation_landscape.ipynb",
    }
    assert set(NOTEBOOKS) == tested, "a new notebook needs a test above that runs it at tiny settings"
    for name in NOTEBOOKS:
        with open(os.path.join(ROOT, "notebooks", name)) as f:
            cells = [c for c in json.load(f)["cells"] if c["cell_type"] == "code"]
        assert all(c["outputs"] == [] and c["execution_count"] is None for c in cells), f"{name} has outputs"
        assert any("notebook_params(" in "".join(c["source"]) for c in cells[:2]), f"{name}: no parameters cell"


def test_notebook_params_override_check_and_name_the_bad_value():
    defaults = {"runs": "runs", "num": 10, "scale": 1.0, "flag": False, "net": None}
    env = {PARAMS_ENV: json.dumps({"runs": "tmp", "scale": 2, "net": "pixels"})}
    assert notebook_params(defaults, env) == {"runs": "tmp", "num": 10, "scale": 2.0, "flag": False, "net": "pixels"}
    assert notebook_params(defaults, {}) == defaults
    with pytest.raises(InputError, match=r"unknown parameter\(s\) \['rnus'\].*\['flag', 'net', 'num', 'runs'"):
        notebook_params(defaults, {PARAMS_ENV: '{"rnus": "x"}'})
    with pytest.raises(InputError, match="num=True is a bool"):
        notebook_params(defaults, {PARAMS_ENV: '{"num": true}'})
    with pytest.raises(InputError, match="num='8' is a str"):
        notebook_params(defaults, {PARAMS_ENV: '{"num": "8"}'})
    with pytest.raises(InputError, match="is not JSON"):
        notebook_params(defaults, {PARAMS_ENV: "runs=tmp"})
    with pytest.raises(InputError, match="JSON object"):
        notebook_params(defaults, {PARAMS_ENV: '["tmp"]'})
