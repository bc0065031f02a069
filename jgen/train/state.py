"""The train-state pytree every method uses."""

from typing import Any

import flax
import jax


@flax.struct.dataclass
class TrainState:
    """Everything a run needs to continue exactly; checkpointed as one pytree.

    `key` is the run's base key. It is never split or consumed: the key for step s is
    `jax.random.fold_in(key, s)`, so a resumed run draws exactly the same randomness.
    """

    step: jax.Array  # int32 []
    params: Any  # trainable parameters (a GAN: {"generator": ..., "discriminator": ...})
    opt_state: Any  # optax state, same nesting as the optimizers
    ema_params: Any  # exponential moving average of params; used for sampling and evaluation
    model_state: Any  # non-trainable collections such as {"batch_stats": ...}; {} when none
    key: jax.Array  # uint32 [2]
