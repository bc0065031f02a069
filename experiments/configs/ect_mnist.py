"""Consistency fine-tuning from a trained EDM model (ECT's initialisation, Geng et al. 2024) on the embedded MNIST.

    python -m jgen train --config experiments/configs/edm_mnist.py --workdir runs/edm_mnist      # the source
    python -m jgen train --config experiments/configs/ect_mnist.py --workdir runs/ect_mnist
    python -m jgen eval --workdir runs/ect_mnist --num_samples 1000 --steps 1

consistency_mnist's objective (iCT's pseudo-Huber loss between adjacent noise levels, the discretisation doubling
from 11 to 161 levels) started from the EMA parameters of the EDM run in `train.init_from` instead of from a random
network. The EDM network F is already a consistency model's: the same c_in, c_noise = ln(sigma) / 4 and sigma_data
0.5, and c_skip/c_out equal to EDM's up to the sigma_min offset, so the first step's f is EDM's denoiser D(x;
sigma), the limit ECT starts from (its step sizes shrinking from the whole interval as the grid refines). The
model fields must be the source's (ddpm_mnist's UNet here); `--config.train.init_from=RUN` names another run.
Half of consistency_mnist's steps. Results are in docs/few_step.md.
"""

from experiments.configs import consistency_mnist


def get_config():
    c = consistency_mnist.get_config()
    c.name = "ect_mnist"
    c.train.init_from = "runs/edm_mnist"  # a finished edm_mnist.py run (its newest checkpoint: train.init_step 0)
    c.train.steps = 1000
    return c
