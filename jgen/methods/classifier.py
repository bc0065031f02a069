"""Digit classifier trained with the shared loop; it provides the feature space of the MNIST-domain metrics.

Not a generative model: it declares no "sample" capability. Training loss is the softmax cross-entropy, optionally
on randomly shifted images (`method.max_shift` pixels) with dropout on the features (`model.dropout`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jgen.config import InputError, fail, require_int, require_int_tuple
from jgen.methods.base import Batch, Method
from jgen.methods.registry import register
from jgen.nn.classifier import DigitClassifier, random_shift
from jgen.nn.precision import check_precision, compute_dtype, param_dtype, precision_defaults


def make_classifier(model_cfg, num_classes: int) -> DigitClassifier:
    """The DigitClassifier described by `config.model` (features, feature_dim, dropout, dtype, param_dtype)."""
    return DigitClassifier(
        num_classes=num_classes,
        features=tuple(model_cfg.features),
        feature_dim=int(model_cfg.feature_dim),
        dropout=float(model_cfg.dropout),
        dtype=compute_dtype(model_cfg),
        param_dtype=param_dtype(model_cfg),
    )


@register("classifier")
class Classifier(Method):
    """logits, features = net(x); loss = mean cross-entropy; eval: per-example accuracy and loss."""

    @classmethod
    def defaults(cls) -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(
            {
                "method": {"max_shift": 0},
                "model": {"features": (32, 64), "feature_dim": 128, "dropout": 0.0, **precision_defaults()},
            }
        )

    @classmethod
    def check(cls, config) -> None:
        super().check(config)
        require_int("method.max_shift", config.method.max_shift, 0, "--config.method.max_shift=2 (pixels of shift)")
        require_int_tuple("model.features", config.model.features)
        require_int("model.feature_dim", config.model.feature_dim)
        if not 0.0 <= config.model.dropout < 1.0:
            fail("model.dropout", config.model.dropout, "must be in [0, 1)")
        check_precision(config.model)

    def __init__(self, config, info, resources=None):
        super().__init__(config, info, resources)
        if info.num_classes < 2:
            raise InputError(
                f"the classifier needs labelled data with >= 2 classes; {info.name!r} has "
                f"num_classes={info.num_classes}"
            )
        max_shift = int(config.method.max_shift)
        if not max_shift < min(info.shape[:2]):
            fail("method.max_shift", max_shift, f"must be smaller than the image ({min(info.shape[:2])} pixels)")
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
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])  # [B]
        accuracy = (jnp.argmax(logits, axis=-1) == batch["label"]).astype(jnp.float32)  # [B]
        return {"accuracy": accuracy, "loss": loss}
