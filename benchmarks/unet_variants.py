"""Variants of the UNet train step, timed against each other in one process: which change makes the step faster?

    python benchmarks/unet_variants.py --config experiments/configs/ddpm_cifar10.py --mock_tfds 256 \\
        --variants base,flax_groupnorm,rbg_dropout,batch256 model.dtype=bfloat16

Every variant is the training loop's own compiled call (`jgen.train.loop.jitted_train_step`, one step per call) of
the config's method, changed in one way:
- base: the config as it is.
- flax_groupnorm: `flax.linen.GroupNorm` (one reduction over H, W and the group's channels) instead of jgen's
  two-stage `jgen.nn.norm.GroupNorm` (tuned for XLA:CPU); same parameters.
- rbg_dropout: JAX's "rbg" PRNG (XLA's RngBitGenerator) for every key instead of threefry: the dropout masks are
  drawn by the hardware generator instead of a threefry hash per element.
- batchN: data.batch_size=N (the fixed cost of a step against its per-image cost).
- xla_attention: the UNet's attention through `jax.nn.dot_product_attention` (same parameters).
All variants are compiled first, then timed in --trials interleaved rounds of --steps steps each (the order
rotating), so that each sees the same machine. Printed per variant: median ms/step, images/s, its ratio to
base per image, matmul GFLOP/step (`jgen.train.throughput.count_flops`), MFU against the table's peak, and the
loss of its first step next to base's on the same batch and key (equal up to the compute dtype's rounding for
the variants that do not change random draws).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@contextlib.contextmanager
def _patched(obj, name: str, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def _flax_groupnorm():
    import flax.linen as nn

    import jgen.nn.unet as unet

    def group_norm(num_groups, dtype, param_dtype):
        return nn.GroupNorm(num_groups=num_groups, epsilon=1e-6, dtype=dtype, param_dtype=param_dtype)

    return _patched(unet, "GroupNorm", group_norm)


def _xla_attention():
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    import jgen.nn.unet as unet

    class Attention(nn.Module):
        """AttentionBlock's parameters (query/key/value/out [C, heads, C/heads]) through
        jax.nn.dot_product_attention."""

        num_heads: int = 1
        dtype: object = jnp.float32
        param_dtype: object = jnp.float32

        @nn.compact
        def __call__(self, x):
            b, hgt, wid, c = x.shape
            kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
            h = unet.GroupNorm(unet._groups(c), **kw)(x).reshape(b, hgt * wid, c)

            class Inner(nn.Module):
                @nn.compact
                def __call__(inner, h):
                    d = c // self.num_heads
                    q, k, v = (nn.DenseGeneral((self.num_heads, d), name=n, **kw)(h) for n in ("query", "key", "value"))
                    o = jax.nn.dot_product_attention(q, k, v)  # [B, L, heads, d]
                    return nn.DenseGeneral(c, axis=(-2, -1), kernel_init=nn.initializers.zeros, name="out", **kw)(o)

            return x + Inner(name="MultiHeadDotProductAttention_0")(h).reshape(b, hgt, wid, c)

    return _patched(unet, "AttentionBlock", Attention)


@contextlib.contextmanager
def _config_prng(impl: str):
    import jax

    old = jax.config.jax_default_prng_impl
    jax.config.update("jax_default_prng_impl", impl)
    try:
        yield
    finally:
        jax.config.update("jax_default_prng_impl", old)


def build(a, name: str):
    """(compiled one-step call, state, batch, count, batch size, context) of variant `name`."""
    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from jgen.data import get_source, make_train_iterator
    from jgen.run import build_method, load_config, validate
    from jgen.train.loop import batch_sharding, jitted_train_step
    from jgen.train.throughput import count_flops

    overrides = list(a.overrides)
    ctx: contextlib.AbstractContextManager = contextlib.nullcontext()
    if name.startswith("batch"):
        overrides.append(f"data.batch_size={int(name[5:])}")
    elif name == "flax_groupnorm":
        ctx = _flax_groupnorm()
    elif name == "xla_attention":
        ctx = _xla_attention()
    elif name == "rbg_dropout":
        ctx = _config_prng("rbg")
    elif name != "base":
        sys.exit(f"unknown variant {name!r}")
    config = load_config(a.config, overrides)
    validate(config)
    mock = contextlib.nullcontext()
    if a.mock_tfds:
        import tensorflow_datasets as tfds

        mock = tfds.testing.mock_data(num_examples=a.mock_tfds)
    with mock:
        train, _, info = get_source(config.data)
        with make_train_iterator(train, config.seed, config.data.batch_size, read_ahead=0) as it:
            host = next(it)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    with ctx:
        method = build_method(config, info, train)
        state = jax.jit(method.init_state, out_shardings=NamedSharding(mesh, P()))(
            jax.random.PRNGKey(config.seed), host
        )
        batch = jax.device_put(host, batch_sharding(mesh, 1))
        step = jitted_train_step(method, mesh, 1)
        t0 = time.perf_counter()
        compiled = step.lower(state, batch).compile()
        compile_s = time.perf_counter() - t0
        count = count_flops(step, state, batch)
    return compiled, state, batch, count, config.data.batch_size, compile_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="experiments/configs/ddpm_cifar10.py")
    p.add_argument("--variants", default="base,flax_groupnorm,rbg_dropout,batch256")
    p.add_argument("--mock_tfds", type=int, default=0, help="run on tfds.testing.mock_data with this many examples")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("overrides", nargs="*", help="config overrides field=value, e.g. model.dtype=bfloat16")
    a = p.parse_args()

    import jax

    from jgen.run import load_config
    from jgen.train.throughput import peak_flops

    names = a.variants.split(",")
    if names[0] != "base":
        names = ["base"] + [n for n in names if n != "base"]
    built, losses = {}, {}
    for name in names:
        compiled, state, batch, count, bs, compile_s = build(a, name)
        state, metrics = compiled(state, batch)  # warm-up; its loss is the first step's
        losses[name] = float(metrics["loss"])
        jax.block_until_ready(state)
        built[name] = [compiled, state, batch, count, bs]
        print(f"{name}: compiled in {compile_s:.1f} s; first-step loss {losses[name]:.6f}", file=sys.stderr, flush=True)
    times = {n: [] for n in names}
    for trial in range(a.trials):
        order = names[trial % len(names) :] + names[: trial % len(names)]
        for name in order:
            compiled, state, batch, _, _ = built[name]
            jax.block_until_ready(state)
            t0 = time.perf_counter()
            for _ in range(a.steps):
                state, metrics = compiled(state, batch)
            jax.block_until_ready((state, metrics))
            times[name].append((time.perf_counter() - t0) / a.steps)
            built[name][1] = state
    dtype = str(load_config(a.config, a.overrides).model.get("dtype", "float32"))
    peak, how = peak_flops(jax.devices(), dtype)
    print(
        f"{a.config} {' '.join(a.overrides)} on {jax.devices()[0].device_kind}; peak {how}; "
        f"{a.trials} interleaved trials of {a.steps} steps"
    )
    print(
        "| variant | batch | ms/step (median) | range | images/s | per image vs base | matmul GFLOP/step | MFU | "
        "first-step loss |\n|---|---|---|---|---|---|---|---|---|"
    )
    base_per_image = statistics.median(times["base"]) / built["base"][4]
    for name in names:
        _, _, _, count, bs = built[name]
        med = statistics.median(times[name])
        mfu = "—" if peak is None else f"{100 * count.matmul / med / peak:.1f}%"
        print(
            f"| {name} | {bs} | {1e3 * med:.2f} | {1e3 * min(times[name]):.2f}-{1e3 * max(times[name]):.2f} | "
            f"{bs / med:,.0f} | {med / bs / base_per_image:.3f}x | {count.matmul / 1e9:,.1f} | {mfu} | "
            f"{losses[name]:.6f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
