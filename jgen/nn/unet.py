"""The denoising UNet of DDPM (Ho et al. 2020), sized for small images (28x28 MNIST, 8x8 digits).

Sinusoidal embedding of the continuous time t in [0, 1] -> MLP; optional class embedding added to it (label
`num_classes` is the null label used for classifier-free guidance); residual blocks with GroupNorm + SiLU that
take the embedding; self-attention at the listed resolutions; skip connections from every block of the
downsampling path to the upsampling path. Resolutions halve between levels (28 -> 14 -> 7 with three levels),
so H and W must be divisible by 2^(len(channel_mult) - 1).

Precision (`dtype`, see jgen/nn/precision.py): convolutions, dense layers and attention compute in `dtype` from
float32 parameters; the time embedding's sinusoids, GroupNorm statistics and attention softmaxes stay float32, and
the output is float32. `remat` recomputes each residual and attention block's activations in the backward pass
(`flax.linen.remat`) instead of keeping them: less memory for more compute, with the same parameters and values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.nn.conv import upsample2x
from jgen.nn.norm import GroupNorm
from jgen.nn.precision import compute_dtype, param_dtype


def timestep_embedding(t: jax.Array, dim: int, scale: float = 1000.0, max_period: float = 10000.0) -> jax.Array:
    """Sinusoidal features of scale * t: [B] -> [B, dim] (sin half, cos half), as in the Transformer."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = scale * t.astype(jnp.float32)[:, None] * freqs[None]
    emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
    return jnp.pad(emb, ((0, 0), (0, dim % 2)))


def _groups(channels: int, max_groups: int = 32, min_group_size: int = 4) -> int:
    """The largest group count <= max_groups dividing `channels` with groups of >= min_group_size channels
    (32 groups of 4 for DDPM's 128 channels; 4 groups for a 16-channel CPU-sized model)."""
    top = max(1, min(max_groups, channels // min_group_size))
    return max(g for g in range(1, top + 1) if channels % g == 0)


class ResBlock(nn.Module):
    """GN-SiLU-Conv, + Dense(embedding), GN-SiLU-Dropout-Conv (zero-initialised), + (1x1-projected) input."""

    out_channels: int
    dropout: float = 0.0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, emb: jax.Array, train: bool) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = nn.Conv(self.out_channels, (3, 3), **kw)(nn.silu(GroupNorm(_groups(x.shape[-1]), **kw)(x)))
        h = h + nn.Dense(self.out_channels, **kw)(nn.silu(emb))[:, None, None, :]
        h = nn.silu(GroupNorm(_groups(self.out_channels), **kw)(h))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = nn.Conv(self.out_channels, (3, 3), kernel_init=nn.initializers.zeros, **kw)(h)
        if x.shape[-1] != self.out_channels:
            x = nn.Conv(self.out_channels, (1, 1), **kw)(x)
        return x + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the H*W positions, pre-GroupNorm, residual (softmax in float32)."""

    num_heads: int = 1
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, hgt, wid, c = x.shape
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = GroupNorm(_groups(c), **kw)(x).reshape(b, hgt * wid, c)
        h = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            qkv_features=c,
            out_features=c,
            out_kernel_init=nn.initializers.zeros,
            force_fp32_for_softmax=True,
            **kw,
        )(h, h)
        return x + h.reshape(b, hgt, wid, c)


class UNet(nn.Module):
    """(x [B, H, W, C], t [B] in [0, 1], labels [B] int or None, interval [B] or None) -> prediction [B, H, W, C].

    `interval`, a second time input (a step length: MeanFlow's t - r, a shortcut model's step size d), is embedded
    like t by its own MLP and added to the embedding; without it the network has no such parameters."""

    channels: int = 32
    channel_mult: Sequence[int] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_resolutions: Sequence[int] = (7,)
    num_heads: int = 1
    dropout: float = 0.0
    num_classes: int = 0  # 0: unconditional; else labels in [0, num_classes], num_classes being the null label
    dtype: Any = jnp.float32  # compute dtype (float32 | bfloat16); the output is float32 either way
    param_dtype: Any = jnp.float32
    remat: bool = False  # recompute the blocks' activations in the backward pass

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        t: jax.Array,
        labels: jax.Array | None = None,
        train: bool = False,
        interval: jax.Array | None = None,
    ) -> jax.Array:
        chex.assert_rank(x, 4)
        b, hgt, wid, c_in = x.shape
        chex.assert_shape(t, (b,))
        levels = len(self.channel_mult)
        if hgt % 2 ** (levels - 1) or wid % 2 ** (levels - 1):
            raise ValueError(
                f"UNet with channel_mult={tuple(self.channel_mult)} halves the resolution "
                f"{levels - 1} times: H and W must be divisible by {2 ** (levels - 1)}; got {hgt}x{wid}"
            )
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        # Blocks are named as flax names them without remat (ResBlock_0, ...), so that parameters and checkpoints
        # are the same with and without it. `train` (argument 3, counting self) is static under remat.
        res_cls = nn.remat(ResBlock, static_argnums=(3,)) if self.remat else ResBlock
        attn_cls = nn.remat(AttentionBlock) if self.remat else AttentionBlock
        res_ids, attn_ids = itertools.count(), itertools.count()

        def res(h, channels):
            return res_cls(channels, self.dropout, name=f"ResBlock_{next(res_ids)}", **kw)(h, emb, train)

        def attn(h):
            return attn_cls(self.num_heads, name=f"AttentionBlock_{next(attn_ids)}", **kw)(h)

        emb_dim = 4 * self.channels
        emb = timestep_embedding(t, self.channels)  # float32 sinusoids of 1000 t
        emb = nn.Dense(emb_dim, **kw)(nn.silu(nn.Dense(emb_dim, **kw)(emb)))
        if interval is not None:  # named layers: the automatic names of the others stay as they were
            chex.assert_shape(interval, (b,))
            e = nn.Dense(emb_dim, name="interval_mlp1", **kw)(timestep_embedding(interval, self.channels))
            emb = emb + nn.Dense(emb_dim, name="interval_mlp2", **kw)(nn.silu(e))
        if self.num_classes:
            if labels is None:
                labels = jnp.full((b,), self.num_classes, jnp.int32)  # the null label
            chex.assert_shape(labels, (b,))
            emb = emb + nn.Embed(self.num_classes + 1, emb_dim, **kw)(labels)
        elif labels is not None:
            raise ValueError("labels were given to an unconditional UNet (num_classes=0)")

        h = nn.Conv(self.channels, (3, 3), **kw)(x)
        skips = [h]
        for level, mult in enumerate(self.channel_mult):
            for _ in range(self.num_res_blocks):
                h = res(h, self.channels * mult)
                if h.shape[1] in self.attention_resolutions:
                    h = attn(h)
                skips.append(h)
            if level != levels - 1:
                h = nn.Conv(h.shape[-1], (3, 3), strides=(2, 2), **kw)(h)
                skips.append(h)

        h = res(h, h.shape[-1])
        h = attn(h)
        h = res(h, h.shape[-1])

        for level, mult in reversed(list(enumerate(self.channel_mult))):
            for _ in range(self.num_res_blocks + 1):
                h = res(jnp.concatenate([h, skips.pop()], -1), self.channels * mult)
                if h.shape[1] in self.attention_resolutions:
                    h = attn(h)
            if level != 0:
                h = nn.Conv(h.shape[-1], (3, 3), **kw)(upsample2x(h))
        assert not skips
        h = nn.silu(GroupNorm(_groups(h.shape[-1]), **kw)(h))
        out = nn.Conv(c_in, (3, 3), kernel_init=nn.initializers.zeros, **kw)(h).astype(jnp.float32)
        chex.assert_shape(out, x.shape)
        return out


def make_unet(model_cfg, num_classes: int) -> UNet:
    """A UNet from config.model fields (channels, channel_mult, num_res_blocks, attention_resolutions,
    num_heads, dropout, dtype, param_dtype, remat); lists from a JSON-loaded config are accepted."""
    return UNet(
        channels=int(model_cfg.channels),
        channel_mult=tuple(model_cfg.channel_mult),
        num_res_blocks=int(model_cfg.num_res_blocks),
        attention_resolutions=tuple(model_cfg.attention_resolutions),
        num_heads=int(model_cfg.get("num_heads", 1)),
        dropout=float(model_cfg.get("dropout", 0.0)),
        num_classes=num_classes,
        dtype=compute_dtype(model_cfg),
        param_dtype=param_dtype(model_cfg),
        remat=bool(model_cfg.get("remat", False)),
    )


def init_params(
    net: nn.Module,
    key: jax.Array,
    x: jax.Array,
    t: jax.Array,
    labels: jax.Array | None = None,
    interval: jax.Array | None = None,
):
    """`net.init(...)["params"]` (with the second time input `interval` [B] when given) drawn with the "rbg" PRNG
    seeded from `key` (deterministic for a given key).

    A UNet has ~100 parameter arrays; drawing each with threefry makes XLA compile ~100 unrolled hash
    programs (tens of seconds on CPU), while rbg (XLA's RngBitGenerator) compiles 3-4x faster.
    """
    rbg = jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")
    return net.init(rbg, x, t, labels, interval=interval)["params"]
