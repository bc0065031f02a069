"""A VAE with a 2-D latent on the embedded MNIST: the latent plane can be drawn (chart 15 of `python -m course`).

    python -m jgen train --config experiments/configs/vae_2d_mnist.py --workdir runs/vae_2d_mnist

The convolutional VAE of vae_mnist.py with latent_dim = 2 (same length and optimizer): test digits' posterior means
are points of the plane, and the decoder's output over a grid of that plane shows which digit lives where.
Runtime: as vae_mnist.py, about 3.3 minutes on 2 CPU cores.
"""

from experiments.configs import vae_mnist


def get_config():
    c = vae_mnist.get_config()
    c.name = "vae_2d_mnist"
    c.method.latent_dim = 2
    return c
