"""The README is a guide that works: its tour runs as written (at tiny sizes), and its tables and the docs' name
what is registered."""

import json
import os
import re
import shlex

import pytest

from jgen import cli
from jgen.diffusion import SAMPLERS, sampler_table
from jgen.methods import method_names
from tests.conftest import ROOT
from tests.course.tiny_runs import PIXEL_NET

README = os.path.join(ROOT, "README.md")
TOUR = "## The tour"
# The tour's configs at the tests' sizes: the 8x8 digits, a few steps, the smallest networks, and the test feature
# net instead of the MNIST classifier (which takes 28x28 digits and minutes to train).
COMMON = [
    "data.name=digits",
    "data.batch_size=32",
    "train.steps=4",
    "train.log_every=2",
    "train.eval_every=0",
    "train.sample_every=-1",
    "train.checkpoint_every=0",
    "train.eval_batch_size=120",
    "train.num_eval_examples=240",
    "train.progress=False",
    "optim.warmup_steps=0",
    f"eval.feature_net={PIXEL_NET}",
]
TINY = {
    "vae_mnist": ["model.kind=mlp", "model.features=(32,)", "model.hidden=32", "method.latent_dim=4"]
    + ["method.eval_iw_samples=2"],
    "ddpm_mnist": ["model.channels=8", "model.channel_mult=(1,)", "model.attention_resolutions=()"]
    + ["method.timesteps=50", "method.sample_steps=3"],
    "classifier_mnist": ["model.features=(4, 8)", "model.feature_dim=16", "model.dropout=0.0", "method.max_shift=1"],
}
NUM_SAMPLES = "40"


def tour() -> tuple[list[list[str]], list[str]]:
    """The tour's `python -m jgen` commands (arguments after it) and its Python blocks, as the README has them."""
    with open(README) as f:
        text = f.read()
    section = text[text.index(TOUR) : text.index("\n## ", text.index(TOUR) + 1)]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    commands = [
        shlex.split(line)[3:]
        for lang, body in blocks
        if lang == "bash"
        for line in body.splitlines()
        if line.startswith("python -m jgen ")
    ]
    return commands, [body for lang, body in blocks if lang == "python"]


def tiny(argv: list[str]) -> list[str]:
    """A tour command at the tests' sizes: tiny configs, fewer samples, the test feature net."""
    argv = list(argv)
    if argv[0] == "train":
        name = os.path.basename(argv[argv.index("--config") + 1])[: -len(".py")]
        argv += [f"--config.{o}" for o in COMMON + TINY[name]]
    if "--num_samples" in argv:
        argv[argv.index("--num_samples") + 1] = NUM_SAMPLES
    if argv[0] == "compare":
        argv.append(f"--feature_net={PIXEL_NET}")
    return argv


def tiny_python(code: str) -> str:
    """A tour Python block at the tests' sizes (the same substitutions as `tiny`)."""
    overrides = repr(COMMON + TINY["vae_mnist"])
    code = code.replace('["train.steps=500"]', overrides)
    return code.replace("num_samples=1000", f"num_samples={NUM_SAMPLES}")


def test_the_tour_is_the_four_commands_and_the_pipeline():
    commands, python = tour()
    assert [c[0] for c in commands] == ["train", "train", "sample", "train", "eval", "compare"]
    assert len(python) == 2 and "Pipeline.from_workdir" in python[0] and "train_and_evaluate" in python[1]
    assert all(os.path.basename(c[c.index("--config") + 1])[:-3] in TINY for c in commands if c[0] == "train")


def test_every_tour_command_runs(tmp_path, monkeypatch, capsys):
    """The README's commands, in order, from a folder that has the repository's experiment configs (as the
    repository root has), at tiny sizes: each exits 0 and leaves what the README says it writes."""
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.join(ROOT, "experiments"), tmp_path / "experiments")
    commands, python = tour()
    for argv in commands:
        code = cli.run_command(tiny(argv))
        assert code == cli.EXIT_OK, (argv, capsys.readouterr().err[-2000:])
    assert (tmp_path / "runs" / "ddpm_mnist" / "samples.png").stat().st_size > 0
    scored = json.loads((tmp_path / "runs" / "vae_mnist" / "eval.json").read_text())
    assert scored["feature_net"] == PIXEL_NET and len(scored["feature_net_fingerprint"]) == 12  # what scored it
    assert {p.name for p in (tmp_path / "compare").iterdir()} >= {"compare.md", "compare.json", "compare.png"}
    for code in python:
        namespace = {"__name__": "__main__"}
        exec(compile(tiny_python(code), "README.md", "exec"), namespace)
    assert namespace["row"]["num_samples"] == int(NUM_SAMPLES)


@pytest.mark.slow  # three sampling programs of their own; the tour's test runs the same calls
def test_the_families_pipeline_example_runs_as_written(diffusion_runs, tmp_path, monkeypatch):
    """docs/families.md's Pipeline block, on the tests' tiny class-conditional pixel diffusion run for both of its
    run directories."""
    with open(os.path.join(ROOT, "docs", "families.md")) as f:
        blocks = [b for b in re.findall(r"```python\n(.*?)```", f.read(), re.S) if "Pipeline.from_workdir" in b]
    monkeypatch.chdir(tmp_path)
    code = blocks[0].replace("runs/ldm_mnist", str(diffusion_runs / "ddpm_mnist"))
    namespace = {"__name__": "__main__"}
    exec(compile(code.replace("runs/ddpm_mnist", str(diffusion_runs / "ddpm_mnist")), "families.md", "exec"), namespace)
    assert namespace["filled"].shape == namespace["images"].shape and len(namespace["strip"]) == 10
    assert (tmp_path / "grid.png").exists()


PAGES = [
    "README.md",
    "ARCHITECTURE.md",
    *sorted(f"docs/{p}" for p in os.listdir(os.path.join(ROOT, "docs")) if p.endswith(".md")),
]


@pytest.mark.parametrize("page", PAGES)
def test_links_between_the_pages_resolve(page):
    """Every relative link of a page (to another page, a figure) names a file that exists."""
    path = os.path.join(ROOT, page)
    with open(path) as f:
        links = [link for link in re.findall(r"\]\(([^)#]+)\)", f.read()) if not link.startswith("http")]
    assert not [link for link in links if not os.path.exists(os.path.join(os.path.dirname(path), link))], links


def test_the_docs_sampler_table_is_the_registry():
    with open(os.path.join(ROOT, "docs", "samplers.md")) as f:
        assert sampler_table() in f.read(), "docs/samplers.md: paste jgen.diffusion.sampler_table()'s output"


def test_the_readme_is_a_guide_that_names_every_family_and_sampler():
    with open(README) as f:
        text = f.read()
    assert len(text.splitlines()) <= 300
    rows = set(re.findall(r"^\| `(\w+)`", text, re.M))  # the first cell of a table row
    assert set(method_names()) <= rows, sorted(set(method_names()) - rows)
    assert set(SAMPLERS) <= rows, sorted(set(SAMPLERS) - rows)
