"""Command line: `python -m jgen <command> [flags]`.

  train    --config experiments/configs/vae_mnist.py --workdir runs/vae [--config.train.steps=2000 ...]
  sample   --workdir runs/ddpm --sampler dpm_solver --steps 20 --guidance 2.0 --labels 0,1,2 --out samples.png
  eval     --workdir runs/X --num_samples 1000
  compare  --workdirs runs/a,runs/b --out compare/ [--num_samples 1000]
  compare  --workdirs runs/ldm --guidance_scales 0,1,2,4,8 --out sweep/
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Callable

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from jgen import run as run_lib
from jgen.compare import compare_workdirs, guidance_sweep
from jgen.config import ConfigError
from jgen.pipeline import Pipeline

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (a Python file with get_config()).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: config.json, metrics.jsonl, samples/, checkpoints/.")
flags.DEFINE_list("workdirs", [], "compare: run directories to compare.")
flags.DEFINE_string("sampler", None, "sample: sampler name (diffusion: ddpm, ddim, dpm_solver, heun).")
flags.DEFINE_integer("steps", None, "sample: number of sampler steps.")
flags.DEFINE_float("guidance", None, "sample: classifier-free guidance scale (0: unconditional, 1: conditional).")
flags.DEFINE_float("eta", None, "sample: DDIM eta (0: deterministic; default: the run's config).")
flags.DEFINE_list("labels", [], "sample: class labels, e.g. 0,1,2 (one row of samples per label).")
flags.DEFINE_integer("num_samples", None, "sample: images, per label with --labels (default 64, or 8 per label); "
                     "eval/compare: samples for the metrics (default 1000).")
flags.DEFINE_integer("seed", 0, "sample/eval: random seed.")
flags.DEFINE_string("feature_net", None, "eval: feature network (mnist_classifier, inception); default: the run's "
                    "config.eval.feature_net. Another net writes eval_<name>.json.")
flags.DEFINE_string("out", None, "sample: output PNG; compare: output directory.")
flags.DEFINE_list("guidance_scales", [], "compare: sweep these guidance scales for one diffusion run, e.g. 0,1,2,4,8.")


def cmd_train() -> None:
    if FLAGS.config is None or FLAGS.workdir is None:
        raise app.UsageError("train needs --config <file> and --workdir <dir>")
    result = run_lib.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    print(json.dumps({"workdir": FLAGS.workdir, "final": result}, indent=2, default=float))


def _labels_flag() -> list[int] | None:
    if not FLAGS.labels:
        return None
    try:
        return [int(x) for x in FLAGS.labels]
    except ValueError:
        raise ValueError(f"--labels={','.join(FLAGS.labels)!r}: must be comma-separated class labels, e.g. "
                         "--labels=0,1,2") from None


def cmd_sample() -> None:
    if FLAGS.workdir is None:
        raise app.UsageError("sample needs --workdir <dir>")
    out = FLAGS.out or os.path.join(FLAGS.workdir, "samples.png")
    labels = _labels_flag()
    num = FLAGS.num_samples or (8 if labels else 64)
    pipe = Pipeline.from_workdir(FLAGS.workdir)
    _, info = pipe(labels=labels, num_samples_per_label=num, sampler=FLAGS.sampler, steps=FLAGS.steps,
                   guidance_scale=FLAGS.guidance, eta=FLAGS.eta, seed=FLAGS.seed, save_to=out, return_info=True)
    print(json.dumps({"out": out, "workdir": FLAGS.workdir, "method": pipe.method.name, "sampler": FLAGS.sampler,
                      "steps": FLAGS.steps, "guidance": FLAGS.guidance, "labels": labels, **info}, indent=2))


def cmd_eval() -> None:
    if FLAGS.workdir is None:
        raise app.UsageError("eval needs --workdir <dir>")
    run = run_lib.load_run(FLAGS.workdir)
    result = run_lib.evaluate_run(run, FLAGS.num_samples or 1000, FLAGS.seed, FLAGS.feature_net)
    name = "eval.json" if FLAGS.feature_net is None else f"eval_{FLAGS.feature_net}.json"
    with open(os.path.join(FLAGS.workdir, name), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


def cmd_compare() -> None:
    if not FLAGS.workdirs:
        raise app.UsageError("compare needs --workdirs runs/a,runs/b")
    out = FLAGS.out or "compare"
    if FLAGS.guidance_scales:
        if len(FLAGS.workdirs) != 1:
            raise app.UsageError("--guidance_scales sweeps one run: pass a single --workdirs")
        print(guidance_sweep(FLAGS.workdirs[0], [float(s) for s in FLAGS.guidance_scales], out, FLAGS.num_samples or 1000,
                             FLAGS.seed, FLAGS.sampler, FLAGS.steps))
    else:
        print(compare_workdirs(FLAGS.workdirs, out, FLAGS.num_samples or 1000, FLAGS.seed))


# name -> (function, one line of help). The only dispatch: adding a command is one entry here.
COMMANDS: dict[str, tuple[Callable[[], None], str]] = {
    "train": (cmd_train, "train (or resume) a config in a run directory"),
    "sample": (cmd_sample, "write a grid of samples from a trained run"),
    "eval": (cmd_eval, "FID/IS/precision/recall of a trained run -> <workdir>/eval.json"),
    "compare": (cmd_compare, "one table (Markdown, JSON, PNG) over several runs, or a guidance sweep"),
}


def _main(argv: list[str]) -> None:
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
    logging.getLogger("jgen").setLevel(logging.INFO)
    positional = argv[1:]
    if len(positional) != 1 or positional[0] not in COMMANDS:
        raise app.UsageError(f"expected one command out of {list(COMMANDS)}; got {positional}\n{__doc__}")
    command = positional[0]
    try:
        COMMANDS[command][0]()
    except (ConfigError, FileNotFoundError) as e:  # user errors: the message says what to change
        print(f"jgen {command}: error: {e}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    app.run(_main, argv=sys.argv)


if __name__ == "__main__":
    main()
