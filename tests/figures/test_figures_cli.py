"""`python -m jgen figures`: draws what its runs allow, names the commands that make the others, exit codes."""

from jgen.cli import run_command
from jgen.figures import CHARTS, RUNS, train_commands


def test_every_chart_names_known_runs_and_its_png():
    assert all(set(c.runs) <= set(RUNS) for c in CHARTS.values())
    assert len({c.filename for c in CHARTS.values()}) == len(CHARTS)
    assert train_commands("ldm_mnist", "runs") == [
        "python -m jgen train --config experiments/configs/ldm_autoencoder.py --workdir runs/ldm_autoencoder",
        "python -m jgen train --config experiments/configs/ldm_mnist.py --workdir runs/ldm_mnist "
        "--config.method.first_stage_workdir=runs/ldm_autoencoder"]


def test_figures_command_draws_skips_and_exits(gan_runs, tmp_path, capsys):
    out = tmp_path / "figs"
    assert run_command(["figures", f"--runs={gan_runs}", f"--out={out}", "--only=21,18"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([CHARTS[18].filename, CHARTS[21].filename])
    text = capsys.readouterr().out
    assert "[1/2] chart 21" in text and "[2/2] chart 18" in text and "drew 2 of 2 charts" in text  # in --only order

    empty = tmp_path / "no_runs"
    assert run_command(["figures", f"--runs={empty}", f"--out={out}", "--only=21"]) == 2  # asked for, not drawable
    captured = capsys.readouterr()
    assert f"python -m jgen train --config experiments/configs/gan_mnist.py --workdir {empty}/gan_mnist" \
        in captured.out
    assert "named by --only could not be drawn" in captured.err

    assert run_command(["figures", f"--runs={gan_runs}", "--only=21,99"]) == 2
    assert "no chart [99]" in capsys.readouterr().err
    assert run_command(["figures", f"--runs={gan_runs}", "--workdir=x"]) == 2  # another command's flag
