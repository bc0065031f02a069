"""The Diffusion Transformer (DiT, Peebles & Xie 2023): a ViT over patches, conditioned through adaLN-Zero.

    x [B, H, W, C] -> patches [B, L, p*p*C] -> Dense -> + fixed 2-D sin-cos positions    tokens [B, L, D]
    c = MLP(sinusoids of 1000 t) + class embedding (label num_classes: the null label)  [B, D]
    depth x block:  x += gate1 * Attention(LN(x) * (1 + scale1) + shift1)
                    x += gate2 * MLP(LN(x) * (1 + scale2) + shift2)    (shift, scale, gate) = Dense(SiLU(c))
    final:          Dense(LN(x) * (1 + scale) + shift) -> [B, L, p*p*C] -> unpatchify    [B, H, W, C]

adaLN-Zero: the LayerNorms have no parameters of their own, and every modulation Dense and the output Dense start
at zero, so each block starts as the identity (its gates are 0) and the network's first output is exactly 0.
SiT (Ma et al. 2024) is this network trained with flow matching; the objective is the method's choice, not the
network's. H and W must be multiples of `patch_size`; L = (H / p)(W / p) tokens of width D = `hidden_size`.
The output has the input's channels (jgen's parameterisations predict eps / v / x0 / velocity of the input's shape);
`out_channels` widens the head, as the paper's learned-sigma head doubles it, for counting the paper's models.

Precision (`dtype`, see jgen/nn/precision.py): the dense layers and attention compute in `dtype` from `param_dtype`
(float32) parameters; the residual stream, the LayerNorm statistics, the attention softmax and the output are float32.
Attention is `jax.nn.dot_product_attention`: `attention="cudnn"` runs cuDNN's fused kernel (GPU, bfloat16 only),
"xla" the XLA one, and "auto" picks cuDNN on a GPU when the compute dtype is bfloat16, XLA elsewhere (the CPU).
`remat` recomputes each block's activations in the backward pass (`flax.linen.remat`): same parameters, same values.
"""

from __future__ import annotations

from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.nn.unet import timestep_embedding

ATTENTION_IMPLS = ("auto", "xla", "cudnn")
FREQUENCY_DIM = 256  # sinusoids of the time fed to the time MLP (DiT's frequency_embedding_size)

_dense_init = nn.initializers.xavier_uniform()  # DiT's init of every transformer Dense
_embed_init = nn.initializers.normal(0.02)  # of the time MLP and the class table
_zeros = nn.initializers.zeros


def sincos_2d(rows: int, cols: int, dim: int) -> np.ndarray:
    """Fixed positions of a rows x cols grid of tokens, [rows * cols, dim] float32 (row-major): the first half of
    the channels are 1-D sin-cos features of the row index, the second half of the column index (dim % 4 == 0)."""
    if dim % 4:
        raise ValueError(f"the 2-D sin-cos position embedding needs a width divisible by 4; got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10000.0 ** (np.arange(quarter, dtype=np.float64) / quarter)  # [dim / 4]

    def one_axis(pos: np.ndarray) -> np.ndarray:  # [N] -> [N, dim / 2]
        angle = pos[:, None] * omega[None]
        return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)

    r, c = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(cols, dtype=np.float64), indexing="ij")
    return np.concatenate([one_axis(r.ravel()), one_axis(c.ravel())], axis=1).astype(np.float32)


def patchify(x: jax.Array, p: int) -> jax.Array:
    """[B, H, W, C] -> [B, (H / p)(W / p), p * p * C]: non-overlapping p x p patches in row-major order."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)  # [B, H/p, W/p, p, p, C]
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(tokens: jax.Array, p: int, h: int, w: int) -> jax.Array:
    """[B, (h / p)(w / p), p * p * C] -> [B, h, w, C]: the inverse of `patchify`."""
    b, _, k = tokens.shape
    c = k // (p * p)
    x = tokens.reshape(b, h // p, w // p, p, p, c).transpose(0, 1, 3, 2, 4, 5)  # [B, H/p, p, W/p, p, C]
    return x.reshape(b, h, w, c)


def _modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    """x [B, L, D] * (1 + scale) + shift, with shift and scale [B, D] per example."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


def _attention_impl(choice: str, dtype: Any, head_dim: int) -> str:
    """The `implementation` of jax.nn.dot_product_attention for `choice`: "auto" is cuDNN on a GPU in bfloat16 with
    heads cuDNN takes (a multiple of 8 up to 128 wide), XLA otherwise."""
    if choice == "auto":
        fits = jax.default_backend() == "gpu" and dtype == jnp.bfloat16 and head_dim % 8 == 0 and head_dim <= 128
        return "cudnn" if fits else "xla"
    return choice


class SelfAttention(nn.Module):
    """Multi-head self-attention over the tokens: one Dense to q, k, v, fused attention, an output Dense."""

    num_heads: int
    attention: str = "auto"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, length, d = x.shape
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=_dense_init)
        qkv = nn.Dense(3 * d, name="qkv", **kw)(x).reshape(b, length, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, L, H, D/H]
        impl = _attention_impl(self.attention, self.dtype, d // self.num_heads)
        out = jax.nn.dot_product_attention(q, k, v, implementation=impl)  # [B, L, H, D/H]
        return nn.Dense(d, name="proj", **kw)(out.reshape(b, length, d))


class DiTBlock(nn.Module):
    """An adaLN-Zero transformer block: (tokens [B, L, D] float32, conditioning [B, D]) -> tokens [B, L, D]."""

    num_heads: int
    mlp_ratio: float = 4.0
    attention: str = "auto"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        d = x.shape[-1]
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        mod = nn.Dense(6 * d, kernel_init=_zeros, name="adaLN", **kw)(nn.silu(c))  # [B, 6D], 0 at init
        shift1, scale1, gate1, shift2, scale2, gate2 = jnp.split(mod, 6, axis=-1)
        norm = dict(epsilon=1e-6, use_bias=False, use_scale=False, dtype=self.dtype)  # float32 statistics
        h = _modulate(nn.LayerNorm(name="norm1", **norm)(x), shift1, scale1)
        h = SelfAttention(self.num_heads, self.attention, name="attn", **kw)(h)
        x = x + (gate1[:, None, :] * h).astype(jnp.float32)
        h = _modulate(nn.LayerNorm(name="norm2", **norm)(x), shift2, scale2)
        h = nn.Dense(int(d * self.mlp_ratio), kernel_init=_dense_init, name="fc1", **kw)(h)
        h = nn.Dense(d, kernel_init=_dense_init, name="fc2", **kw)(nn.gelu(h, approximate=True))
        return x + (gate2[:, None, :] * h).astype(jnp.float32)


class DiT(nn.Module):
    """(x [B, H, W, C], t [B] in [0, 1], labels [B] int or None, interval [B] or None) -> prediction [B, H, W, C]
    float32. `interval`, a second time input (MeanFlow's t - r, a shortcut model's step size d), is embedded like t
    by its own MLP and added to the conditioning; without it the network has no such parameters."""

    patch_size: int = 2
    hidden_size: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    num_classes: int = 0  # 0: unconditional; else labels 0..num_classes, num_classes being the null label
    out_channels: int = 0  # 0: the input's channels (the paper's learned-sigma head has twice as many)
    attention: str = "auto"  # auto | xla | cudnn: jax.nn.dot_product_attention's implementation
    dtype: Any = jnp.float32  # compute dtype (float32 | bfloat16); the output is float32 either way
    param_dtype: Any = jnp.float32
    remat: bool = False  # recompute each block's activations in the backward pass

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        t: jax.Array,
        labels: jax.Array | None = None,
        train: bool = False,
        interval: jax.Array | None = None,
    ) -> jax.Array:
        del train  # no dropout: the same function in training and evaluation
        chex.assert_rank(x, 4)
        b, hgt, wid, c_in = x.shape
        chex.assert_shape(t, (b,))
        p, d = self.patch_size, self.hidden_size
        if hgt % p or wid % p:
            raise ValueError(f"DiT with patch_size={p} needs H and W divisible by {p}; got {hgt}x{wid}")
        if d % self.num_heads:
            raise ValueError(f"hidden_size={d} must be divisible by num_heads={self.num_heads}")
        if self.attention not in ATTENTION_IMPLS:
            raise ValueError(f"attention={self.attention!r}; choose one of {ATTENTION_IMPLS}")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)

        tokens = nn.Dense(d, kernel_init=_dense_init, name="patch_embed", **kw)(patchify(x, p))  # [B, L, D]
        tokens = tokens.astype(jnp.float32) + sincos_2d(hgt // p, wid // p, d)[None]

        cond = timestep_embedding(t, FREQUENCY_DIM)  # [B, 256] float32
        cond = nn.Dense(d, kernel_init=_embed_init, name="time_mlp1", **kw)(cond)
        cond = nn.Dense(d, kernel_init=_embed_init, name="time_mlp2", **kw)(nn.silu(cond))  # [B, D]
        if interval is not None:
            chex.assert_shape(interval, (b,))
            e = nn.Dense(d, kernel_init=_embed_init, name="interval_mlp1", **kw)(
                timestep_embedding(interval, FREQUENCY_DIM)
            )
            cond = cond + nn.Dense(d, kernel_init=_embed_init, name="interval_mlp2", **kw)(nn.silu(e))  # [B, D]
        if self.num_classes:
            if labels is None:
                labels = jnp.full((b,), self.num_classes, jnp.int32)  # the null label
            chex.assert_shape(labels, (b,))
            cond = cond + nn.Embed(self.num_classes + 1, d, embedding_init=_embed_init, name="label_embed", **kw)(
                labels
            )
        elif labels is not None:
            raise ValueError("labels were given to an unconditional DiT (num_classes=0)")

        # Blocks are named block{i} with and without remat, so parameters and checkpoints are the same either way.
        block_cls = nn.remat(DiTBlock) if self.remat else DiTBlock
        for i in range(self.depth):
            tokens = block_cls(self.num_heads, self.mlp_ratio, self.attention, name=f"block{i}", **kw)(tokens, cond)

        shift, scale = jnp.split(
            nn.Dense(2 * d, kernel_init=_zeros, name="final_adaLN", **kw)(nn.silu(cond)), 2, axis=-1
        )
        h = _modulate(
            nn.LayerNorm(epsilon=1e-6, use_bias=False, use_scale=False, dtype=self.dtype, name="final_norm")(tokens),
            shift,
            scale,
        )
        c_out = self.out_channels or c_in
        h = nn.Dense(p * p * c_out, kernel_init=_zeros, name="final_linear", **kw)(h)  # [B, L, p*p*C_out]
        out = unpatchify(h.astype(jnp.float32), p, hgt, wid)
        chex.assert_shape(out, (b, hgt, wid, c_out))
        return out
