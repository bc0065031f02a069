"""Optimizers and learning-rate schedules from config, and the EMA of parameters."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jgen.config import fail

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")


def check_optim(prefix: str, cfg: ml_collections.ConfigDict) -> None:
    """Raise ConfigError for the first invalid field of an optimizer block (`prefix` names it, e.g. "optim")."""
    if cfg.name not in OPTIMIZERS:
        fail(f"{prefix}.name", cfg.name, f"choose one of {OPTIMIZERS}")
    lr = cfg.learning_rate
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        fail(f"{prefix}.learning_rate", lr, "must be a finite number > 0", f"--config.{prefix}.learning_rate=1e-3")
    if cfg.schedule not in SCHEDULES:
        fail(f"{prefix}.schedule", cfg.schedule, f"choose one of {SCHEDULES}")
    for b in ("b1", "b2"):
        if not 0.0 <= cfg[b] < 1.0:
            fail(f"{prefix}.{b}", cfg[b], "must be in [0, 1)")
    if cfg.warmup_steps < 0:
        fail(f"{prefix}.warmup_steps", cfg.warmup_steps, "must be >= 0")
    if cfg.grad_clip < 0:
        fail(f"{prefix}.grad_clip", cfg.grad_clip, "must be >= 0 (0 turns clipping off)")


def make_schedule(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """Linear warmup from 0 over `warmup_steps`, then constant or cosine decay to 0 at `total_steps`."""
    lr, warmup = float(cfg.learning_rate), int(cfg.warmup_steps)
    if cfg.schedule == "constant":
        main = optax.constant_schedule(lr)
    elif cfg.schedule == "cosine":
        main = optax.cosine_decay_schedule(lr, max(total_steps - warmup, 1))
    else:
        raise ValueError(f"optim.schedule={cfg.schedule!r}; choose one of {SCHEDULES}")
    if warmup <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def make_optimizer(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """adam / adamw with the configured schedule, preceded by global-norm clipping when grad_clip > 0."""
    schedule = make_schedule(cfg, total_steps)
    if cfg.name == "adam":
        opt = optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    elif cfg.name == "adamw":
        opt = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"optim.name={cfg.name!r}; choose one of {OPTIMIZERS}")
    if cfg.grad_clip and cfg.grad_clip > 0:
        opt = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt)
    return opt


def ema_update(ema, params, decay, step=None):
    """ema <- d * ema + (1 - d) * params, leaf by leaf.

    With `step` (the number of updates so far), d = min(decay, (1 + step) / (10 + step)): the usual warm-up
    that keeps early EMAs from being dominated by the random initialisation.
    """
    if step is not None:
        decay = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
