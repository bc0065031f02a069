"""Tokens/s of the autoregressive transformer's decoder, KV-cached vs uncached, and a text sample.

    python benchmarks/ar_decoding.py --workdir runs/charlm --batch 1,16 --tokens 120 --prompt "The "
    python benchmarks/ar_decoding.py --config experiments/configs/charlm.py   # untrained model, same shapes

Cached: one prefill pass, then one network call per new token attending to the key/value cache.
Uncached: every new token reruns the full causal forward pass over the whole buffer. Both are one
jit-compiled `lax.scan`; the figure is (batch * new tokens) / seconds of the best of `--repeats` calls after
compilation. They draw the same tokens (tested), so the speed-up is free.
"""

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jgen.methods.autoregressive import decode  # noqa: E402


def load(workdir: str | None, config: str | None):
    if workdir:
        from jgen.run import load_run  # local: only for --workdir

        run = load_run(workdir)
        return run.method, run.state.ema_params
    from jgen.data import get_source
    from jgen.methods import get_method
    from jgen.run import load_config

    cfg = load_config(config)
    _, _, info = get_source(cfg.data)
    method = get_method(cfg.method.name)(cfg, info)
    return method, method.init_variables(jax.random.PRNGKey(0), None)[0]


def tokens_per_second(method, params, batch: int, prompt, num_new: int, cached: bool, repeats: int) -> float:
    prompt = jnp.tile(prompt[None], (batch, 1))
    fn = jax.jit(lambda p, k: decode(method.net, p, prompt, num_new, k, temperature=1.0, cached=cached))
    jax.block_until_ready(fn(params, jax.random.PRNGKey(0)))
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(params, jax.random.PRNGKey(r + 1)))
        best = min(best, time.perf_counter() - t0)
    return batch * num_new / best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="", help="a trained text run (else --config, untrained)")
    p.add_argument("--config", default="experiments/configs/charlm.py")
    p.add_argument("--batch", default="1,16")
    p.add_argument("--tokens", type=int, default=120)
    p.add_argument("--prompt", default="The ")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    method, params = load(a.workdir, a.config)
    from jgen.data.text import encode

    prompt = jnp.asarray(encode(a.prompt, method.info), jnp.int32)
    print(
        f"device: {jax.devices()[0].device_kind}; max_len {method.net.max_len}, prompt {len(prompt)} tokens, "
        f"{a.tokens} new tokens"
    )
    for b in (int(x) for x in a.batch.split(",")):
        c = tokens_per_second(method, params, b, prompt, a.tokens, True, a.repeats)
        u = tokens_per_second(method, params, b, prompt, a.tokens, False, a.repeats)
        print(f"batch {b:3d}: cached {c:9.1f} tokens/s   uncached {u:9.1f} tokens/s   speed-up {c / u:5.1f}x")
    text = method.generate_text(params, jax.random.PRNGKey(0), a.prompt, num_samples=1, num_tokens=a.tokens)[0]
    print(
        f"sample (temperature {method.config.method.temperature}, top_p {method.config.method.top_p}):\n"
        f"{a.prompt}{text}"
    )


if __name__ == "__main__":
    main()
