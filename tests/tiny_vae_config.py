"""A VAE on the 8x8 digits that trains in seconds; used by the CLI, resume and multi-device tests."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.conftest import tiny_config  # noqa: E402


def get_config():
    c = tiny_config("vae", steps=30)
    c.train.checkpoint_every = 100
    return c
