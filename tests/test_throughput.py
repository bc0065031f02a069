"""The FLOP counts and peaks benchmarks/train_throughput.py reads: the jaxpr count against closed forms and against
XLA:CPU's cost analysis, a compiled train step's FLOPs against the matmul count of its network, and the accelerator
table."""

import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import Mesh

from jgen.data import get_source
from jgen.run import build_method, with_defaults
from jgen.train.loop import jitted_train_step
from jgen.train.throughput import PEAK_TFLOPS, count_flops, peak_flops, step_flops, table_row


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


def _conv(x, w, stride=1, padding="SAME", lhs_dilation=(1, 1)):
    return lax.conv_general_dilated(
        x, w, (stride, stride), padding, lhs_dilation=lhs_dilation, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def test_count_flops_closed_forms():
    """Convolutions count 2 FLOPs per multiply-add of the taps that read the input (a 3x3 'SAME' convolution on
    H x W has 3H - 2 valid (output, tap) pairs per row axis); a dense layer 2 * B * in * out; attention's two
    matmuls 2 * B * L^2 * d each; elementwise arithmetic one FLOP per element, reductions one per input element,
    transcendentals none; scan bodies count once per iteration."""
    b, h, w, cin, cout = 2, 8, 6, 3, 5
    x, k = jnp.ones((b, h, w, cin)), jnp.ones((3, 3, cin, cout))
    assert count_flops(_conv, x, k).matmul == 2 * b * cout * cin * (3 * h - 2) * (3 * w - 2)
    assert count_flops(lambda x, k: _conv(x, k, padding="VALID"), x, k).matmul == 2 * b * cout * cin * 9 * (h - 2) * (
        w - 2
    )
    # stride 2 on 8 rows ('SAME': output 4, padding 0 before, 1 after): taps at rows 2o + {0, 1, 2}, the last of
    # them past the end for o = 3, so 11 of 12 pairs; 6 columns: output 3, 9 of 9 pairs... minus the same edge: 8
    assert count_flops(lambda x, k: _conv(x, k, stride=2), x, k).matmul == 2 * b * cout * cin * 11 * 8
    # the input gradient of a convolution is a convolution of a dilated input: its holes are not counted
    dx = count_flops(lambda x, k: jax.vjp(lambda x: _conv(x, k), x)[1](jnp.ones((b, h, w, cout)))[0], x, k)
    assert dx.matmul == 2 * count_flops(_conv, x, k).matmul  # the forward (kept by vjp) and its transpose
    dense = count_flops(lambda a, m: a @ m, jnp.ones((4, 7)), jnp.ones((7, 9)))
    assert (dense.matmul, dense.other) == (2 * 4 * 7 * 9, 0)
    q = jnp.ones((b, 16, 1, 8))
    att = count_flops(lambda q: jax.nn.dot_product_attention(q, q, q, implementation="xla"), q)
    assert att.matmul == 2 * (2 * b * 16 * 16 * 8)
    ew = count_flops(lambda v: jnp.sum(jnp.exp(v) * 2.0 + v), jnp.ones((10, 3)))
    assert (ew.matmul, ew.other) == (0, 30 + 30 + 30)  # mul, add, reduce_sum; exp is a transcendental
    scanned = count_flops(
        lambda a, m: lax.scan(lambda c, _: (c @ m, None), a, None, length=5)[0], jnp.ones((4, 7)), jnp.ones((7, 7))
    )
    assert scanned.matmul == 5 * 2 * 4 * 7 * 7


@pytest.mark.parametrize(
    "method,model",
    [
        pytest.param(  # the UNet's count is the longest compile here: make test-slow
            "diffusion",
            {"kind": "unet", "channels": 32, "channel_mult": (1, 2), "attention_resolutions": (4,), "dropout": 0.1},
            marks=pytest.mark.slow,
        ),
        ("autoregressive", None),
        ("vae", {"kind": "conv"}),
    ],
)
def test_count_flops_matches_xla_cpu_cost_analysis(tiny, method, model):
    """The jaxpr count of a whole train step (network, loss, gradients, optimizer, EMA) is within 2% of XLA:CPU's
    cost analysis, which counts convolutions (XLA:GPU's does not), for networks whose matmuls dominate (all that jgen
    ships; the elementwise part is counted as XLA counts each primitive, before XLA's simplifications, so at toy
    widths such as 8 channels, where it is a large share, the two drift apart by several percent)."""
    config = with_defaults(tiny(method))
    if model:
        config.model.update(model)
    train, _, info = get_source(config.data)
    method_obj = build_method(config, info, train)
    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    batch = {"image": np.zeros((8, *info.shape), np.float32), "label": np.zeros((8,), np.int32)}
    state = jax.eval_shape(method_obj.init_state, jax.random.PRNGKey(0), batch)
    step = jitted_train_step(method_obj, mesh)
    count = count_flops(step, state, batch)
    xla = step_flops(step.lower(state, batch).compile(), mesh.size)
    assert count.matmul > 0.5 * count.total
    assert abs(count.total / xla - 1) < 0.02, (count, xla)
