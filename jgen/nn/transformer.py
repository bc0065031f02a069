"""A decoder-only causal transformer with an explicit key/value cache.

Pre-norm blocks (LayerNorm -> causal multi-head self-attention -> residual; LayerNorm -> GELU MLP ->
residual), rotary (RoPE) or learned absolute positions, dropout on the attention weights and on each
residual branch, optionally tied input/output embeddings.

One code path serves training, a full forward pass and cached decoding: `__call__(tokens, cache, index)`
treats `tokens` [B, T] as positions index .. index + T - 1. Without a cache the keys are those of `tokens`
themselves (a causal mask over T); with a cache (`init_cache`) the new keys/values are written into it at
`index` and the queries attend to every cached position <= their own. Decoding one token at a time with
the cache gives the logits of the full forward pass (tested to 1e-5).

Precision (`dtype`, see jgen/nn/precision.py): embeddings, attention and the MLPs compute in `dtype` (float32 or
bfloat16; the residual stream and the cache are in `dtype`) from `param_dtype` (float32) parameters; LayerNorm
statistics and the attention softmax are float32, and the output head runs in float32 on the final LayerNorm's
float32 output, so the logits, and the losses and samplers that read them, are float32.
"""

from __future__ import annotations

from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

POSITIONS = ("rope", "learned")
Cache = list[dict[str, jax.Array]]  # per layer {"k", "v"}: [B, max_len, heads, head_dim]


def rotary(x: jax.Array, positions: jax.Array, base: float = 10000.0) -> jax.Array:
    """Rotary position embedding (Su et al. 2021) of x [B, T, H, Dh] at integer positions [T] (Dh even)."""
    half = x.shape[-1] // 2
    freq = base ** (-jnp.arange(half, dtype=jnp.float32) / half)  # [Dh/2]
    angle = positions.astype(jnp.float32)[:, None] * freq  # [T, Dh/2]
    cos, sin = jnp.cos(angle)[None, :, None, :], jnp.sin(angle)[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1).astype(x.dtype)


class CausalSelfAttention(nn.Module):
    num_heads: int
    dropout: float = 0.0
    rope: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self, x: jax.Array, positions: jax.Array, cache: dict | None, index: jax.Array, train: bool
    ) -> tuple[jax.Array, dict | None]:
        b, t, d = x.shape
        h = self.num_heads
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        qkv = nn.DenseGeneral((3, h, d // h), name="qkv", **kw)(x)  # [B, T, 3, H, Dh]
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if self.rope:
            q, k = rotary(q, positions), rotary(k, positions)
        if cache is None:
            keys, values, key_pos = k, v, positions
        else:
            keys = jax.lax.dynamic_update_slice(cache["k"], k.astype(cache["k"].dtype), (0, index, 0, 0))
            values = jax.lax.dynamic_update_slice(cache["v"], v.astype(cache["v"].dtype), (0, index, 0, 0))
            key_pos = jnp.arange(keys.shape[1])
            cache = {"k": keys, "v": values}
        scores = jnp.einsum("bthd,bshd->bhts", q, keys) / jnp.sqrt(jnp.float32(d // h)).astype(q.dtype)
        mask = key_pos[None, :] <= positions[:, None]  # [T, S]
        scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
        weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(x.dtype)
        weights = nn.Dropout(self.dropout)(weights, deterministic=not train)
        out = jnp.einsum("bhts,bshd->bthd", weights, values)
        return nn.DenseGeneral(d, axis=(-2, -1), name="out", **kw)(out), cache


class Block(nn.Module):
    num_heads: int
    mlp_ratio: int = 4
    dropout: float = 0.0
    rope: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, positions, cache, index, train):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        attn, cache = CausalSelfAttention(self.num_heads, self.dropout, self.rope, **kw)(
            nn.LayerNorm(**kw)(x), positions, cache, index, train
        )
        x = x + nn.Dropout(self.dropout)(attn, deterministic=not train)
        y = nn.Dense(self.mlp_ratio * x.shape[-1], **kw)(nn.LayerNorm(**kw)(x))
        y = nn.Dense(x.shape[-1], **kw)(nn.gelu(y))
        return x + nn.Dropout(self.dropout)(y, deterministic=not train), cache


class Transformer(nn.Module):
    """tokens [B, T] int32 in [0, vocab_size) -> logits [B, T, num_outputs] over the next token.

    `num_outputs` <= `vocab_size`: the predicted tokens are the first `num_outputs` ids (the pixel model has
    extra class-prefix ids that are inputs only). With `tie_embeddings` the output layer reuses those rows of
    the input embedding. `dtype` is the compute dtype (the logits are float32 either way).
    """

    vocab_size: int
    num_outputs: int
    max_len: int
    d_model: int = 128
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    positions: str = "rope"
    tie_embeddings: bool = False
    dtype: Any = jnp.float32  # compute dtype (float32 | bfloat16)
    param_dtype: Any = jnp.float32
    remat: bool = False  # recompute each block's activations in the backward pass

    @nn.compact
    def __call__(
        self, tokens: jax.Array, cache: Cache | None = None, index: jax.Array | int = 0, train: bool = False
    ) -> tuple[jax.Array, Cache | None]:
        chex.assert_rank(tokens, 2)
        if self.positions not in POSITIONS:
            raise ValueError(f"positions={self.positions!r}; choose one of {POSITIONS}")
        if self.d_model % self.num_heads or (self.d_model // self.num_heads) % 2:
            raise ValueError(f"d_model={self.d_model} must be num_heads={self.num_heads} times an even head size")
        t = tokens.shape[1]
        index = jnp.asarray(index, jnp.int32)
        positions = index + jnp.arange(t)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        embed = nn.Embed(self.vocab_size, self.d_model, embedding_init=nn.initializers.normal(0.02), name="embed", **kw)
        x = embed(tokens)  # [B, T, D] in dtype
        if self.positions == "learned":
            table = self.param(
                "pos_embed", nn.initializers.normal(0.02), (self.max_len, self.d_model), self.param_dtype
            )
            x = x + jnp.take(table, positions, axis=0)[None].astype(self.dtype)
        x = nn.Dropout(self.dropout)(x, deterministic=not train)
        new_cache = [] if cache is not None else None
        # named block{i} either way, so parameters and checkpoints are the same with and without remat; `train`
        # (argument 5, counting self) is static under remat
        block_cls = nn.remat(Block, static_argnums=(5,)) if self.remat else Block
        for i in range(self.num_layers):
            x, c = block_cls(
                self.num_heads, self.mlp_ratio, self.dropout, self.positions == "rope", name=f"block{i}", **kw
            )(x, positions, None if cache is None else cache[i], index, train)
            if cache is not None:
                new_cache.append(c)
        x = nn.LayerNorm(name="final_norm", dtype=jnp.float32, param_dtype=self.param_dtype)(x)  # float32
        if self.tie_embeddings:
            logits = x @ embed.embedding[: self.num_outputs].T.astype(jnp.float32)
        else:
            logits = nn.Dense(self.num_outputs, name="head", dtype=jnp.float32, param_dtype=self.param_dtype)(x)
        chex.assert_type(logits, jnp.float32)
        return logits, new_cache

    def init_cache(self, batch_size: int, dtype: Any = None) -> Cache:
        """An empty cache for `batch_size` sequences of up to `max_len` tokens, in `dtype` (default: the compute
        dtype, the keys' and values' own)."""
        dtype = self.dtype if dtype is None else dtype
        shape = (batch_size, self.max_len, self.num_heads, self.d_model // self.num_heads)
        return [{"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)} for _ in range(self.num_layers)]
