"""The run layer: run directories and what is loaded from them.

    final = train_and_evaluate(config, "runs/vae")        # train (or resume) a validated config in a run directory
    run = load_run("runs/vae")                            # Run(config, method, state, info, workdir, ...)
    net = load_feature_net("mnist_classifier")            # a feature network, by name

A run directory holds config.json, metrics.jsonl and the checkpoints. Runs a method is built on
(`Method.requirements`, e.g. latent diffusion's first stage) are loaded here and handed to the method, which never
reads files itself; so are the feature networks jgen trains itself (`load_feature_net`). Configs come from
`jgen.run.experiment`, evaluations of a loaded run from `jgen.run.evaluate`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from typing import Any

import jax
import ml_collections
import numpy as np

from jgen.config import ConfigError, InputError, cache_dir, fail, from_json, identity_mismatches, to_json
from jgen.data import get_source
from jgen.methods import Method, Resources
from jgen.metrics.feature_nets import (
    FEATURE_NETS,
    FeatureNet,
    FeatureNetSpec,
    classifier_feature_net,
    feature_net_names,
)
from jgen.run.experiment import method_class, validate, with_defaults
from jgen.train import checkpoint as ckpt
from jgen.train.determinism import use_deterministic_ops
from jgen.train.distributed import check_same_config
from jgen.train.lock import checkpoints_locked, hold_workdir
from jgen.train.loop import train_loop
from jgen.train.posthoc_ema import with_profiles


@dataclasses.dataclass
class Run:
    """A trained (or training) run: its config, Method, TrainState and data."""

    config: ml_collections.ConfigDict
    method: Method
    state: Any
    info: Any
    workdir: str
    train_source: Any
    test_source: Any

    @property
    def step(self) -> int:
        return int(jax.device_get(self.state.step))


REQUIRES_FILE = "requires.json"  # the runs a run is built on: name -> {"workdir": absolute path, "fingerprint"}


def run_fingerprint(run: Run) -> str:
    """16 hex digits that change with a run's EMA parameters (a hash of their bytes, in tree order)."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(jax.device_get(run.state.ema_params)):
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()[:16]


def _required_runs(config: ml_collections.ConfigDict, workdir: str | None) -> tuple[dict[str, Run], dict[str, dict]]:
    """The runs `config`'s method is built on (`Method.requirements`) and their identities. A run directory that
    recorded them (`requires.json`) gets exactly those: the absolute path and parameters it was trained on, whatever
    the current folder; a different run there is refused."""
    recorded = {}
    if workdir is not None and os.path.exists(os.path.join(workdir, REQUIRES_FILE)):
        with open(os.path.join(workdir, REQUIRES_FILE)) as f:
            recorded = json.load(f)
    runs, identities = {}, {}
    for name, configured in method_class(config).requirements(config).items():
        known = recorded.get(name)
        where = known["workdir"] if known else configured
        if known and not os.path.isdir(where):
            raise InputError(
                f"the {name} run {workdir!r} was trained on is not at {where!r} any more (fingerprint "
                f"{known['fingerprint']}); put that run back there"
            )
        run = load_run(where)
        identities[name] = {"workdir": os.path.abspath(where), "fingerprint": run_fingerprint(run)}
        if known and identities[name]["fingerprint"] != known["fingerprint"]:
            raise InputError(
                f"the {name} run at {where!r} is not the one {workdir!r} was trained on (its parameters' "
                f"fingerprint is {identities[name]['fingerprint']}, not {known['fingerprint']}); "
                "put the original back there"
            )
        runs[name] = run
    return runs, identities


def build_method(config: ml_collections.ConfigDict, info, train_source, workdir: str | None = None) -> Method:
    """The Method of a validated config, with the runs it is built on loaded and handed in (for the run directory
    `workdir`: the ones it recorded)."""
    runs, _ = _required_runs(config, workdir)
    return method_class(config)(config, info, Resources(runs=runs, train_source=train_source))


def _json_dict(config: ml_collections.ConfigDict) -> dict:
    """A JSON-normalised plain dict (tuples become lists) for comparisons."""
    return json.loads(json.dumps(config.to_dict()))


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """The completed config of a run directory (FileNotFoundError if it is not one)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{workdir!r} has no config.json: it is not a jgen run directory "
            f"(train one with `python -m jgen train --config ... --workdir {workdir}`)"
        )
    with open(path) as f:
        text = f.read()
    try:
        config = from_json(text)
    except ValueError as e:  # json.JSONDecodeError is one
        raise InputError(
            f"{path} is not a run's config (not readable JSON: {' '.join(str(e).split())}); it is written by "
            f"`python -m jgen train` when a run starts: restore the file or train in a new --workdir"
        ) from None
    return with_defaults(config)


def check_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
    """InputError naming the differences if `workdir` holds a run of another model; nothing is written."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError(f"--workdir {workdir!r} is a file, not a directory: pass a new or existing run directory")
    if os.path.exists(os.path.join(workdir, "config.json")):
        bad = identity_mismatches(_json_dict(read_config(workdir)), _json_dict(config))
        if bad:
            raise InputError(
                f"workdir {workdir!r} holds a run of a different model/config; refusing to resume it: "
                + "; ".join(bad)
                + ". Use a new --workdir, or the config that made this run."
            )


def write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Write the resolved config as `<workdir>/config.json` (process 0), atomically."""
    if jax.process_index() == 0:
        path = os.path.join(workdir, "config.json")
        with open(path + ".tmp", "w") as f:
            f.write(to_json(config))
        os.replace(path + ".tmp", path)


def open_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Create `workdir`, or reopen it if it holds a run of the same model (InputError naming the differences if
    not); write the resolved config.json."""
    check_workdir(config, workdir)
    os.makedirs(workdir, exist_ok=True)
    write_config(config, workdir)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Train `config` in `workdir` (resuming from its latest checkpoint); returns the final evaluation metrics."""
    config = with_defaults(config)
    use_deterministic_ops(bool(config.train.get("deterministic", False)))  # before validate starts JAX's backends
    validate(config)
    check_same_config(to_json(config))  # every process of a multi-process job must train the same config
    check_workdir(config, workdir)
    train_src, test_src, info = get_source(config.data)
    if config.data.batch_size > info.num_train:
        fail(
            "data.batch_size",
            config.data.batch_size,
            f"must not exceed the training split ({info.num_train} examples of {config.data.name!r})",
            f"--config.data.batch_size={min(128, info.num_train)}",
        )
    required, identities = _required_runs(config, workdir if os.path.isdir(workdir) else None)
    method = method_class(config)(config, info, Resources(runs=required, train_source=train_src))
    os.makedirs(os.path.dirname(os.path.abspath(workdir)), exist_ok=True)
    try:
        os.mkdir(workdir)
        created = True  # by this call: a start that fails removes it again
    except FileExistsError:
        created = False
    started = []

    def init_source() -> tuple[object, str]:  # train.init_from's parameters, for a run that starts at step 0
        where, step = config.train.init_from, config.train.init_step or None
        try:
            source = load_run(where, step)
        except (FileNotFoundError, InputError) as e:
            raise InputError(f"train.init_from={where!r} cannot be read: {e}") from None
        identities["init_from"] = {
            "workdir": os.path.abspath(where),
            "step": source.step,
            "fingerprint": run_fingerprint(source),
        }
        return jax.device_get(source.state.ema_params), f"{where} (step {source.step})"

    def start() -> None:  # the model is built and the checkpoint restored (or there is none): the run is this config
        check_workdir(config, workdir)  # again, under the lock: another train may have started it meanwhile
        path = os.path.join(workdir, REQUIRES_FILE)
        record = {**(json.load(open(path)) if os.path.exists(path) else {}), **identities}  # a resume keeps init_from
        if record and jax.process_index() == 0:
            with open(path, "w") as f:
                json.dump(record, f, indent=2)
        write_config(config, workdir)
        started.append(True)

    with hold_workdir(workdir) if jax.process_index() == 0 else contextlib.nullcontext():
        try:
            return train_loop(
                config,
                workdir,
                method,
                train_src,
                test_src,
                feature_net=lambda: load_feature_net(config.eval.feature_net),
                on_start=start,
                init_source=init_source if config.train.init_from else None,
            )
        except BaseException:  # removed while the lock is held, so no other train can be using it
            if created and not started and jax.process_index() == 0:
                shutil.rmtree(workdir, ignore_errors=True)
            raise


def run_progress(workdir: str) -> tuple[int | None, int]:
    """(step of the newest checkpoint, or None without one; config.train.steps) of a run directory, without loading
    it or writing anything (FileNotFoundError if `workdir` is not a run directory). Finished when the two agree."""
    config = read_config(workdir)
    if not os.path.isdir(ckpt.checkpoint_dir(workdir)):
        return None, config.train.steps
    with checkpoints_locked(ckpt.checkpoint_dir(workdir)):
        manager = ckpt.make_manager(workdir)
        latest = manager.latest_step()
        manager.close()
    return latest, config.train.steps


def load_run(workdir: str, step: int | None = None) -> Run:
    """A run directory's config and its latest (or given) checkpoint, ready to generate and evaluate. A run that is
    training is read between its saves: the newest complete checkpoint."""
    config = read_config(workdir)
    with checkpoints_locked(ckpt.checkpoint_dir(workdir)):  # a save and its rotation wait for this read
        return _load_run(config, workdir, step)


def _load_run(config: ml_collections.ConfigDict, workdir: str, step: int | None) -> Run:
    no_checkpoint = f"{workdir!r} has no checkpoint yet; train first or wait for the first checkpoint"
    if not os.path.isdir(ckpt.checkpoint_dir(workdir)):  # a reader creates nothing
        raise FileNotFoundError(no_checkpoint)
    manager = ckpt.make_manager(workdir)
    if manager.latest_step() is None:
        raise FileNotFoundError(no_checkpoint)
    if step is not None and step not in manager.all_steps():
        raise InputError(f"step={step}: {workdir!r} has checkpoints at steps {sorted(manager.all_steps())}")
    train_src, test_src, info = get_source(config.data)
    method = build_method(config, info, train_src, workdir)
    batch = {"image": np.zeros((1, *info.shape), np.float32), "label": np.zeros((1,), np.int32)}
    init_state = with_profiles(method.init_state, len(config.train.posthoc_ema.sigma_rels))  # post-hoc EMA's
    abstract = jax.eval_shape(init_state, jax.random.PRNGKey(0), batch)
    if step is None:  # the newest checkpoint that restores (a damaged one is reported and skipped, not moved)
        state = ckpt.restore_latest(workdir, manager, abstract, with_data=False, move_aside=False)[0]
    else:
        state = ckpt.restore(manager, abstract, step, with_data=False)[0]
    manager.close()
    return Run(config, method, state, info, workdir, train_src, test_src)


def load_feature_net(name: str, **kwargs) -> FeatureNet:
    """The feature network `name` (`jgen.metrics.feature_nets.FEATURE_NETS`): built from its weights file
    (`kwargs` go to its loader, e.g. path=, batch_size=), or, for a classifier jgen trains itself, loaded from its
    run directory (`workdir=`, default `cache_dir(name)`; `batch_size=`) after checking it is a finished
    classifier of the images the network is for."""
    if name not in FEATURE_NETS:
        raise InputError(f"feature_net={name!r} is not known; choose one of {feature_net_names()}")
    spec = FEATURE_NETS[name]
    return spec.load(**kwargs) if spec.load is not None else _trained_classifier(spec, **kwargs)


def _trained_classifier(spec: FeatureNetSpec, workdir: str | None = None, batch_size: int = 500) -> FeatureNet:
    """The finished classifier run of `workdir` (default: `cache_dir(spec.name)`) as the feature net `spec`, with its
    EMA parameters."""
    workdir = workdir or cache_dir(spec.name)
    how = (
        f"Train it first (about 7 minutes on 2 CPU cores): python -m jgen train "
        f"--config {spec.trained_by} --workdir {workdir}"
    )
    if not os.path.exists(os.path.join(workdir, "config.json")):
        raise FileNotFoundError(f"no {spec.name} in {workdir!r}. {how}")
    config = read_config(workdir)
    if config.method.name != "classifier":
        raise InputError(f"{workdir!r} holds a {config.method.name!r} run, not a classifier. {how}")
    try:
        run = load_run(workdir)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"the {spec.name} in {workdir!r} has no checkpoint. {how}") from e
    if run.step < config.train.steps:
        raise InputError(
            f"the {spec.name} in {workdir!r} is unfinished (step {run.step} of "
            f"{config.train.steps}); its features would not be the reference ones. Rerun the same "
            f"command to finish it: {how.split(': ', 1)[1]}"
        )
    if tuple(run.info.shape) != spec.input_shape or run.info.num_classes != spec.num_classes:
        raise InputError(
            f"{workdir!r} holds a classifier of {run.info.shape} images with {run.info.num_classes} "
            f"classes; the {spec.name} takes {spec.input_shape} images and {spec.num_classes} classes"
        )
    params = jax.tree.map(jax.numpy.asarray, jax.device_get(run.state.ema_params))
    return classifier_feature_net(run.method, params, spec.name, batch_size)
