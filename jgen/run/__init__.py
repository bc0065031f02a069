"""The run layer, by job: an experiment's config (`experiment`), run directories and what is loaded from them
(`workdir`), and evaluations of a loaded run (`evaluate`). Every door (the CLI, `Pipeline`, `jgen eval`,
`jgen compare`, notebooks) comes through here.

    config = load_config("experiments/configs/vae_mnist.py", ["train.steps=300"])
    final = train_and_evaluate(config, "runs/vae")        # train (or resume) in a run directory
    run = load_run("runs/vae")                            # Run(config, method, state, info, workdir, ...)
    row = evaluate_run(run, num_samples=1000)             # FID/IS/precision/recall (+ bits/dim, images/s)
"""

from jgen.run.evaluate import evaluate_likelihood, evaluate_run, reference_cache_path
from jgen.run.experiment import default_config, load_config, method_class, validate, with_defaults
from jgen.run.guide import attach_guide
from jgen.run.workdir import (
    Run,
    build_method,
    load_feature_net,
    load_run,
    open_workdir,
    read_config,
    run_progress,
    train_and_evaluate,
)

__all__ = [
    "Run",
    "attach_guide",
    "build_method",
    "default_config",
    "evaluate_likelihood",
    "evaluate_run",
    "load_config",
    "load_feature_net",
    "load_run",
    "method_class",
    "open_workdir",
    "read_config",
    "reference_cache_path",
    "run_progress",
    "train_and_evaluate",
    "validate",
    "with_defaults",
]
