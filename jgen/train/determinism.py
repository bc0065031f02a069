"""`train.deterministic`: bitwise-repeatable runs on a GPU.

XLA:CPU is deterministic as it is. XLA:GPU is not by default: some kernels (scatter-adds, some convolution and
matmul algorithms, reductions with atomics) may add in a different order on every run, and the autotuner picks
kernels by timing them while compiling, so two compilations of one program may pick different ones. XLA's
`--xla_gpu_deterministic_ops` makes it use only deterministic kernels and choose them without timing, so the same
program on the same GPU, driver and libraries gives the same bits on every run, a resumed one included.

XLA reads its flags once, when JAX starts its backends; `use_deterministic_ops` therefore adds the flag to
XLA_FLAGS and must run before the first JAX computation of the process (`jgen train` does it before anything
else touches JAX). Where the backends have already started without the flag, it refuses in one line instead of
running a non-deterministic job that the config says is deterministic.
"""

from __future__ import annotations

import os

from jax._src import xla_bridge

from jgen.config import ConfigError

FLAGS = ("--xla_gpu_deterministic_ops=true",)


def use_deterministic_ops(enabled: bool) -> None:
    """Add `FLAGS` to XLA_FLAGS when `enabled` (ConfigError when JAX's backends have started without them)."""
    if not enabled:
        return
    current = os.environ.get("XLA_FLAGS", "").split()
    missing = [f for f in FLAGS if f not in current]
    if not missing:
        return
    if xla_bridge.backends_are_initialized():
        raise ConfigError(
            "config.train.deterministic=True must take effect before JAX starts its backends, and "
            "this process has already started them. Fix: run it in a fresh process (`python -m jgen "
            f"train ...`), or start Python with XLA_FLAGS='{' '.join(FLAGS)}'"
        )
    os.environ["XLA_FLAGS"] = " ".join(current + missing)
