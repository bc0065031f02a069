"""Tiny runs for the chart tests, trained once per session under the names the charts read (gan_mnist, ...),
on the 8x8 digits at sizes that train in seconds."""

import pytest

from jgen.run import train_and_evaluate
from tests.conftest import tiny_config
from tests.gan.test_gan_method import gan_config


def tiny_gan(steps: int = 24):
    c = gan_config(tiny_config, steps)  # the GAN tests' model: its programs are compiled once per session
    c.train.log_every = 1          # every step logged: the table's steps 0, 1 and 10 are rows of their own
    c.train.sample_every = 8
    return c


@pytest.fixture(scope="session")
def gan_runs(tmp_path_factory):
    """A runs folder holding a finished tiny `gan_mnist`."""
    root = tmp_path_factory.mktemp("figure_runs")
    train_and_evaluate(tiny_gan(), str(root / "gan_mnist"))
    return root
