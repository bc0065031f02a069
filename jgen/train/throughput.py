"""Throughput figures of a compiled train step: its FLOP count, the hardware's peak, and model FLOP utilisation.

    compiled = jitted_train_step(method, mesh).lower(state, batch).compile()
    flops = step_flops(compiled, mesh.size)           # one step, all devices
    peak, where = peak_flops(jax.devices(), "bfloat16")
    mfu = flops / step_seconds / peak

`step_flops` reads XLA's cost analysis of the compiled program, which is the program of one device (under
`jit` with shardings XLA compiles one SPMD partition), and multiplies it by the device count: work replicated on
every device (the optimizer update and EMA of a data-parallel step) counts once per device, as the hardware does it.

Peaks: for GPUs and TPUs the vendors' dense (no sparsity) figures per chip, in `PEAK_TFLOPS`; for the CPU a dense
matmul of the same dtype measured on this machine (`measure_matmul_flops`), since no table knows a shared host.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp

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
