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
    c.model.update({k: v for k, v in TINY_MODEL.items() if k in c.model})
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
