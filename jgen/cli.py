"""Command line: `python -m jgen <command> [flags]`; `python -m jgen --help` lists the commands.

  train    --config experiments/configs/vae_mnist.py --workdir runs/vae [--config.train.steps=2000 ...]
           [--coordinator_address=host0:1234 --num_processes=2 --process_id=0 | --distributed=auto]
  sample   --workdir runs/ddpm --sampler dpm_solver --steps 20 --guidance 2.0 --labels 0,1,2 --out samples.png
  eval     --workdir runs/X --num_samples 1000 [--ref_stats stats.npz | --ref_split train] [--ref_stats_out out.npz]
           [--likelihood_images 64]
  compare  --workdirs runs/a,runs/b --out compare/ [--num_samples 1000] [--likelihood_images 64]
  compare  --workdirs runs/ldm --guidance_scales 0,1,2,4,8 --out sweep/
  ema      --workdir runs/X --sigma_rel 0.08 [--step 2000] [--out runs/X/posthoc_ema/...]

Exit codes (for batch schedulers): 0 finished; 2 bad input (a config value, a flag, a run directory: the message
says what to change); 3 diverged (a non-finite loss or gradient; the last good checkpoint is kept); 74 a checkpoint
could not be written (e.g. disk full; the previous one is intact); 75 interrupted by SIGTERM/SIGINT after saving a
checkpoint (rerun the same command to resume); 130 sample/eval/compare stopped by Ctrl-C (nothing written); 1
anything else (a bug: please report it with the traceback).
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
from jgen.config import InputError, check_int, check_output, check_seed
from jgen.diffusion.sampler_core import sampler_names
from jgen.diffusion.timegrid import SPACINGS
from jgen.methods import get_method, method_names
from jgen.metrics.feature_nets import MNIST_CLASSIFIER, feature_net_names
from jgen.pipeline import Pipeline
from jgen.run.posthoc_ema import reconstruct_ema
from jgen.train import distributed
from jgen.train.checkpoint import CheckpointWriteError
from jgen.train.loop import TrainingDiverged, TrainingInterrupted

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_WRITE_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 74, 75
EXIT_CTRL_C = 130  # sample, eval, compare stopped by Ctrl-C (the shell's 128 + SIGINT)

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
flags.DEFINE_list(
    "guidance_interval",
    None,
    "guide only at noise levels s = sigma / alpha in (lo, hi], e.g. 0.28,2.9 (default: at every level).",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "guide_workdir",
    None,
    "sample/eval, diffusion: autoguidance by this run (a weaker model: an earlier checkpoint, a smaller config), "
    "weighted by --guidance.",
    flag_values=FLAGS,
)
flags.DEFINE_integer(
    "guide_step", None, "sample/eval: the guiding run's checkpoint (default: its newest).", flag_values=FLAGS
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
flags.DEFINE_string(
    "out", None, "sample: output PNG; compare: output directory; ema: output run directory.", flag_values=FLAGS
)
flags.DEFINE_float(
    "sigma_rel", None, "ema: the EMA's width relative to its length (EDM2's sigma_rel), e.g. 0.08.", flag_values=FLAGS
)
flags.DEFINE_integer(
    "step", None, "ema: the snapshot step to reconstruct the EMA at; default: the newest snapshot.", flag_values=FLAGS
)
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
# the flags of an image-sampling request that `sample` and `eval` both take (a generator's spec and its guide)
IMAGE_REQUEST_FLAGS = (
    "sampler",
    "steps",
    "spacing",
    "guidance",
    "eta",
    "guidance_interval",
    "guide_workdir",
    "guide_step",
)
SAMPLING_FLAGS = tuple(f for f in FLAGS if any(f in get_method(n).generate_options for n in method_names()))


def _require(name: str, example: str) -> None:
    if FLAGS[name].value in (None, [], ""):
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
    options = {name: FLAGS[name].value for name in SAMPLING_FLAGS if FLAGS[name].value is not None}
    if "guidance_interval" in options:
        try:
            options["guidance_interval"] = tuple(float(v) for v in options["guidance_interval"])
        except ValueError:
            raise InputError(
                f"--guidance_interval={','.join(options['guidance_interval'])!r}: must be two noise levels lo,hi, "
                "e.g. --guidance_interval=0.28,2.9"
            ) from None
    return options


def _guide_option(run) -> dict:
    """{"guide": name} of the run --guide_workdir names, attached to `run` (jgen.run.attach_guide); {} without it."""
    if FLAGS.guide_workdir is None:
        if FLAGS.guide_step is not None:
            raise InputError("--guide_step picks a checkpoint of the guiding run: give --guide_workdir RUN with it")
        return {}
    return {"guide": run_lib.attach_guide(run, FLAGS.guide_workdir, FLAGS.guide_step)}


def _refuse_flags_of_other_runs(flags_here: tuple[str, ...], workdir: str, what: str) -> None:
    """InputError for the first of `flags_here` given on the command line: it does not apply to `workdir` (`what`)."""
    given = [f for f in flags_here if FLAGS[f].present]
    if given:
        raise InputError(f"--{given[0]} does not apply to {workdir!r}, {what}; leave it out")


def cmd_sample(overrides: list[str]) -> None:
    _require("workdir", "runs/vae_mnist")
    check_seed("--seed", FLAGS.seed)
    if FLAGS.out is not None:
        check_output("--out", FLAGS.out, ".png")
    options = _sampling_options()
    pipe = Pipeline.from_workdir(FLAGS.workdir)  # loads; compiles nothing
    options.update(_guide_option(pipe.run))
    if "text" in pipe.method.capabilities:
        _refuse_flags_of_other_runs(("labels", "out"), FLAGS.workdir, "a language model (its samples are printed)")
        if FLAGS.prompt is None:
            raise InputError("this run is a language model: pass --prompt='some text' to continue")
        num, tokens = _num_samples(1), check_int("--num_tokens", FLAGS.num_tokens)
        texts = pipe.text(FLAGS.prompt, num, tokens, FLAGS.seed, **options)
        print(json.dumps({"workdir": FLAGS.workdir, "prompt": FLAGS.prompt, "samples": texts}, indent=2))
        return
    _refuse_flags_of_other_runs(("prompt", "num_tokens"), FLAGS.workdir, f"a {pipe.method.name!r} run of images")
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
    check_seed("--seed", FLAGS.seed)
    if FLAGS.ref_stats_out is not None:
        check_output("--ref_stats_out", FLAGS.ref_stats_out, ".npz")
    if FLAGS.ref_stats is not None and not os.path.isfile(FLAGS.ref_stats):
        raise InputError(f"--ref_stats={FLAGS.ref_stats!r} is not a file; pass a .npz of mu and sigma")
    num = _num_samples(1000)
    run = run_lib.load_run(FLAGS.workdir)
    if "text" in run.method.capabilities:
        image_flags = ("feature_net", "ref_stats", "ref_split", "ref_stats_out", "likelihood_images")
        _refuse_flags_of_other_runs(image_flags, FLAGS.workdir, "a language model (scored by its test perplexity)")
    options = {**_sampling_options(), **_guide_option(run)}  # the request's sampling settings, if any
    result = run_lib.evaluate_run(
        run,
        num,
        FLAGS.seed,
        FLAGS.feature_net,
        ref_stats=FLAGS.ref_stats,
        ref_split=FLAGS.ref_split,
        ref_stats_out=FLAGS.ref_stats_out,
        likelihood_images=FLAGS.likelihood_images,
        spec=run.method.sampling_spec(**options) if options else None,
    )
    if options:  # the request's own settings (a guide by its path and step) stay with its numbers
        result["sampling_options"] = options
    name = "eval.json" if FLAGS.feature_net is None else f"eval_{FLAGS.feature_net}.json"
    with open(os.path.join(FLAGS.workdir, name), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


def cmd_compare(overrides: list[str]) -> None:
    _require("workdirs", "runs/a,runs/b")
    check_seed("--seed", FLAGS.seed)
    out = check_output("--out", FLAGS.out or "compare", directory=True)
    if FLAGS.likelihood_images:  # checked here, not when the first diffusion row comes after others were sampled
        check_int("--likelihood_images", FLAGS.likelihood_images, 2, " (test images, e.g. 64)")
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
        net = FLAGS.feature_net or MNIST_CLASSIFIER
        options = _sampling_options()
        print(compare_workdirs(FLAGS.workdirs, out, num, FLAGS.seed, FLAGS.likelihood_images, net, **options))


def cmd_ema(overrides: list[str]) -> None:
    _require("workdir", "runs/ddpm_mnist")
    _require("sigma_rel", "0.08")
    print(json.dumps(reconstruct_ema(FLAGS.workdir, FLAGS.sigma_rel, FLAGS.step, FLAGS.out), indent=2))


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
            *IMAGE_REQUEST_FLAGS,
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
            *IMAGE_REQUEST_FLAGS,
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
    "ema": Command(
        cmd_ema,
        "reconstruct an EMA of any length from a run's post-hoc EMA snapshots -> a run directory to sample/eval",
        ("workdir", "sigma_rel", "step", "out"),
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
        return error(" ".join(str(e).split()))
    except KeyboardInterrupt:  # train saves and stops on SIGINT itself (exit 75); the others had nothing to save
        print(f"jgen {name}: interrupted (Ctrl-C) before it finished; nothing was written", file=sys.stderr)
        return EXIT_CTRL_C
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
