"""Parameters and forward GFLOPs of the DiT paper's twelve models, counted by jgen beside the paper's Table 4.

    python -m experiments.dit_table

Each model is built from experiments/configs/dit_imagenet256.py through jgen's backbone registry, initialised
abstractly (jax.eval_shape: shapes only, no memory) and its forward pass on one 32x32x4 latent counted from the jaxpr
(jgen.train.throughput.count_flops). GFLOPs are printed as the paper counts them, multiply-accumulates:
count.matmul / 2 (dense layers, attention's two matmuls, the patch embedding). Both columns use the paper's
learned-sigma head (8 output channels); the last column is the parameter count of jgen's own 4-channel head.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from experiments.configs import dit_imagenet256 as paper_config
from jgen.nn.backbones import make_backbone
from jgen.train.throughput import FlopCount, count_flops


def dit_cost(variant: str, out_channels: int = 2 * paper_config.LATENT_SHAPE[-1]) -> tuple[int, FlopCount]:
    """(parameter count, FLOPs of one forward pass) of `variant` (e.g. "XL/2") on one 32x32x4 latent, with a head of
    `out_channels` channels (default: the paper's learned-sigma head; 0: jgen's, the input's channels)."""
    config = paper_config.get_config(variant)
    net = make_backbone(config.model, paper_config.NUM_CLASSES, paper_config.LATENT_SHAPE).clone(
        out_channels=out_channels
    )
    x = jax.ShapeDtypeStruct((1, *paper_config.LATENT_SHAPE), jnp.float32)
    t, labels = jax.ShapeDtypeStruct((1,), jnp.float32), jax.ShapeDtypeStruct((1,), jnp.int32)
    params = jax.eval_shape(net.init, jax.random.PRNGKey(0), x, t, labels)["params"]
    flops = count_flops(lambda p, x, t, labels: net.apply({"params": p}, x, t, labels), params, x, t, labels)
    return sum(math.prod(a.shape) for a in jax.tree.leaves(params)), flops


def main() -> None:
    print(f"{'model':8} {'params (M)':>11} {'paper':>6} {'GFLOPs':>9} {'paper':>7} {'params, 4-ch head':>18}")
    for variant in paper_config.VARIANTS:
        params, flops = dit_cost(variant)
        own, _ = dit_cost(variant, out_channels=0)
        paper_params, paper_gflops = paper_config.PAPER[variant]
        print(
            f"DiT-{variant:4} {params / 1e6:11.2f} {paper_params:6d} {flops.matmul / 2e9:9.3f} {paper_gflops:7.2f} "
            f"{own / 1e6:18.2f}"
        )


if __name__ == "__main__":
    main()
