"""The denoising networks a diffusion-like family chooses by `config.model.kind`: one record per backbone.

Every backbone is a flax module called as `net.apply(variables, x [B, H, W, C], t [B] in [0, 1], labels [B] | None,
train=..., interval=None) -> [B, H, W, C] float32`, with the null label `num_classes` for classifier-free guidance,
so a method builds one with `make_backbone` and never asks which it is. `interval` [B] is a second time input for
the few-step families (MeanFlow's t - r, a shortcut model's step size), embedded like t and added to its embedding;
a network initialised without it has no parameters for it. A family's `config.model` holds `backbone_defaults()`:
`kind`, the fields every backbone reads (`num_heads`, `remat`, `dtype`, `param_dtype`) and each backbone's own;
the fields of the backbones not chosen stay at their defaults (`check_backbone` refuses a changed one, since it
would not be read), so `--config.model.kind=dit` switches a config's network from the command line.

    unet  jgen/nn/unet.py  DDPM's convolutional UNet: channels, channel_mult, num_res_blocks, attention_resolutions,
                           dropout
    dit   jgen/nn/dit.py   the Diffusion Transformer (adaLN-Zero): patch_size, hidden_size, depth, mlp_ratio,
                           attention
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import ml_collections

from jgen.config import fail, require_choice, require_int, require_int_tuple, require_number
from jgen.nn.dit import ATTENTION_IMPLS, DiT
from jgen.nn.precision import check_precision, compute_dtype, param_dtype, precision_defaults
from jgen.nn.unet import make_unet

ModelConfig = ml_collections.ConfigDict


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A `model.kind`: its own config fields with their defaults, their check, the check of a data shape
    (H, W, C) against them, and the module they build for `num_classes` classes (0: unconditional)."""

    name: str
    fields: Mapping[str, Any]
    check: Callable[[ModelConfig], None]
    check_shape: Callable[[ModelConfig, Sequence[int]], None]
    build: Callable[[ModelConfig, int], nn.Module]


# -- unet ------------------------------------------------------------------------------------------------------
def _check_unet(md: ModelConfig) -> None:
    require_int("model.channels", md.channels)
    require_int_tuple("model.channel_mult", md.channel_mult)
    require_int("model.num_res_blocks", md.num_res_blocks)
    require_number("model.dropout", md.dropout, 0.0, 0.99)
    if not isinstance(md.attention_resolutions, (tuple, list)):
        fail("model.attention_resolutions", md.attention_resolutions, "must be a tuple of resolutions, e.g. (7,)")


def _check_unet_shape(md: ModelConfig, shape: Sequence[int]) -> None:
    halvings = len(md.channel_mult) - 1
    if shape[0] % 2**halvings or shape[1] % 2**halvings:
        fail(
            "model.channel_mult",
            tuple(md.channel_mult),
            f"the UNet halves the resolution {halvings} times, so H "
            f"and W must be divisible by {2**halvings}; the data are {shape[0]}x{shape[1]}",
            f"use {halvings} or fewer levels, e.g. --config.model.channel_mult='(1,)'",
        )


# -- dit -------------------------------------------------------------------------------------------------------
def _check_dit(md: ModelConfig) -> None:
    require_int("model.patch_size", md.patch_size)
    require_int("model.depth", md.depth)
    require_int("model.hidden_size", md.hidden_size, 4)
    d, heads = md.hidden_size, md.num_heads
    if d % heads:
        fail(
            "model.hidden_size",
            d,
            f"must be divisible by model.num_heads={heads}",
            f"--config.model.hidden_size={max(heads, round(d / heads) * heads)}",
        )
    if d % 4:
        fail(
            "model.hidden_size",
            d,
            "must be divisible by 4 (the 2-D sin-cos positions give each axis half the channels as sin/cos pairs)",
            f"--config.model.hidden_size={max(4, round(d / 4) * 4)}",
        )
    require_number("model.mlp_ratio", md.mlp_ratio, 1e-6)
    if float(d * md.mlp_ratio) != int(d * md.mlp_ratio):
        fail(
            "model.mlp_ratio",
            md.mlp_ratio,
            f"must make an integer MLP width hidden_size * mlp_ratio ({d} * {md.mlp_ratio})",
            "--config.model.mlp_ratio=4.0",
        )
    require_choice("model.attention", md.attention, ATTENTION_IMPLS)
    if md.attention == "cudnn" and md.get("dtype", "float32") != "bfloat16":
        fail(
            "model.attention",
            md.attention,
            "cuDNN's fused attention takes bfloat16, not float32",
            "--config.model.dtype=bfloat16, or --config.model.attention=auto",
        )


def _check_dit_shape(md: ModelConfig, shape: Sequence[int]) -> None:
    p = md.patch_size
    if shape[0] % p or shape[1] % p:
        divisors = [k for k in range(1, min(shape[0], shape[1]) + 1) if shape[0] % k == 0 and shape[1] % k == 0]
        fail(
            "model.patch_size",
            p,
            f"must divide the {shape[0]}x{shape[1]} inputs the DiT sees into whole patches; "
            f"patch sizes that do: {divisors}",
            f"--config.model.patch_size={max(k for k in divisors if k <= p)}",
        )


def _make_dit(md: ModelConfig, num_classes: int) -> DiT:
    return DiT(
        patch_size=int(md.patch_size),
        hidden_size=int(md.hidden_size),
        depth=int(md.depth),
        num_heads=int(md.num_heads),
        mlp_ratio=float(md.mlp_ratio),
        num_classes=num_classes,
        attention=str(md.attention),
        dtype=compute_dtype(md),
        param_dtype=param_dtype(md),
        remat=bool(md.get("remat", False)),
    )


BACKBONES: dict[str, Backbone] = {
    "unet": Backbone(
        "unet",
        {"channels": 16, "channel_mult": (1, 2, 2), "num_res_blocks": 1, "attention_resolutions": (7,), "dropout": 0.0},
        _check_unet,
        _check_unet_shape,
        make_unet,
    ),
    "dit": Backbone(
        "dit",
        {"patch_size": 4, "hidden_size": 128, "depth": 6, "mlp_ratio": 4.0, "attention": "auto"},
        _check_dit,
        _check_dit_shape,
        _make_dit,
    ),
}
SHARED_FIELDS = {"num_heads": 1, "remat": False}  # read by every backbone (with `kind`, dtype and param_dtype)


def backbone_names() -> tuple[str, ...]:
    return tuple(BACKBONES)


def backbone_defaults() -> dict[str, Any]:
    """The `config.model` section of a diffusion-like family: `kind` (unet), the shared fields, every backbone's
    own."""
    fields = {"kind": "unet", **SHARED_FIELDS, **precision_defaults()}
    for backbone in BACKBONES.values():
        fields.update(backbone.fields)
    return fields


def _plain(value: Any) -> Any:
    """Lists as tuples, so a JSON-loaded config compares equal to the defaults it was written from."""
    return tuple(_plain(v) for v in value) if isinstance(value, (list, tuple)) else value


def check_backbone(md: ModelConfig, defaults: ModelConfig) -> None:
    """ConfigError for the first invalid field of `config.model`: `kind`, the shared fields, the chosen backbone's
    own, and any field of another backbone changed from its default in `defaults` (the family's section)."""
    kind = md.get("kind", "unet")
    require_choice("model.kind", kind, backbone_names())
    require_int("model.num_heads", md.num_heads)
    check_precision(md)
    if not isinstance(md.get("remat", False), bool):
        fail(
            "model.remat",
            md.remat,
            "must be true or false (true: recompute block activations in the backward pass, for less memory)",
        )
    chosen = BACKBONES[kind]
    for other in BACKBONES.values():
        for field in other.fields:
            if field not in chosen.fields and field in md and _plain(md[field]) != _plain(defaults[field]):
                fail(
                    f"model.{field}",
                    md[field],
                    f"it is a field of model.kind={other.name!r}, which this config "
                    f"does not use (model.kind={kind!r} reads {sorted(chosen.fields)} and {sorted(SHARED_FIELDS)})",
                    f"leave it at {defaults[field]!r}, or set --config.model.kind={other.name}",
                )
    chosen.check(md)


def make_backbone(md: ModelConfig, num_classes: int, shape: Sequence[int]) -> nn.Module:
    """The network `config.model` describes, for data [H, W, C] = `shape` (ConfigError when they do not fit) and
    `num_classes` classes (0: unconditional)."""
    backbone = BACKBONES[md.get("kind", "unet")]
    backbone.check_shape(md, shape)
    return backbone.build(md, num_classes)
