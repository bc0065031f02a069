"""The FLOP count and peaks benchmarks/train_throughput.py reads: a compiled train step's FLOPs against the matmul
count of its network, and the accelerator table."""

import math
import types

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from jgen.data import get_source
from jgen.run import build_method, with_defaults
from jgen.train.loop import jitted_train_step
from jgen.train.throughput import PEAK_TFLOPS, peak_flops, step_flops, table_row


def test_step_flops_are_the_networks_matmuls_and_grow_with_the_batch(tiny):
    config = with_defaults(tiny("autoencoder"))  # an MLP autoencoder on 8x8 digits: 64 -> 32 -> 4 -> 32 -> 64
    train, _, info = get_source(config.data)
    method = build_method(config, info, train)
    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    flops = {}
    for b in (16, 48):
        batch = {"image": np.zeros((b, *info.shape), np.float32), "label": np.zeros((b,), np.int32)}
        state = jax.eval_shape(method.init_state, jax.random.PRNGKey(0), batch)
        flops[b] = step_flops(jitted_train_step(method, mesh).lower(state, batch).compile(), mesh.size)
    assert 0 < flops[16] < flops[48]
    # Per example, a dense layer [i, o] costs 2io FLOPs forward, 2io for its weight gradient and 2io for its input
    # gradient (not needed by the first layer); activations, loss and Adam add a little on top.
    kernels = {
        jax.tree_util.keystr(p): math.prod(x.shape)
        for p, x in jax.tree_util.tree_flatten_with_path(state.params)[0]
        if "kernel" in jax.tree_util.keystr(p)
    }
    matmuls = 6 * sum(kernels.values()) - 2 * kernels["['encoder']['Dense_0']['kernel']"]
    per_example = (flops[48] - flops[16]) / 32
    assert matmuls <= per_example <= 1.4 * matmuls, (per_example, matmuls)


def test_peak_table_by_device_kind():
    h100 = types.SimpleNamespace(platform="gpu", device_kind="NVIDIA H100 80GB HBM3")
    assert peak_flops([h100, h100], "bfloat16") == (2 * 989e12, "H100 SXM bfloat16 dense 989 TFLOP/s per chip x 2")
    assert peak_flops([h100], "float32")[0] == 494.7e12
    assert [table_row(k) for k in ("TPU v4", "TPU v5 lite", "TPU v5", "NVIDIA A100-SXM4-40GB", "NVIDIA H100 PCIe")] == [
        "TPU v4",
        "TPU v5e",
        "TPU v5p",
        "A100",
        "H100 PCIe",
    ]
    assert {PEAK_TFLOPS[r]["bfloat16"] for r in ("TPU v4", "TPU v5e", "TPU v5p", "A100")} == {275, 197, 459, 312}
    unknown = types.SimpleNamespace(platform="gpu", device_kind="NVIDIA GeForce GTX 1080")
    peak, why = peak_flops([unknown])
    assert peak is None and "GTX 1080" in why and "--peak_tflops" in why
    with pytest.raises(ValueError, match="float16"):
        peak_flops([h100], "float16")
