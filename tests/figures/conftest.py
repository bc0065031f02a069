"""Tiny runs for the chart tests, under the names the charts read (gan_mnist, ddpm_mnist, ...) in one folder per
session, each trained the first time a test asks for it, on the 8x8 digits at sizes that train in seconds. Their
models are the other tests' tiny models, so the programs compile once per session."""

import pytest

from jgen.run import train_and_evaluate
from tests.conftest import tiny_config
from tests.figures.tiny_runs import tiny_autoencoder, tiny_diffusion, tiny_gan


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory):
    return tmp_path_factory.mktemp("figure_runs")


@pytest.fixture(scope="session")
def gan_runs(runs_root):
    """The runs folder, holding a finished tiny `gan_mnist` (sample grids and sample-quality rows every 8 steps)."""
    train_and_evaluate(tiny_gan(), str(runs_root / "gan_mnist"))
    return runs_root


@pytest.fixture(scope="session")
def diffusion_runs(runs_root):
    """The runs folder, holding a finished tiny class-conditional `ddpm_mnist`."""
    train_and_evaluate(tiny_diffusion(), str(runs_root / "ddpm_mnist"))
    return runs_root


@pytest.fixture(scope="session")
def ae_runs(runs_root):
    """The runs folder, holding a finished tiny `ae_mnist` (evaluated every 10 steps) and `vae_mnist`."""
    train_and_evaluate(tiny_autoencoder(), str(runs_root / "ae_mnist"))
    train_and_evaluate(tiny_config("vae", steps=10), str(runs_root / "vae_mnist"))
    return runs_root
