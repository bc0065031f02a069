"""Convolutional VAE on the embedded MNIST (the default experiment of `make run`).

    python -m jgen train --config experiments/configs/vae_mnist.py --workdir runs/vae_mnist

Runtime: about 3.3 minutes on 2 CPU cores (3,000 steps of batch 64: 48 epochs of the 4,000 training images).
Reported at each evaluation: test ELBO in nats and bits/dim, and the importance-weighted bound (K=16).
Continuous logistic decoder on dequantised 8-bit pixels, so the reported bits/dim is an upper bound
on the discrete negative log-likelihood (see jgen/methods/vae.py for the convention).
"""

from jgen.run import default_config


def get_config():
    c = default_config("vae")
    c.name = "vae_mnist"
    c.data.name = "mnist"
    c.data.batch_size = 64
    c.method.latent_dim = 16
    c.method.likelihood = "logistic"  # logistic | gaussian (dequantised 8-bit pixels) | bernoulli (binarised)
    c.method.beta = 1.0  # weight of the KL term (beta-VAE); 1.0 is the ELBO
    c.method.eval_iw_samples = 16  # K of the importance-weighted bound reported at evaluation (1: off)
    c.model.kind = "conv"
    c.model.features = (16, 32)
    c.model.hidden = 256
    c.optim.learning_rate = 1e-3
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 100
    c.train.steps = 3000
    c.train.log_every = 50
    c.train.eval_every = 1000
    c.train.sample_every = 1000
    c.train.checkpoint_every = 1000
    c.train.ema_decay = 0.999
    return c
