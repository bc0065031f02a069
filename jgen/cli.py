"""Command line: `python -m jgen <command> [flags]`; `python -m jgen --help` lists the commands.

  train    --config experiments/configs/vae_mnist.py --workdir runs/vae [--config.train.steps=2000 ...]
           [--coordinator_address=host0:1234 --num_processes=2 --process_id=0 | --distributed=auto]
  sample   --workdir runs/ddpm --sampler dpm_solver --steps 20 --guidance 2.0 --labels 0,1,2 --out samples.png
  eval     --workdir runs/X --num_samples 1000 [--ref_stats stats.npz | --ref_split train] [--ref_stats_out out.npz]
           [--likelihood_images 64]
  compare  --workdirs runs/a,runs/b --out compare/ [--num_samples 1000] [--likelihood_images 64]
  compare  --workdirs runs/ldm --guidance_scales 0,1,2,4,8 --out sweep/

Exit codes (for batch schedulers): 0 finished; 2 bad input (a config value, a flag, a run directory: the message
says what to change); 3 diverged (a non-finite loss or gradient; the last good checkpoint is kept); 74 a checkpoint
could not be written (e.g. disk full; the previous one is intact); 75 interrupted by SIGTERM/SIGINT after saving a
checkpoint (rerun the same command to resume); 1 anything else (a bug: please report it with the traceback).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable

from absl import flags
from absl import logging as absl_logging

from jgen import run as run_lib
from jgen.compare import compare_workdirs, guidance_sweep
from jgen.config import InputError
from jgen.diffusion.sampler_core import sampler_names
from jgen.diffusion.timegrid import SPACINGS
from jgen.methods import get_method, method_names
from jgen.metrics.feature_nets import MNIST_CLASSIFIER, feature_net_names
from jgen.pipeline import Pipeline
from jgen.train import distributed
from jgen.train.checkpoint import CheckpointWriteError
from jgen.train.loop import TrainingDiverged, TrainingInterrupted

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_WRITE_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 74, 75

FLAGS = flags.FlagValues()
flags.DEFINE_string(
    "config",
    None,
    "train: experiment config file (a Python file with get_config()); override "
    "any field with --config.<field>=<value>.",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "workdir", None, "Run directory: config.json, metrics.jsonl, samples/, checkpoints/.", flag_values=FLAGS
)
flags.DEFINE_list("workdirs", [], "compare: run directories to compare.", flag_values=FLAGS)
flags.DEFINE_string(
    "sampler", None, f"diffusion sampler, one of {', '.join(sampler_names())}; default: the run's.", flag_values=FLAGS
)
flags.DEFINE_string(
    "spacing",
    None,
    f"diffusion time grid, one of {', '.join(SPACINGS)}; default: the sampler's own.",
    flag_values=FLAGS,
)
flags.DEFINE_integer("steps", None, "number of sampler steps; default: the run's.", flag_values=FLAGS)
flags.DEFINE_float(
    "guidance",
    None,
    "classifier-free guidance scale (0: unconditional, 1: conditional, >1: guided).",
    flag_values=FLAGS,
)
flags.DEFINE_float("eta", None, "DDIM eta (0: deterministic; default: the run's config).", flag_values=FLAGS)
flags.DEFINE_list("labels", [], "class labels, e.g. 0,1,2 (one row of samples per label).", flag_values=FLAGS)
flags.DEFINE_integer(
    "num_samples",
    None,
    "sample: images, per label with --labels (default 64, or 8 per label); "
    "eval/compare: samples for the metrics (default 1000).",
    flag_values=FLAGS,
)
flags.DEFINE_integer("seed", 0, "random seed of the samples.", flag_values=FLAGS)
flags.DEFINE_integer(
    "likelihood_images",
    0,
    "eval/compare: bits/dim of a diffusion run by its probability-flow "
    "ODE on this many test images (about 100 network evaluations each; 0: off).",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "feature_net",
    None,
    f"feature network, one of {', '.join(feature_net_names())}; eval: default the run's config.eval.feature_net "
    f"(another net writes eval_<name>.json); compare: default {MNIST_CLASSIFIER}.",
    flag_values=FLAGS,
)
flags.DEFINE_string("out", None, "sample: output PNG; compare: output directory.", flag_values=FLAGS)
flags.DEFINE_string("prompt", None, "sample, for a language model: the text to continue.", flag_values=FLAGS)
flags.DEFINE_integer("num_tokens", 200, "sample, for a language model: tokens to generate.", flag_values=FLAGS)
flags.DEFINE_float(
    "temperature", None, "autoregressive sampling temperature (0: greedy); default: the run's.", flag_values=FLAGS
)
flags.DEFINE_integer(
    "top_k", None, "autoregressive sampling: keep the k most probable tokens (0: all).", flag_values=FLAGS
)
flags.DEFINE_float("top_p", None, "autoregressive sampling: nucleus mass (1: all).", flag_values=FLAGS)
flags.DEFINE_string(
    "coordinator_address",
    None,
    "train, multi-process: host:port of process 0's coordinator (default: $JGEN_COORDINATOR_ADDRESS).",
    flag_values=FLAGS,
)
flags.DEFINE_integer(
    "num_processes",
    None,
    "train, multi-process: processes in the job (default: $JGEN_NUM_PROCESSES).",
    flag_values=FLAGS,
)
flags.DEFINE_integer(
    "process_id",
    None,
    "train, multi-process: this process's index, 0..num_processes-1 (default: $JGEN_PROCESS_ID).",
    flag_values=FLAGS,
)
flags.DEFINE_enum(
    "distributed",
    "off",
    ["off", "auto"],
    "train: 'auto' starts jax.distributed with JAX's own "
    "cluster detection (TPU pod, SLURM, Open MPI); 'off' starts it only when the three flags above "
    "(or their JGEN_* variables) are given.",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "ref_stats",
    None,
    "eval: FID reference statistics, a .npz of mu [D] and sigma [D, D] (pytorch-fid "
    "and TTUR format); default: computed from --ref_split and cached.",
    flag_values=FLAGS,
)
flags.DEFINE_enum(
    "ref_split",
    "test",
    ["test", "train"],
    "eval: the split whose images are the reference (train: the DDPM paper's CIFAR-10 FID protocol).",
    flag_values=FLAGS,
)
flags.DEFINE_string("ref_stats_out", None, "eval: also write the reference statistics to this .npz.", flag_values=FLAGS)
flags.DEFINE_list(
    "guidance_scales", [], "compare: sweep these guidance scales for one run, e.g. 0,1,2,4,8.", flag_values=FLAGS
)

# The sampling flags: those that name an option some method's requests take (`Method.generate_options`).
SAMPLING_FLAGS = tuple(f for f in FLAGS if any(f in get_method(n).generate_options for n in method_names()))


def _require(name: str, example: str) -> None:
    if FLAGS[name].value in (None, []):
        raise InputError(f"--{name} is required, e.g. --{name}={example}")


def cmd_train(overrides: list[str]) -> None:
    _require("config", "experiments/configs/vae_mnist.py")
    _require("workdir", "runs/vae")
    distributed.initialize(
        distributed.spec_from(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id, FLAGS.distributed)
    )  # before any other JAX call
    config = run_lib.load_config(FLAGS.config, overrides)
    result = run_lib.train_and_evaluate(config, FLAGS.workdir)
    print(json.dumps({"workdir": FLAGS.workdir, "final": result}, indent=2, default=float))


def _labels_flag() -> list[int] | None:
    if not FLAGS.labels:
        return None
    try:
        return [int(x) for x in FLAGS.labels]
    except ValueError:
        raise InputError(
            f"--labels={','.join(FLAGS.labels)!r}: must be comma-separated class labels, e.g. --labels=0,1,2"
        ) from None


def _num_samples(default: int) -> int:
    n = FLAGS.num_samples
    if n is not None and n < 1:
        raise InputError(f"--num_samples={n}: must be an integer >= 1")
    return default if n is None else n


def _sampling_options() -> dict:
    """The sampling flags given on the command line (the run's method says which it takes)."""
    return {name: FLAGS[name].value for name in SAMPLING_FLAGS if FLAGS[name].value is not None}


def cmd_sample(overrides: list[str]) -> None:
    _require("workdir", "runs/vae_mnist")
    pipe = Pipeline.from_workdir(FLAGS.workdir)
    options = _sampling_options()
    if "text" in pipe.method.capabilities:
        if FLAGS.prompt is None:
            raise InputError("this run is a language model: pass --prompt='some text' to continue")
        texts = pipe.text(FLAGS.prompt, _num_samples(1), FLAGS.num_tokens, FLAGS.seed, **options)
        print(json.dumps({"workdir": FLAGS.workdir, "prompt": FLAGS.prompt, "samples": texts}, indent=2))
        return
    if FLAGS.prompt is not None:
        raise InputError(
            f"--prompt applies to language models; {FLAGS.workdir!r} is a {pipe.method.name!r} run of images"
        )
    out = FLAGS.out or os.path.join(FLAGS.workdir, "samples.png")
    labels = _labels_flag()
    num = _num_samples(8 if labels else 64)
    _, info = pipe(labels=labels, num_samples_per_label=num, seed=FLAGS.seed, save_to=out, return_info=True, **options)
    print(
        json.dumps(
            {"out": out, "workdir": FLAGS.workdir, "method": pipe.method.name, "labels": labels, **info}, indent=2
        )
    )


def cmd_eval(overrides: list[str]) -> None:
    _require("workdir", "runs/vae_mnist")
    run = run_lib.load_run(FLAGS.workdir)
    result = run_lib.evaluate_run(
        run,
        _num_samples(1000),
        FLAGS.seed,
        FLAGS.feature_net,
        ref_stats=FLAGS.ref_stats,
        ref_split=FLAGS.ref_split,
        ref_stats_out=FLAGS.ref_stats_out,
        likelihood_images=FLAGS.likelihood_images,
        spec=run.method.sampling_spec(**_sampling_options()),  # --steps, --sampler, ... as `sample` takes them
    )
    name = "eval.json" if FLAGS.feature_net is None else f"eval_{FLAGS.feature_net}.json"
    with open(os.path.join(FLAGS.workdir, name), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


def cmd_compare(overrides: list[str]) -> None:
    _require("workdirs", "runs/a,runs/b")
    out = FLAGS.out or "compare"
    num = _num_samples(1000)
    if FLAGS.guidance_scales:
        if len(FLAGS.workdirs) != 1:
            raise InputError(f"--guidance_scales sweeps one run; got --workdirs with {len(FLAGS.workdirs)} runs")
        if FLAGS.likelihood_images:
            raise InputError(
                "--likelihood_images applies to the comparison table, not to a guidance sweep (the "
                "likelihood does not depend on the guidance scale)"
            )
        try:
            scales = [float(s) for s in FLAGS.guidance_scales]
        except ValueError:
            raise InputError(
                f"--guidance_scales={','.join(FLAGS.guidance_scales)!r}: must be numbers, e.g. 0,1,2,4,8"
            ) from None
        net = FLAGS.feature_net or MNIST_CLASSIFIER
        print(guidance_sweep(FLAGS.workdirs[0], scales, out, num, FLAGS.seed, net, **_sampling_options()))
    else:
        print(
            compare_workdirs(
                FLAGS.workdirs, out, num, FLAGS.seed, FLAGS.likelihood_images, FLAGS.feature_net or MNIST_CLASSIFIER
            )
        )


@dataclasses.dataclass(frozen=True)
class Command:
    run: Callable[[list[str]], int | None]  # returns an exit code, or None for EXIT_OK
    help: str
    flags: tuple[str, ...]
    takes_config_overrides: bool = False


# The only dispatch: adding a command is one entry here.
COMMANDS: dict[str, Command] = {
    "train": Command(
        cmd_train,
        "train (or resume) a config in a run directory; one process of a multi-process job "
        "with --coordinator_address/--num_processes/--process_id or --distributed=auto",
        ("config", "workdir", "coordinator_address", "num_processes", "process_id", "distributed"),
        True,
    ),
    "sample": Command(
        cmd_sample,
        "write a grid of samples from a trained run",
        (
            "workdir",
            "labels",
            "num_samples",
            "sampler",
            "steps",
            "spacing",
            "guidance",
            "eta",
            "seed",
            "out",
            "prompt",
            "num_tokens",
            "temperature",
            "top_k",
            "top_p",
        ),
    ),
    "eval": Command(
        cmd_eval,
        "FID/IS/precision/recall of a trained run -> <workdir>/eval.json",
        (
            "workdir",
            "num_samples",
            "sampler",
            "steps",
            "spacing",
            "guidance",
            "eta",
            "seed",
            "feature_net",
            "ref_stats",
            "ref_split",
            "ref_stats_out",
            "likelihood_images",
        ),
    ),
    "compare": Command(
        cmd_compare,
        "one table (Markdown, JSON, PNG) over several runs, or a guidance sweep",
        (
            "workdirs",
            "num_samples",
            "seed",
            "out",
            "guidance_scales",
            "sampler",
            "steps",
            "feature_net",
            "likelihood_images",
        ),
    ),
}


def usage() -> str:
    lines = [
        "usage: python -m jgen <command> [flags]   (python -m jgen <command> --help for its flags)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<9}{c.help}" for name, c in COMMANDS.items()]
    return "\n".join(lines + ["", __doc__.split("\n\n", 2)[2].strip()])


def command_help(name: str) -> str:
    c = COMMANDS[name]
    lines = [f"usage: python -m jgen {name} [flags]", "", c.help, "", "flags:"]
    lines += [f"  --{f:<21}{FLAGS[f].help}" for f in c.flags]
    if c.takes_config_overrides:
        lines.append("  --config.<field>=<value>  override a config field, e.g. --config.train.steps=500")
    return "\n".join(lines)


def run_command(argv: list[str]) -> int:
    """Run `argv` (the arguments after `python -m jgen`); returns the exit code. A user error prints one line,
    `jgen <command>: error: ...`, never a traceback."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return EXIT_OK if argv else EXIT_BAD_INPUT
    name, rest = argv[0], argv[1:]

    def error(msg: str) -> int:
        print(f"jgen {name}: error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT

    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(
            f"jgen: error: unknown command {name!r}; choose one of {list(COMMANDS)}.{hint} "
            "(python -m jgen --help lists them)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    command = COMMANDS[name]
    if "-h" in rest or "--help" in rest:
        print(command_help(name))
        return EXIT_OK
    overrides = [a[len("--config.") :] for a in rest if a.startswith("--config.")]
    if overrides and not command.takes_config_overrides:
        return error(f"--config.<field> overrides apply to train only; got {overrides}")
    FLAGS.unparse_flags()
    try:
        positional = FLAGS(["jgen"] + [a for a in rest if not a.startswith("--config.")])[1:]
    except flags.Error as e:
        return error(str(e))
    if positional:
        return error(f"unexpected argument(s) {positional}; flags take the form --name=value")
    stray = [f for f in FLAGS if FLAGS[f].present and f not in command.flags and f in _OUR_FLAGS]
    if stray:
        return error(f"--{stray[0]} does not apply to {name}; its flags are {['--' + f for f in command.flags]}")
    try:
        code = command.run(overrides)
    except (InputError, FileNotFoundError, NotADirectoryError) as e:  # the message says what to change
        return error(str(e))
    except TrainingDiverged as e:
        print(f"jgen {name}: diverged: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except CheckpointWriteError as e:
        print(f"jgen {name}: error: {e}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    except TrainingInterrupted as e:
        print(f"jgen {name}: interrupted: {e}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if code is None else code


_OUR_FLAGS = frozenset(FLAGS)


def main() -> None:
    flags.FLAGS.mark_as_parsed()  # absl's own flags are not used: jgen parses its flags with FLAGS above
    absl_logging.use_absl_handler()
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
    logging.getLogger("jgen").setLevel(logging.INFO)
    code = run_command(sys.argv[1:])
    if any(t.name == "jgen-compile" and t.is_alive() for t in threading.enumerate()):
        # A signal stopped the run during its first compilation: XLA is still compiling on a helper thread, which
        # can be neither joined nor safely left running while the interpreter shuts down. Leave without it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
