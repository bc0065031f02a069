"""A second table of bad inputs, run as a user runs them: every row goes through `python -m jgen`'s main (or
`python -m course`'s, or a public function) in a subprocess, from a fresh empty folder. Each row must answer with
one line on stderr naming the value, the right exit code (2; the exception type for the Python API), and must
create or change nothing: not in its folder, not in the run directories it names.

All rows share one subprocess (`tests/bad_input_driver.py`) so that the table costs one Python and JAX start.
"""

import json
import os
import subprocess
import sys

import pytest

from jgen.run import train_and_evaluate
from tests.conftest import ROOT, tiny_config

TINY = os.path.join(ROOT, "tests", "tiny_vae_config.py")
CONFIG_FILES = {  # name -> text: config files that cannot be loaded
    "syntax.py": "def get_config(:\n    pass\n",
    "imports.py": "import jgen_no_such_module\n\n\ndef get_config():\n    return None\n",
    "raises.py": "def get_config():\n    return {'a': 1}['b']\n",
    "returns_dict.py": "def get_config():\n    return {'method': {'name': 'vae'}}\n",
    "no_get_config.py": "CONFIG = 3\n",
    "not_callable.py": "get_config = 3\n",
    "notes.txt": "get_config\n",
}


def _text_config():
    c = tiny_config("autoregressive", steps=3)
    c.data.name, c.data.seq_len, c.data.text_unit, c.data.batch_size = "pydoc_text", 16, "char", 8
    return c


@pytest.fixture(scope="module")
def root(bad_input_runs):
    """Run directories and config files the rows name: the shared tiny VAE and diffusion runs (conftest.py), and
    here a language-model run, a run directory without a checkpoint and one with a damaged config.json."""
    root = bad_input_runs
    train_and_evaluate(_text_config(), str(root / "text"))
    (root / "nockpt").mkdir()
    (root / "nockpt" / "config.json").write_text((root / "vae" / "config.json").read_text())
    (root / "torn").mkdir()
    (root / "torn" / "config.json").write_text('{"method": {"name": "va')
    (root / "vae" / "lock").write_text(json.dumps({"pid": 1234, "host": "elsewhere", "started": 0}))
    (root / "configs").mkdir()
    for name, text in CONFIG_FILES.items():
        (root / "configs" / name).write_text(text)
    return root


def _train(*overrides: str, config: str = TINY, workdir: str = "w") -> dict:
    return {"kind": "jgen", "args": ["train", f"--config={config}", f"--workdir={workdir}", *overrides]}


def _jgen(*args: str) -> dict:
    return {"kind": "jgen", "args": list(args)}


def _api(code: str) -> dict:
    return {"kind": "api", "code": code}


CFG, VAE, DIF, TEXT = "{root}/configs", "--workdir={root}/vae", "--workdir={root}/diffusion", "--workdir={root}/text"
ROWS = [  # (row, expected exit code or exception type, fragment of the one line)
    # train: config files that cannot be loaded, values checked before any compute, a held or foreign workdir
    (_train(config=f"{CFG}/syntax.py"), 2, "syntax.py:1: loading failed: SyntaxError"),
    (_train(config=f"{CFG}/imports.py"), 2, "imports.py:1: loading failed: ModuleNotFoundError"),
    (_train(config=f"{CFG}/raises.py"), 2, "raises.py:2: get_config() failed: KeyError"),
    (_train(config=f"{CFG}/returns_dict.py"), 2, "get_config() returned a dict, not an ml_collections.ConfigDict"),
    (_train(config=f"{CFG}/no_get_config.py"), 2, "defines no get_config()"),
    (_train(config=f"{CFG}/not_callable.py"), 2, "defines no get_config()"),
    (_train(config=f"{CFG}/notes.txt"), 2, "is not a Python file"),
    (_train(config=CFG), 2, "is a folder; pass a .py file in it"),
    (_train(config=""), 2, "--config is required"),
    (_train(workdir=""), 2, "--workdir is required"),
    (_train("--config.seed=-1"), 2, "config.seed=-1 is invalid: must be an integer in [0, 2**32)"),
    (_train("--config.seed=4294967296"), 2, "config.seed=4294967296 is invalid"),
    (_train("--config.model.kind=conv", "--config.model.features=(8, 8, 8, 8, 8)"), 2, "cannot be built"),
    (_train("--config.model.hidden=16", workdir="{root}/diffusion"), 2, "holds a run of a different model/config"),
    ({**_train(workdir="{root}/vae"), "lock": "{root}/vae"}, 2, "is in use by another jgen train (pid 1234 on host"),
    (_train("--seed=3"), 2, "--seed does not apply to train"),
    (_train("--out=x.png"), 2, "--out does not apply to train"),
    # sample: output paths, seeds and flags that do not apply to the run, all before the run is loaded
    (_jgen("sample", VAE, "--out=grid.jpg"), 2, "--out='grid.jpg': must name a .png file"),
    (_jgen("sample", VAE, "--out={root}/a_file/grid.png"), 2, "cannot be created"),
    (_jgen("sample", VAE, "--out=."), 2, "is a folder; pass a file name"),
    (_jgen("sample", VAE, "--seed=-1"), 2, "--seed=-1: must be an integer in [0, 2**32)"),
    (_jgen("sample", DIF, "--seed=4294967296"), 2, "--seed=4294967296: must be an integer in [0, 2**32)"),
    (_jgen("sample", VAE, "--prompt=hello"), 2, "--prompt does not apply to"),
    (_jgen("sample", DIF, "--num_tokens=5"), 2, "--num_tokens does not apply to"),
    (_jgen("sample", TEXT, "--prompt=x", "--out=t.png"), 2, "--out does not apply to"),
    (_jgen("sample", TEXT, "--prompt=x", "--labels=1"), 2, "--labels does not apply to"),
    (_jgen("sample", TEXT), 2, "pass --prompt="),
    (_jgen("sample", TEXT, "--prompt=x", "--num_tokens=0"), 2, "--num_tokens=0: must be an integer >= 1"),
    (_jgen("sample", "--workdir="), 2, "--workdir is required"),
    (_jgen("sample", "--workdir={root}/torn"), 2, "is not a run's config (not readable JSON"),
    (_jgen("sample", "--workdir={root}/nockpt"), 2, "has no checkpoint yet"),
    (_jgen("sample", DIF, "--temperature=0.5"), 2, "does not take the sampling option(s) ['temperature']"),
    (_jgen("sample", DIF, "--steps=2", "--guidance=x"), 2, "flag --guidance=x"),
    # eval: the same checks, and the reference files
    (_jgen("eval", VAE, "--seed=-1"), 2, "--seed=-1: must be an integer in [0, 2**32)"),
    (_jgen("eval", VAE, "--ref_stats_out=stats.txt"), 2, "must name a .npz file"),
    (_jgen("eval", VAE, "--ref_stats_out={root}/a_file/s.npz"), 2, "cannot be created"),
    (_jgen("eval", VAE, "--ref_stats=missing.npz"), 2, "--ref_stats='missing.npz' is not a file"),
    (_jgen("eval", VAE, "--num_samples=0"), 2, "--num_samples=0: must be an integer >= 1"),
    (_jgen("eval", TEXT, "--feature_net=mnist_classifier"), 2, "--feature_net does not apply to"),
    (_jgen("eval", "--workdir={root}/torn"), 2, "is not a run's config"),
    (_jgen("eval", VAE, "--sampler=ddim"), 2, "does not take the sampling option(s) ['sampler']"),
    # compare: sampling flags that no run takes, output folders, seeds
    (_jgen("compare", "--workdirs={root}/vae", "--sampler=ddim"), 2, "--sampler applies to none of these runs"),
    (_jgen("compare", "--workdirs={root}/vae", "--steps=3"), 2, "--steps applies to none of these runs"),
    (_jgen("compare", "--workdirs={root}/diffusion", "--sampler=nope"), 2, "sampler='nope' is unknown"),
    (_jgen("compare", "--workdirs={root}/vae,{root}/diffusion", "--steps=0"), 2, "steps=0: must be an integer >= 1"),
    (_jgen("compare", "--workdirs={root}/vae", "--out={root}/a_file"), 2, "is a file; pass a folder"),
    (_jgen("compare", "--workdirs={root}/vae", "--out={root}/a_file/sub"), 2, "cannot be created"),
    (_jgen("compare", "--workdirs={root}/vae", "--seed=-2"), 2, "--seed=-2: must be an integer in [0, 2**32)"),
    (_jgen("compare", "--workdirs={root}/vae,{root}/torn"), 2, "is not a run's config"),
    (_jgen("compare", "--workdirs="), 2, "--workdirs is required"),
    (
        _jgen("compare", "--workdirs={root}/vae,{root}/diffusion", "--likelihood_images=1"),
        2,
        "--likelihood_images=1: must be an integer >= 2",
    ),
    # figures (python -m course)
    ({"kind": "course", "args": ["--runs={root}", "--out={root}/a_file"]}, 2, "is a file; pass a folder"),
    ({"kind": "course", "args": ["--runs={root}/a_file", "--out=figs"]}, 2, "--runs='{root}/a_file' is a file"),
    ({"kind": "course", "args": ["--runs={root}", "--only=99"]}, 2, "99"),
    # the Python API: the same checks, as exceptions
    (_api("load_config('{root}/configs')"), "ConfigError", "is a folder"),
    (_api("load_config('{root}/configs/raises.py')"), "ConfigError", "raises.py:2: get_config() failed"),
    (_api("load_config('{root}/configs/syntax.py')"), "ConfigError", "syntax.py:1: loading failed"),
    (_api("Pipeline.from_workdir('{root}/vae')(save_to='grid.jpg')"), "OptionError", "must name a .png file"),
    (_api("Pipeline.from_workdir('{root}/vae')(seed=-1)"), "OptionError", "seed=-1"),
    (_api("compare_workdirs(['{root}/vae'], 'out', sampler='ddim')"), "InputError", "applies to none of these runs"),
    (_api("read_config('{root}/torn')"), "InputError", "is not a run's config"),
    (_api("c = tiny_config(); c.seed = -1; train_and_evaluate(c, 'w')"), "ConfigError", "config.seed=-1 is invalid"),
    (
        _api("c = tiny_config(); c.model.kind = 'conv'; c.model.features = (8,) * 5; train_and_evaluate(c, 'w')"),
        "ConfigError",
        "cannot be built",
    ),
]


def _fill(value, root):
    if isinstance(value, str):
        return value.replace("{root}", str(root))
    if isinstance(value, list):
        return [_fill(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, root) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def results(root):
    rows = [_fill(row, root) for row, _, _ in ROWS]
    proc = subprocess.run(
        [sys.executable, "-m", "tests.bad_input_driver", str(root)],
        input=json.dumps(rows),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _id(row: dict) -> str:
    return (row.get("code") or " ".join(row["args"]))[:70]


@pytest.mark.parametrize("i", range(len(ROWS)), ids=[_id(r) for r, _, _ in ROWS])
def test_each_bad_input_gets_one_line_and_changes_nothing(root, results, i):
    _, code, fragment = ROWS[i]
    got = results[i]
    lines = [line for line in got["stderr"].splitlines() if line.strip()]
    text = got.get("message", lines[0] if lines else "")
    assert got["code"] == code, got
    assert _fill(fragment, root) in text, got
    if "message" in got:  # the Python API: one exception, a ValueError, with a one-line message
        assert got["is_value_error"] and "\n" not in got["message"], got
    else:
        assert len(lines) == 1, got
    assert got["changed"] == [], got


def test_the_table_is_long_and_its_stderr_short(results):
    assert len(ROWS) >= 60
    assert max(len(r["stderr"].strip().splitlines()) for r in results) <= 1
