"""Shared fixtures: tiny configs that train in seconds on the 8x8 digits."""

import os
import sys

import pytest

# Identical programs (the same tiny model in several runs and subprocesses) compile once per test session.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def tiny_config(method: str = "vae", steps: int = 30):
    """A config for the 8x8 digits that trains in a few seconds."""
    from jgen.config import base_config

    c = base_config()
    c.name = f"tiny_{method}"
    c.data.name = "digits"
    c.data.batch_size = 32
    c.method.name = method
    c.model.kind = "mlp"       # compiles in a fraction of the conv model's time; conv shapes are tested apart
    c.model.features = (32,)
    c.model.hidden = 32
    c.model.latent_dim = 4
    if method == "vae":
        c.method.latent_dim = 4
        c.method.likelihood = "gaussian"
        c.method.beta = 1.0
        c.method.eval_iw_samples = 4
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
