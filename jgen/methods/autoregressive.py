"""Autoregressive transformer: exact likelihood of quantised pixels (raster order) or of text.

Pixels: an 8-bit image's values k are quantised to q = floor(k * levels / 256) in {0..levels-1} and read in
raster order (rows, then columns, then channels). The sequence fed to the decoder is [prefix, q_0 .. q_{D-2}]
and it predicts q_0 .. q_{D-1}; the prefix is the class label (token levels + y, `method.conditional`) or one
start token (levels). The negative log-likelihood is exact and discrete:
- `bpd_conditional` = -log p(q | y) / (D log 2);
- `bpd` = (-log p(q | y) + log C) / (D log 2) for a conditional model (C classes, uniform prior): an upper
  bound on -log2 p(q) / D, since p(q) = sum_y p(q | y) / C >= p(q | y) / C; for an unconditional model it is
  exactly -log2 p(q) / D.
With levels = 256 these are bits/dim of the 8-bit images, directly comparable with the VAE's bound and the
GMM's dequantised value (both upper-bound the same discrete quantity); with fewer levels they measure a
coarser, easier variable and are not comparable.

Text: windows {"tokens": [L + 1]} of a `jgen.data.text` source; inputs tokens[:-1], targets tokens[1:].
Evaluation reports `nll` (nats per token) and `bpc` (bits per character or byte) averaged over the
evaluation split; perplexity = exp(nll) (`derived_eval_metrics`).

Decoding (`decode`): prefill the prompt, then one jit-compiled `lax.scan` that samples a token (temperature,
top-k, nucleus top-p) and feeds it through the transformer with its key/value cache; `cached=False` reruns
the full forward pass over the whole buffer at every step instead (the baseline of the benchmark).
"""

from __future__ import annotations

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jgen.config import InputError, OptionError, check_int, fail, is_integer, is_number, optim_config, require_int
from jgen.data.text import TextInfo
from jgen.data.text import decode as decode_text
from jgen.data.text import encode as encode_text
from jgen.methods.base import Batch, Method
from jgen.methods.registry import register
from jgen.nn.precision import check_precision, compute_dtype, param_dtype, precision_defaults
from jgen.nn.transformer import POSITIONS, Transformer
from jgen.viz import image_grid


# -- pure pieces -------------------------------------------------------------------------------------
def quantize(images: jax.Array, levels: int) -> jax.Array:
    """Images [B, H, W, C] in [0, 1] (8-bit values) -> int32 tokens [B, H*W*C] in {0..levels-1}, raster order."""
    k = jnp.round(images * 255.0).astype(jnp.int32)
    return (k * levels // 256).reshape(images.shape[0], -1)


def dequantize_tokens(tokens: jax.Array, levels: int, shape: tuple[int, ...]) -> jax.Array:
    """Tokens [B, D] -> images [B, *shape] in [0, 1]: level q shown as q / (levels - 1)."""
    return (tokens.astype(jnp.float32) / (levels - 1)).reshape(tokens.shape[0], *shape)


def token_nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """-log softmax(logits)[target] in nats: logits [B, T, V], targets [B, T] -> [B, T]."""
    chex.assert_rank([logits, targets], [3, 2])
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)


def filter_logits(logits: jax.Array, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
    """Logits [B, V] -> tempered logits with the tokens outside the top-k / the nucleus set to -inf.

    top_k = 0 and top_p = 1 keep every token; the nucleus is the smallest set of most probable tokens whose
    probability reaches top_p (the most probable token is always kept)."""
    logits = logits.astype(jnp.float32) / temperature
    if top_k:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if top_p < 1.0:
        sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
        cum = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
        keep = (cum - jax.nn.softmax(sorted_logits, axis=-1)) < top_p  # mass before this token < top_p
        threshold = jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1, keepdims=True)
        logits = jnp.where(logits < threshold, -jnp.inf, logits)
    return logits


def sample_token(key: jax.Array, logits: jax.Array, temperature: float, top_k: int, top_p: float) -> jax.Array:
    """One token per row of logits [B, V] -> [B] int32; temperature 0 is greedy (argmax)."""
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, filter_logits(logits, temperature, top_k, top_p)).astype(jnp.int32)


def decode(
    model: Transformer,
    params,
    prompt: jax.Array,
    num_new: int,
    key: jax.Array,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    cached: bool = True,
) -> jax.Array:
    """Sample `num_new` tokens after `prompt` [B, P]: returns [B, P + num_new] int32.

    Cached: one forward pass over the prompt fills the key/value cache, then a `lax.scan` feeds each sampled
    token alone (num_new network calls in all). Uncached: each step runs the full forward pass over the
    whole [B, P + num_new - 1] buffer (causally masked) and reads the logits at the current position.
    Both draw token i with `fold_in(key, i)`, so with equal logits they return equal tokens."""
    chex.assert_rank(prompt, 2)
    b, p = prompt.shape
    if p < 1 or num_new < 1 or p + num_new - 1 > model.max_len:
        raise ValueError(f"prompt length {p} + {num_new} new tokens - 1 must be in [1, max_len={model.max_len}]")
    apply = lambda tokens, cache, index: model.apply({"params": params}, tokens, cache, index)  # noqa: E731
    draw = lambda i, logits: sample_token(jax.random.fold_in(key, i), logits, temperature, top_k, top_p)  # noqa

    if cached:
        logits, cache = apply(prompt, model.init_cache(b), 0)

        def step(carry, i):
            cache, last = carry
            tok = draw(i, last)
            logits, cache = apply(tok[:, None], cache, p + i)
            return (cache, logits[:, 0]), tok

        (_, last), toks = jax.lax.scan(step, (cache, logits[:, -1]), jnp.arange(num_new - 1))
        toks = jnp.concatenate([toks, draw(num_new - 1, last)[None]], axis=0)
        return jnp.concatenate([prompt, toks.T.astype(prompt.dtype)], axis=1)

    buf = jnp.concatenate([prompt, jnp.zeros((b, num_new), prompt.dtype)], axis=1)

    def full_step(buf, i):
        logits, _ = apply(buf[:, :-1], None, 0)
        tok = draw(i, jax.lax.dynamic_index_in_dim(logits, p - 1 + i, axis=1, keepdims=False))
        return jax.lax.dynamic_update_index_in_dim(buf, tok.astype(buf.dtype), p + i, axis=1), None

    buf, _ = jax.lax.scan(full_step, buf, jnp.arange(num_new))
    return buf


@dataclasses.dataclass(frozen=True)
class TokenSampling:
    """A token-sampling request, checked when it is made (OptionError names a bad value) and trusted below.
    Hashable: the static argument of the compiled decoder."""

    temperature: float = 1.0  # 0 = greedy
    top_k: int = 0  # keep the k most probable tokens (0 = all)
    top_p: float = 1.0  # nucleus mass (1 = all)

    def __post_init__(self):
        if not is_number(self.temperature, 0.0):
            raise OptionError("temperature", self.temperature, "must be a finite number >= 0 (0 = greedy)")
        if not is_integer(self.top_k, 0):
            raise OptionError("top_k", self.top_k, "must be an integer >= 0 (0 keeps every token)")
        if not (is_number(self.top_p) and 0.0 < self.top_p <= 1.0):
            raise OptionError("top_p", self.top_p, "must be in (0, 1] (1 keeps every token)")
        object.__setattr__(self, "temperature", float(self.temperature))  # 1 and 1.0: one program
        object.__setattr__(self, "top_k", int(self.top_k))
        object.__setattr__(self, "top_p", float(self.top_p))


@register("autoregressive")
class Autoregressive(Method):
    """Decoder-only causal transformer over pixel tokens (image data) or text tokens (a text source)."""

    progress_keys = ("loss",)
    generate_options = tuple(f.name for f in dataclasses.fields(TokenSampling))

    @classmethod
    def defaults(cls) -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(
            dict(
                method=dict(
                    name="autoregressive",
                    levels=256,  # pixels: quantisation levels, 2 (binary) .. 256 (8-bit)
                    conditional=True,  # pixels: class-label prefix token (else one start token)
                    temperature=1.0,  # sampling: 0 = greedy
                    top_k=0,  # sampling: keep the k most probable tokens (0 = all)
                    top_p=1.0,  # sampling: nucleus mass (1 = all)
                ),
                model=dict(
                    d_model=64,
                    num_layers=2,
                    num_heads=4,
                    mlp_ratio=4,
                    dropout=0.0,
                    positions="rope",  # rope | learned
                    tie_embeddings=False,
                    remat=False,  # recompute block activations in the backward pass (less memory)
                    **precision_defaults(),
                ),
                optim=optim_config(
                    1e-3, name="adamw", weight_decay=0.01, schedule="cosine", warmup_steps=100, grad_clip=1.0
                ),
            )
        )

    @classmethod
    def check(cls, config: ml_collections.ConfigDict) -> None:
        m, net = config.method, config.model
        if not (is_integer(m.levels, 2) and m.levels <= 256):
            fail("method.levels", m.levels, "must be an integer in [2, 256] (256: 8-bit pixels)")
        if not isinstance(m.conditional, bool):
            fail("method.conditional", m.conditional, "must be true or false")
        try:  # the configured sampling is a request like any other, checked where it is made
            TokenSampling(m.temperature, m.top_k, m.top_p)
        except OptionError as e:
            fail(f"method.{e.name}", e.value, e.allowed)
        for k in ("d_model", "num_layers", "num_heads", "mlp_ratio"):
            require_int(f"model.{k}", net[k])
        if net.d_model % net.num_heads or (net.d_model // net.num_heads) % 2:
            fail(
                "model.d_model",
                net.d_model,
                f"must be model.num_heads={net.num_heads} times an even head size",
                f"--config.model.d_model={2 * net.num_heads * max(1, net.d_model // (2 * net.num_heads))}",
            )
        if not 0.0 <= net.dropout < 1.0:
            fail("model.dropout", net.dropout, "must be in [0, 1)")
        if net.positions not in POSITIONS:
            fail("model.positions", net.positions, f"choose one of {POSITIONS}")
        for k in ("tie_embeddings", "remat"):
            if not isinstance(net.get(k, False), bool):
                fail(f"model.{k}", net[k], "must be true or false")
        check_precision(net)

    def __init__(self, config, info, resources=None):
        super().__init__(config, info, resources)
        m, net = config.method, config.model
        self.text = isinstance(info, TextInfo)
        # a text model writes strings (generate_text), a pixel model images
        self.capabilities = frozenset({"text"}) if self.text else frozenset({"sample"})
        self.levels = m.levels
        if self.text:
            vocab, outputs, max_len = info.vocab_size, info.vocab_size, info.seq_len
            self.prefix_classes = 0
        else:
            self.shape = tuple(info.shape)
            self.num_dims = int(np.prod(info.shape))
            self.prefix_classes = info.num_classes if m.conditional else 0
            vocab, outputs, max_len = m.levels + max(self.prefix_classes, 1), m.levels, self.num_dims
        self.net = Transformer(
            vocab_size=vocab,
            num_outputs=outputs,
            max_len=max_len,
            d_model=net.d_model,
            num_layers=net.num_layers,
            num_heads=net.num_heads,
            mlp_ratio=net.mlp_ratio,
            dropout=net.dropout,
            positions=net.positions,
            tie_embeddings=net.tie_embeddings,
            dtype=compute_dtype(net),
            param_dtype=param_dtype(net),
            remat=bool(net.get("remat", False)),
        )

    @property
    def num_classes(self) -> int:
        return self.prefix_classes

    # -- sequences and likelihood ----------------------------------------------------------------------
    def prefix(self, labels: jax.Array | None, num: int) -> jax.Array:
        """Pixel prefix tokens [num, 1]: levels + label (conditional) or the start token levels."""
        if self.prefix_classes:
            return (self.levels + labels.astype(jnp.int32))[:, None]
        return jnp.full((num, 1), self.levels, jnp.int32)

    def sequences(self, batch: Batch) -> tuple[jax.Array, jax.Array]:
        """(inputs [B, T], targets [B, T]) int32 of a batch."""
        if self.text:
            tokens = batch["tokens"].astype(jnp.int32)
            return tokens[:, :-1], tokens[:, 1:]
        q = quantize(batch["image"], self.levels)
        pre = self.prefix(batch.get("label"), q.shape[0])
        return jnp.concatenate([pre, q[:, :-1]], axis=1), q

    def logits(self, params, inputs: jax.Array, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        """Next-token logits [B, T, num_outputs] of inputs [B, T] (full causal forward pass)."""
        rngs = {"dropout": key} if train else None
        return self.net.apply({"params": params}, inputs, train=train, rngs=rngs)[0]

    def init_variables(self, key, batch):
        """Parameters from the model's own shapes (the batch is not read, so any placeholder batch works)."""
        dummy = jnp.zeros((1, self.net.max_len), jnp.int32)
        return self.net.init(key, dummy)["params"], {}

    def loss_fn(self, params, model_state, batch: Batch, key):
        inputs, targets = self.sequences(batch)
        nll = jnp.mean(token_nll(self.logits(params, inputs, train=True, key=key), targets))  # nats per token
        name = "bpc" if self.text else "bpd_conditional" if self.prefix_classes else "bpd"
        return nll, ({name: nll / math.log(2.0)}, model_state)

    def eval_step(self, params, model_state, batch: Batch, key):
        inputs, targets = self.sequences(batch)
        nll = token_nll(self.logits(params, inputs), targets)  # [B, T]
        if self.text:
            per_token = jnp.mean(nll, axis=1)
            return {"nll": per_token, "bpc": per_token / math.log(2.0)}
        per_image = jnp.sum(nll, axis=1)
        bound = per_image + math.log(self.prefix_classes) if self.prefix_classes else per_image
        out = {"nll": per_image, "bpd": bound / (self.num_dims * math.log(2.0))}
        if self.prefix_classes:
            out["bpd_conditional"] = per_image / (self.num_dims * math.log(2.0))
        return out

    def derived_eval_metrics(self, averaged: dict[str, float]) -> dict[str, float]:
        """Metrics that are functions of the split averages: text perplexity = exp(mean nats per token)."""
        return {"perplexity": float(np.exp(averaged["nll"]))} if self.text else {}

    # -- generation ------------------------------------------------------------------------------------
    def _decode(self, params, prompt, num_new: int, key, spec: TokenSampling):
        return decode(self.net, params, prompt, num_new, key, spec.temperature, spec.top_k, spec.top_p)

    def likelihood_metric(self):
        if self.text:
            return None
        # a class-conditional model's bpd adds log(10) for the uniform class prior: an upper bound on -log2 p(x) / D
        return "bpd", "bound" if self.prefix_classes else "exact"

    def sampling_spec(self, **options) -> TokenSampling:
        """A request's temperature, top_k, top_p (None: the configured value) as a checked TokenSampling."""
        self.refuse_unknown_options(options)
        m = self.config.method
        return TokenSampling(**{k: m[k] if options.get(k) is None else options[k] for k in self.generate_options})

    def generate(self, params, model_state, key, num, labels=None, spec: TokenSampling | None = None):
        """(images [num, H, W, C] in [0, 1], NFE = D sequential network calls per image); a conditional model cycles
        through the classes without labels. `spec` None: the configured sampling."""
        if self.prefix_classes and labels is None:
            labels = jnp.arange(num) % self.prefix_classes
        spec = self.sampling_spec() if spec is None else spec
        tokens = self._decode(params, self.prefix(labels, num), self.num_dims, key, spec)
        return dequantize_tokens(tokens[:, 1:], self.levels, self.shape), self.num_dims

    def generate_text(
        self,
        params,
        key: jax.Array,
        prompt: str,
        num_samples: int = 1,
        num_tokens: int = 200,
        spec: TokenSampling | None = None,
    ) -> list[str]:
        """`num_samples` continuations of `prompt` ([1, max_len - num_tokens + 1] tokens) of `num_tokens` tokens,
        sampled as `spec` says (None: the configured sampling)."""
        if not self.text:
            raise InputError("generate_text needs a text model (data.name = 'pydoc_text')")
        spec = self.sampling_spec() if spec is None else spec
        num_samples, num_tokens = check_int("num_samples", num_samples), check_int("num_tokens", num_tokens)
        ids = encode_text(prompt, self.info)
        if len(ids) < 1:
            raise InputError("the prompt must hold at least one character")
        if len(ids) + num_tokens - 1 > self.net.max_len:
            raise InputError(
                f"a prompt of {len(ids)} tokens + num_tokens={num_tokens} exceeds the model's context "
                f"of {self.net.max_len} tokens: use at most {self.net.max_len - len(ids) + 1} tokens"
            )
        prompt_ids = jnp.tile(jnp.asarray(ids, jnp.int32)[None], (num_samples, 1))
        fn = self.jitted("decode", self._decode, static_argnames=("num_new", "spec"))
        out = np.asarray(fn(params, prompt_ids, num_new=num_tokens, key=key, spec=spec))
        return [decode_text(row[len(ids) :], self.info) for row in out]

    def visualize(self, state, batch, key):
        if self.text:
            return {}
        labels = jnp.tile(jnp.arange(10), 6) % max(self.prefix_classes, 1) if self.prefix_classes else None
        draw = self.jitted("generate", self.generate, static_argnames=("num", "spec"))
        images, _ = draw(state.ema_params, state.model_state, key, num=60, labels=labels, spec=self.sampling_spec())
        return {"samples": image_grid(np.asarray(images), ncol=10)}
