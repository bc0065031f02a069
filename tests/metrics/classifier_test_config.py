"""A classifier config small enough to train for a few steps inside a test."""

from jgen.config import base_config


def tiny_classifier_config(steps: int = 2):
    c = base_config()
    c.name = "tiny_classifier"
    c.data.name = "mnist"
    c.data.batch_size = 16
    c.method.name = "classifier"
    c.method.max_shift = 2
    c.model.features = (4, 8)
    c.model.feature_dim = 16
    c.model.dropout = 0.5
    c.train.steps = steps
    c.train.log_every = 1
    c.train.eval_every = 0
    c.train.sample_every = 0
    c.train.checkpoint_every = 0
    c.train.eval_batch_size = 100
    c.train.num_eval_examples = 100
    c.train.progress = False
    return c
