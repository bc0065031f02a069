"""First stage of latent diffusion: a KL-regularised convolutional autoencoder with a 7x7x4 latent map.

    python -m jgen train --config experiments/configs/ldm_autoencoder.py --workdir runs/ldm_autoencoder

A VAE whose latent is spatial (28x28x1 -> 7x7x4 -> 28x28x1), with a small KL weight (beta) as in latent
diffusion: the KL only keeps the latent space smooth and bounded; reconstructions stay sharp. The second stage
(experiments/configs/ldm_mnist.py) reads this run directory. Runtime: about 4 minutes on 2 CPU cores.
"""

from jgen.run import default_config


def get_config():
    c = default_config("vae")
    c.name = "ldm_autoencoder"
    c.data.name = "mnist"
    c.data.batch_size = 64
    c.method.latent_dim = 4  # latent channels
    c.method.likelihood = "logistic"
    c.method.beta = 0.01
    c.method.eval_iw_samples = 1
    c.model.kind = "conv_spatial"
    c.model.features = (16, 32)  # two stride-2 stages: 28 -> 14 -> 7
    c.optim.learning_rate = 1e-3
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 100
    c.train.steps = 3000
    c.train.eval_every = 1000
    c.train.sample_every = 1000
    c.train.checkpoint_every = 1000
    return c
