"""Digit classifier trained with the shared loop; it provides the feature space of the MNIST-domain metrics.

Not a generative model: `sample` is not available. Training loss is the softmax cross-entropy, optionally
on randomly shifted images (`method.max_shift` pixels) with dropout on the features (`model.dropout`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jgen.methods import register
from jgen.methods.base import Batch, Method
from jgen.nn.classifier import DigitClassifier, random_shift


def make_classifier(model_cfg, num_classes: int) -> DigitClassifier:
    """The DigitClassifier described by `config.model` (features, feature_dim, dropout)."""
    return DigitClassifier(num_classes=num_classes, features=tuple(model_cfg.get("features", (32, 64))),
                           feature_dim=int(model_cfg.get("feature_dim", 128)),
                           dropout=float(model_cfg.get("dropout", 0.0)))


@register("classifier")
class Classifier(Method):
    """logits, features = net(x); loss = mean cross-entropy; eval: per-example accuracy and loss."""

    def __init__(self, config, info):
        super().__init__(config, info)
        if info.num_classes < 2:
            raise ValueError(f"the classifier needs labelled data with >= 2 classes; {info.name!r} has "
                             f"num_classes={info.num_classes}")
        max_shift = int(config.method.get("max_shift", 0))
        if not 0 <= max_shift < min(info.shape[:2]):
            raise ValueError(f"method.max_shift={max_shift} must be in [0, {min(info.shape[:2]) - 1}]")
        self.max_shift = max_shift
        self.net = make_classifier(config.model, info.num_classes)

    def init_variables(self, key, batch):
        return self.net.init(key, batch["image"])["params"], {}

    def apply(self, params, images: jax.Array, train: bool = False, key: jax.Array | None = None):
        """(logits [B, K], features [B, feature_dim]) of images [B, H, W, C] in [0, 1]."""
        rngs = {"dropout": key} if train else None
        return self.net.apply({"params": params}, images, train=train, rngs=rngs)

    def loss_fn(self, params, model_state, batch: Batch, key):
        shift_key, drop_key = jax.random.split(key)
        images = random_shift(shift_key, batch["image"], self.max_shift)
        logits, _ = self.apply(params, images, train=True, key=drop_key)
        loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]))
        accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == batch["label"])
        return loss, ({"accuracy": accuracy}, model_state)

    def eval_step(self, params, model_state, batch: Batch, key):
        logits, _ = self.apply(params, batch["image"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])       # [B]
        accuracy = (jnp.argmax(logits, axis=-1) == batch["label"]).astype(jnp.float32)       # [B]
        return {"accuracy": accuracy, "loss": loss}

    def sample(self, params, model_state, key, num, labels=None):
        raise NotImplementedError("the classifier is not a generative model: it cannot sample")

    def visualize(self, state, batch, key):
        return {}
