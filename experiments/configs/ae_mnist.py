"""The course's MLP autoencoder on the embedded MNIST.

    python -m jgen train --config experiments/configs/ae_mnist.py --workdir runs/ae_mnist

784 -> 512 -> 256 -> 128 -> 256 -> 512 -> 784, ReLU hidden layers, sigmoid output, MSE loss, Adam lr 1e-3,
100 epochs of the 4,000 training images at batch 128 (3,100 steps). Runtime: about 1 minute on 2 CPU cores.
Reported: test MSE per image (mean over the 784 pixels, then over the 1,000 test images).
"""

from jgen.run import default_config

EPOCHS = 100
TRAIN_IMAGES = 4000


def get_config():
    c = default_config("autoencoder")
    c.name = "ae_mnist"
    c.data.name = "mnist"
    c.data.batch_size = 128
    c.model.kind = "mlp"
    c.model.features = (512, 256)  # hidden widths; the bottleneck is latent_dim
    c.model.latent_dim = 128
    c.optim.learning_rate = 1e-3
    c.train.steps = -(-EPOCHS * TRAIN_IMAGES // c.data.batch_size)  # ceil: 100 epochs
    c.train.log_every = 31
    c.train.eval_every = 310
    c.train.sample_every = 1000
    c.train.checkpoint_every = 1000
    c.train.ema_decay = 0.0  # the course model has no EMA: evaluate the trained parameters
    return c
