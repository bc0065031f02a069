"""Shared fixtures: tiny configs that train in seconds on the 8x8 digits."""

import os
import sys

import pytest

# Identical programs (the same tiny model in several runs and subprocesses) compile once per test session.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".jax_cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The suite's programs are tiny and compiled once each: compiling them fast (LLVM's cheap passes) is worth more than
# the run time that optimising them would save (most of the suite's time is compiling). Subprocesses inherit this;
# tests that set their own XLA_FLAGS add it. XLA_FLAGS=--xla_backend_optimization_level=3 runs the suite as built.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()


def host_devices_flags(devices: int) -> str:
    """XLA_FLAGS for a subprocess with `devices` CPU devices, keeping the suite's own flags (FAST_COMPILE)."""
    return f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


# Small sizes for the 8x8 digits, applied to whichever of these fields the method's own defaults have.
TINY_MODEL = {"kind": "mlp", "features": (32,), "hidden": 32, "latent_dim": 4}  # mlp compiles fastest
TINY_METHOD = {"latent_dim": 4, "likelihood": "gaussian", "beta": 1.0, "eval_iw_samples": 4}


def tiny_config(method: str = "vae", steps: int = 30):
    """`method`'s default config on the 8x8 digits at sizes that train in a few seconds."""
    from jgen.run import default_config

    c = default_config(method)
    c.name = f"tiny_{method}"
    c.data.name = "digits"
    c.data.batch_size = 32
    # `kind` is an encoder-decoder's architecture (vae, autoencoder); diffusion's model.kind names its backbone
    c.model.update({k: v for k, v in TINY_MODEL.items() if k in c.model and (k != "kind" or "features" in c.model)})
    c.method.update({k: v for k, v in TINY_METHOD.items() if k in c.method})
    c.train.steps = steps
    c.train.log_every = 5
    c.train.eval_every = 0
    c.train.sample_every = -1
    c.train.checkpoint_every = 0
    c.train.eval_batch_size = 120
    c.train.num_eval_examples = 240
    c.train.progress = False
    c.train.ema_decay = 0.9
    return c


@pytest.fixture
def tiny():
    return tiny_config


# -- tiny runs under the names the course's charts read (tests/course, tests/test_notebooks.py) -----------------
@pytest.fixture(scope="session")
def runs_root(tmp_path_factory):
    """One runs folder per session; each tiny run in it is trained the first time a test asks for it, on the 8x8
    digits at sizes that train in seconds. Their models are the other tests' tiny models, so the programs compile
    once per session."""
    return tmp_path_factory.mktemp("figure_runs")


@pytest.fixture(scope="session")
def gan_runs(runs_root):
    """The runs folder, holding a finished tiny `gan_mnist` (sample grids and sample-quality rows every 8 steps)."""
    from jgen.run import train_and_evaluate
    from tests.course.tiny_runs import tiny_gan

    train_and_evaluate(tiny_gan(), str(runs_root / "gan_mnist"))
    return runs_root


@pytest.fixture(scope="session")
def diffusion_runs(runs_root):
    """The runs folder, holding a finished tiny class-conditional `ddpm_mnist`."""
    from jgen.run import train_and_evaluate
    from tests.course.tiny_runs import tiny_diffusion

    train_and_evaluate(tiny_diffusion(), str(runs_root / "ddpm_mnist"))
    return runs_root


@pytest.fixture(scope="session")
def ae_runs(runs_root):
    """The runs folder, holding a finished tiny `ae_mnist` (evaluated every 10 steps) and `vae_mnist`."""
    from jgen.run import train_and_evaluate
    from tests.course.tiny_runs import tiny_autoencoder

    train_and_evaluate(tiny_autoencoder(), str(runs_root / "ae_mnist"))
    train_and_evaluate(tiny_config("vae", steps=10), str(runs_root / "vae_mnist"))
    return runs_root


@pytest.fixture(scope="session")
def vae_2d_runs(runs_root):
    """The runs folder, holding a finished tiny `vae_2d_mnist` (a VAE with a 2-D latent, evaluated every 5 steps)."""
    from jgen.run import train_and_evaluate
    from tests.course.tiny_runs import tiny_vae_2d

    train_and_evaluate(tiny_vae_2d(), str(runs_root / "vae_2d_mnist"))
    return runs_root


@pytest.fixture(scope="session")
def bad_input_runs(tmp_path_factory):
    """A folder the bad-input tables read and must leave unchanged: a finished tiny VAE (`vae`) and class-conditional
    diffusion run (`diffusion`), a file where a folder belongs (`a_file`) and an empty folder (`empty`)."""
    from jgen.run import train_and_evaluate

    root = tmp_path_factory.mktemp("bad_inputs")
    train_and_evaluate(tiny_config("vae", steps=5), str(root / "vae"))
    d = tiny_config("diffusion", steps=3)
    d.method.update(dict(timesteps=50, sample_steps=3))
    d.model.update(dict(channels=8, channel_mult=(1,), attention_resolutions=()))
    train_and_evaluate(d, str(root / "diffusion"))
    (root / "a_file").write_text("not a directory")
    (root / "empty").mkdir()
    return root


# -- pytest-xdist: `make test` spreads the suite over the machine's cores (-n auto --dist loadgroup) -------------
def pytest_collection_modifyitems(config, items):
    """Keep the tests that share an expensive fixture on one worker, so that the fixture is built once: the files
    that use one of this folder's session-scoped fixtures (e.g. the tiny runs under `runs_root`) form one group per
    such fixture at the root of what they use, and every other file with a module-scoped fixture is its own group.
    Other tests go wherever a worker is free."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    here = os.path.dirname(os.path.abspath(__file__))

    def shared(item, scope):  # the fixtures of `scope` defined under tests/ that the test uses, by name
        info = getattr(item, "_fixtureinfo", None)
        defs = {name: d[-1] for name, d in (info.name2fixturedefs.items() if info else ())}
        return {
            name: d
            for name, d in defs.items()
            if d.scope == scope and os.path.abspath(d.func.__code__.co_filename).startswith(here)
        }

    group = {}
    for item in items:
        session = shared(item, "session")
        roots = sorted(name for name, d in session.items() if not set(d.argnames) & set(session))
        if roots:
            group[item.path] = "session:" + ",".join(roots)
        elif shared(item, "module"):
            group.setdefault(item.path, f"module:{item.path}")
    for item in items:
        if item.path in group:
            item.add_marker(pytest.mark.xdist_group(group[item.path]))
