"""The training loop shared by every method: state, optimizers, sharding, checkpoints, logging."""

from jgen.train.optim import ema_update, make_optimizer
from jgen.train.state import TrainState

__all__ = ["TrainState", "make_optimizer", "ema_update"]
