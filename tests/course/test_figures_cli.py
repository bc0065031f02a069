"""`python -m course`: draws what its runs allow, names the commands that make the others, exit codes; with
--train_missing, the plan of runs to train (which, in what order) and how it stops."""

import shutil

from course import CHARTS, RUNS, needed_runs, train_commands, train_missing, training, training_plan
from course.__main__ import main
from course.common import train_argv
from course.registry import draw_chart
from jgen.cli import EXIT_INTERRUPTED


def test_every_chart_names_known_runs_and_its_png():
    assert all(set(c.runs) <= set(RUNS) for c in CHARTS.values())
    assert len({c.filename for c in CHARTS.values()}) == len(CHARTS)
    assert train_commands("ldm_mnist", "runs") == [
        "python -m jgen train --config experiments/configs/ldm_autoencoder.py --workdir runs/ldm_autoencoder",
        "python -m jgen train --config experiments/configs/ldm_mnist.py --workdir runs/ldm_mnist "
        "--config.method.first_stage_workdir=runs/ldm_autoencoder",
    ]


def test_figures_command_draws_skips_and_exits(gan_runs, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main([f"--runs={gan_runs}", f"--out={out}", "--only=21,18"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([CHARTS[18].filename, CHARTS[21].filename])
    text = capsys.readouterr().out
    assert "[1/2] chart 21" in text and "[2/2] chart 18" in text and "drew 2 of 2 charts" in text  # in --only order

    empty = tmp_path / "no_runs"
    assert main([f"--runs={empty}", f"--out={out}", "--only=21"]) == 2  # asked for, not drawable
    captured = capsys.readouterr()
    assert f"python -m jgen train --config experiments/configs/gan_mnist.py --workdir {empty}/gan_mnist" in captured.out
    assert "named by --only could not be drawn" in captured.err

    assert main([f"--runs={gan_runs}", "--only=21,99"]) == 2
    assert "no chart [99]" in capsys.readouterr().err
    assert main([f"--runs={gan_runs}", "--workdir=x"]) == 2  # another command's flag


def test_needed_runs_come_after_the_runs_they_are_built_on_once_each():
    assert needed_runs([27]) == ["ldm_autoencoder", "ldm_mnist"]
    assert needed_runs([21, 18, 17]) == ["gan_mnist", "ddpm_mnist"]
    assert needed_runs([14, 22]) == []  # drawn from the data and from closed forms
    every = needed_runs(list(CHARTS))
    read = {r for c in CHARTS.values() for r in c.runs}
    assert sorted(every) == sorted(set(every)) == sorted(read | {d for r in read for _, d in RUNS[r].built_on})
    assert every.index("ldm_autoencoder") < every.index("ldm_mnist")


def test_training_plan_skips_finished_runs_and_resumes_unfinished_ones(gan_runs, tmp_path):
    assert training_plan([21, 16], str(gan_runs)) == []  # the tiny gan_mnist is finished
    runs = tmp_path / "runs"
    (runs / "gan_mnist").mkdir(parents=True)
    shutil.copy(gan_runs / "gan_mnist" / "config.json", runs / "gan_mnist")  # a run that has not checkpointed yet
    plan = training_plan([27, 21, 25], str(runs))
    assert [(p.name, p.why) for p in plan] == [
        ("ldm_autoencoder", "no run directory"),
        ("ldm_mnist", "no run directory"),
        ("gan_mnist", "no checkpoint yet"),
        ("gan_dstar", "no dstar_curves.json"),
    ]
    # each run's command is the one the skip messages print (the last of its train_commands)
    assert [p.command for p in plan] == [train_commands(p.name, str(runs))[-1] for p in plan]
    assert plan[1].argv[-1] == f"--config.method.first_stage_workdir={runs}/ldm_autoencoder"


def test_the_classifier_trains_first_when_a_chart_or_a_run_scores_samples(gan_runs, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("JGEN_CACHE", str(cache))  # a fresh machine: no MNIST classifier yet
    runs = str(tmp_path / "runs")
    for ids in ([29], [26], [28, 12]):  # 29, 28 score samples; 26's seed-0 runs log sample quality as they train
        first = training_plan(ids, runs)[0]
        assert first.name == "mnist_classifier" and first.why.endswith("no run directory")
        assert first.argv == (
            "-m",
            "jgen",
            "train",
            "--config",
            "experiments/configs/classifier_mnist.py",
            "--workdir",
            f"{cache}/mnist_classifier",
        )
    assert "mnist_classifier" not in [p.name for p in training_plan([12, 21, 27], runs)]  # nothing scored
    out = draw_chart(CHARTS[28], str(gan_runs), str(tmp_path / "figs"))  # its run is ready, the classifier is not
    assert (
        out.status == "skipped"
        and "classifier" in out.message
        and out.commands
        == (
            f"python -m jgen train --config experiments/configs/classifier_mnist.py --workdir {cache}/mnist_classifier",
        )
    )
    cache.mkdir()
    (cache / "mnist_classifier").symlink_to(gan_runs / "gan_mnist")  # any finished run counts as trained here
    assert "mnist_classifier" not in [p.name for p in training_plan([29], runs)]


def test_train_missing_trains_in_order_and_stops_at_an_interrupted_run(tmp_path, capsys):
    started = []

    def child(argv):  # stands in for `python argv...`: the first run finishes, the second is interrupted
        started.append(argv)
        return 0 if len(started) == 1 else EXIT_INTERRUPTED

    assert train_missing([27, 21], str(tmp_path), run=child) == EXIT_INTERRUPTED
    assert [a[a.index("--workdir") + 1] for a in started] == [f"{tmp_path}/ldm_autoencoder", f"{tmp_path}/ldm_mnist"]
    text = capsys.readouterr().out
    assert "training 3 run(s) the charts need: ldm_autoencoder, ldm_mnist, gan_mnist" in text
    assert "[train 1/3] ldm_autoencoder finished" in text
    assert "[train 2/3] ldm_mnist stopped with exit code 75" in text and "rerun the same command" in text
    assert train_missing([14], str(tmp_path), run=child) == 0 and len(started) == 2  # nothing to train


def test_figures_command_trains_missing_runs_first(tmp_path, monkeypatch, capsys):
    started = []
    monkeypatch.setattr(training, "run_child", lambda argv: started.append(argv) or EXIT_INTERRUPTED)
    assert (
        main([f"--runs={tmp_path}", f"--out={tmp_path}/figs", "--only=21", "--train_missing"]) == EXIT_INTERRUPTED
    )  # the training run's own code; nothing drawn
    assert started == [tuple(train_argv("gan_mnist", str(tmp_path)))]
    assert not (tmp_path / "figs").exists()
