"""Throughput figures of a train step: its FLOP count, the hardware's peak, and model FLOP utilisation.

    count = count_flops(jitted_train_step(method, mesh), state, batch)   # from the program itself, any backend
    peak, where = peak_flops(jax.devices(), "bfloat16")
    mfu = count.matmul / step_seconds / peak

`count_flops` counts the FLOPs of a JAX function from its jaxpr, the program JAX hands to every backend, so the
number is the same on CPU, GPU and TPU: 2 per multiply-add of every `dot_general` and `conv_general_dilated`
(a convolution's taps that fall on padding or on the holes of a dilated input are not counted, as XLA does not
count them) -- the work of the matrix units, which MFU compares with their peak -- and, apart, one FLOP per output
element of elementwise arithmetic and per input element of reductions, as XLA's cost analysis counts them
(transcendentals such as exp and rsqrt are not FLOPs there either; threefry's random bits are integer operations
that XLA counts as 45 FLOPs per 32-bit word). It counts the whole program: a step jitted
with shardings is counted for all devices together. `step_flops` reads XLA's own cost analysis of a compiled
program instead (one device's program, times the device count). The two agree on the CPU (tested); XLA:GPU's
cost analysis leaves out the convolutions it hands to cuDNN as custom calls, so on a GPU only the jaxpr count
is right.

Peaks: for GPUs and TPUs the vendors' dense (no sparsity) figures per chip, in `PEAK_TFLOPS`; for the CPU a dense
matmul of the same dtype measured on this machine (`measure_matmul_flops`), since no table knows a shared host.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import ClosedJaxpr, Jaxpr

# Dense peak TFLOP/s per chip, by compute dtype. float32 is the rate at which JAX's default matmul precision runs
# float32 operands: TF32 tensor cores on A100/H100/H200, one bfloat16 pass on TPUs (so equal to bfloat16 there).
# With jax_default_matmul_precision="highest" float32 runs far slower (H100 SXM: 67 TFLOP/s without tensor cores).
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 PCIe": {"bfloat16": 756.0, "float32": 378.0},
    "H100 SXM": {"bfloat16": 989.0, "float32": 494.7},
    "H200": {"bfloat16": 989.0, "float32": 494.7},
    "A100": {"bfloat16": 312.0, "float32": 156.0},
    "TPU v4": {"bfloat16": 275.0, "float32": 275.0},
    "TPU v5e": {"bfloat16": 197.0, "float32": 197.0},
    "TPU v5p": {"bfloat16": 459.0, "float32": 459.0},
}
# `device_kind` strings (lower case, first match wins) -> table row. JAX names a v5e "TPU v5 lite" and a v5p "TPU v5".
_KINDS = (
    ("h100 pcie", "H100 PCIe"),
    ("h100", "H100 SXM"),
    ("h200", "H200"),
    ("a100", "A100"),
    ("tpu v4", "TPU v4"),
    ("tpu v5 lite", "TPU v5e"),
    ("tpu v5e", "TPU v5e"),
    ("tpu v5p", "TPU v5p"),
    ("tpu v5", "TPU v5p"),
)


# Elementwise primitives that count FLOPs per output element (XLA's cost analysis counts transcendentals such as
# exp, log, tanh and rsqrt apart from FLOPs, and so does `count_flops`: they are not listed).
ELEMENTWISE = frozenset(
    {
        "add",
        "add_any",
        "sub",
        "mul",
        "div",
        "rem",
        "max",
        "min",
        "neg",
        "abs",
        "sign",
        "floor",
        "ceil",
        "round",
        "square",
        "integer_pow",
        "select_n",
        "clamp",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "and",
        "or",
        "xor",
        "not",
        "shift_left",
        "shift_right_logical",
        "shift_right_arithmetic",
        "is_finite",
        "nextafter",
        "convert_element_type",
        "logistic",
        "erf_inv",
    }
)
# FLOPs per element where it is not one, as XLA expands these primitives: logistic(x) = 1 / (1 + exp(-x)) (3, and
# an exp), erf_inv (the inverse CDF of jax.random.normal) a polynomial of 39.
PER_ELEMENT = {"logistic": 3.0, "erf_inv": 39.0}
THREEFRY_PER_WORD = 45.0  # integer operations of XLA's threefry2x32 per random 32-bit word (rbg's hardware: 0)
# Reductions: one FLOP per input element.
REDUCTIONS = frozenset(
    {
        "reduce_sum",
        "reduce_max",
        "reduce_min",
        "reduce_prod",
        "argmax",
        "argmin",
        "cumsum",
        "cumprod",
        "cummax",
        "cummin",
        "cumlogsumexp",
    }
)


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """FLOPs of a program: `matmul` (dot_general and convolutions, 2 per multiply-add) and `other` (elementwise
    arithmetic and reductions). `unknown_trips`: while loops whose body was counted once (their trip count is not
    known before running)."""

    matmul: float
    other: float
    unknown_trips: int = 0

    @property
    def total(self) -> float:
        return self.matmul + self.other

    def __add__(self, o: FlopCount) -> FlopCount:
        return FlopCount(self.matmul + o.matmul, self.other + o.other, self.unknown_trips + o.unknown_trips)

    def __mul__(self, n: float) -> FlopCount:
        return FlopCount(self.matmul * n, self.other * n, self.unknown_trips)


def _valid_taps(out: int, kernel: int, size: int, stride: int, pad_lo: int, lhs_dil: int, rhs_dil: int) -> int:
    """(output position, kernel tap) pairs along one spatial axis of a convolution that read an input element, not
    padding or a hole of the input's dilation (the transposed convolutions of a gradient dilate their input)."""
    pos = np.arange(out)[:, None] * stride + np.arange(kernel)[None, :] * rhs_dil - pad_lo
    return int(np.sum((pos >= 0) & (pos <= (size - 1) * lhs_dil) & (pos % lhs_dil == 0)))


def _conv_flops(eqn) -> float:
    """2 x the multiply-adds of a `conv_general_dilated`: each output element (batch x feature x position) sums
    over the kernel's input features and its taps that read an input element."""
    p, dn = eqn.params, eqn.params["dimension_numbers"]
    lhs, rhs = (v.aval.shape for v in eqn.invars)
    out = eqn.outvars[0].aval.shape
    taps = 1
    for d, (lo, _) in enumerate(p["padding"]):
        taps *= _valid_taps(
            out[dn.out_spec[d + 2]],
            rhs[dn.rhs_spec[d + 2]],
            lhs[dn.lhs_spec[d + 2]],
            p["window_strides"][d],
            lo,
            p["lhs_dilation"][d],
            p["rhs_dilation"][d],
        )
    return 2.0 * out[dn.out_spec[0]] * out[dn.out_spec[1]] * rhs[dn.rhs_spec[1]] * taps


def _sub_jaxprs(params: dict) -> list:
    """The jaxprs an equation calls (jit, remat, custom_jvp/vjp, scan, while, cond, shard_map bodies)."""
    found = []
    for v in params.values():
        for item in v if isinstance(v, (tuple, list)) else (v,):
            if isinstance(item, ClosedJaxpr):
                found.append(item.jaxpr)
            elif isinstance(item, Jaxpr):
                found.append(item)
    return found


def _jaxpr_flops(jaxpr) -> FlopCount:
    count = FlopCount(0.0, 0.0)
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "conv_general_dilated":
            count += FlopCount(_conv_flops(eqn), 0.0)
        elif name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            count += FlopCount(2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract), 0.0)
        elif name in ELEMENTWISE:
            per = PER_ELEMENT.get(name, 1.0)
            if name == "integer_pow":  # x ** y as |y| - 1 multiplies
                per = max(1.0, abs(eqn.params["y"]) - 1.0)
            count += FlopCount(0.0, per * math.prod(eqn.outvars[0].aval.shape))
        elif name == "random_bits" and "fry" in str(eqn.invars[0].aval.dtype):
            words = math.prod(eqn.outvars[0].aval.shape) * max(1, eqn.params["bit_width"] // 32)
            count += FlopCount(0.0, THREEFRY_PER_WORD * words)
        elif name in REDUCTIONS:
            count += FlopCount(0.0, float(math.prod(eqn.invars[0].aval.shape)))
        elif name == "cond":  # the costliest branch
            count += max((_jaxpr_flops(b.jaxpr) for b in eqn.params["branches"]), key=lambda c: c.total)
        elif name == "scan":
            count += _jaxpr_flops(eqn.params["jaxpr"].jaxpr) * eqn.params["length"]
        elif name == "while":
            body = _jaxpr_flops(eqn.params["body_jaxpr"].jaxpr) + _jaxpr_flops(eqn.params["cond_jaxpr"].jaxpr)
            count += FlopCount(body.matmul, body.other, body.unknown_trips + 1)
        else:
            for sub in _sub_jaxprs(eqn.params):
                count += _jaxpr_flops(sub)
    return count


def count_flops(fn: Callable, *args: Any) -> FlopCount:
    """The FLOPs of one call `fn(*args)`, counted from its jaxpr (see the module docstring); `args` may be
    `jax.ShapeDtypeStruct`s, nothing is computed."""
    return _jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def step_flops(compiled, num_devices: int) -> float:
    """FLOPs of one call of a compiled (or lowered) jit program run SPMD on `num_devices` devices: XLA's cost
    analysis of the per-device program times `num_devices`."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jaxlibs: one dict per program
        analysis = analysis[0] if analysis else {}
    flops = float((analysis or {}).get("flops", 0.0))
    if flops <= 0:
        raise ValueError(
            f"XLA's cost analysis reports no FLOPs for this program ({analysis!r}); this backend may "
            "not support cost analysis"
        )
    return flops * num_devices


def table_row(device_kind: str) -> str | None:
    """The `PEAK_TFLOPS` row of a `jax.Device.device_kind` (e.g. "NVIDIA H100 80GB HBM3" -> "H100 SXM"), or None."""
    kind = device_kind.lower()
    return next((row for pattern, row in _KINDS if pattern in kind), None)


def measure_matmul_flops(
    dtype: str = "float32", sizes: Sequence[int] = (1024, 2048), reps: int = 5, device: jax.Device | None = None
) -> tuple[float, str]:
    """(FLOP/s, how) of the fastest of `n`x`n` @ `n`x`n` dense matmuls in `dtype` on `device` (default: the first),
    each timed as the median of `reps` calls after a compiling one: the attainable peak of a CPU, which has no
    table entry (on a host with N fake devices all of them share these cores, so this is the whole host's)."""
    device = device or jax.devices()[0]
    best, how = 0.0, ""
    for n in sizes:
        keys = jax.random.split(jax.random.PRNGKey(0))
        a, b = (jax.device_put(jax.random.normal(k, (n, n), jnp.float32).astype(dtype), device) for k in keys)
        matmul = jax.jit(jnp.dot)
        jax.block_until_ready(matmul(a, b))
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            jax.block_until_ready(matmul(a, b))
            times.append(time.perf_counter() - t0)
        rate = 2.0 * n**3 / statistics.median(times)
        if rate > best:
            best, how = rate, f"measured {dtype} {n}x{n} @ {n}x{n} matmul, median of {reps}"
    return best, how


def peak_flops(devices: Sequence[jax.Device], dtype: str = "float32") -> tuple[float | None, str]:
    """(peak FLOP/s of all `devices` together, where it comes from). GPUs/TPUs: `PEAK_TFLOPS` per chip times the
    chip count (None, with the reason, for a kind the table lacks); CPU: `measure_matmul_flops` once for the host."""
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype={dtype!r}: peaks are known for float32 and bfloat16")
    first = devices[0]
    if first.platform == "cpu":
        return measure_matmul_flops(dtype, device=first)
    row = table_row(first.device_kind)
    if row is None:
        return None, (
            f"no peak for device kind {first.device_kind!r} in jgen.train.throughput.PEAK_TFLOPS; pass the "
            "vendor's dense figure (e.g. --peak_tflops)"
        )
    tflops = PEAK_TFLOPS[row][dtype]
    return tflops * 1e12 * len(devices), f"{row} {dtype} dense {tflops:g} TFLOP/s per chip x {len(devices)}"
