"""Class-conditional latent diffusion on the embedded MNIST: a UNet on the 7x7x4 latents of a frozen VAE.

    python -m jgen train --config experiments/configs/ldm_autoencoder.py --workdir runs/ldm_autoencoder
    python -m jgen train --config experiments/configs/ldm_mnist.py --workdir runs/ldm_mnist \
        --config.method.first_stage_workdir=runs/ldm_autoencoder
    python -m jgen sample --workdir runs/ldm_mnist --sampler dpm_solver --steps 20 --guidance 3.0 \
        --labels 0,1,2,3,4,5,6,7,8,9 --num_samples 8 --out ldm.png

The latent is 16x smaller than the image (196 vs 784 values), so a step costs a fraction of pixel-space
diffusion's. Runtime: docs/training.md has the measured time on 2 CPU cores.
"""

from experiments.configs import ddpm_mnist


def get_config():
    c = ddpm_mnist.get_config()
    c.name = "ldm_mnist"
    c.method.name = "latent_diffusion"
    c.method.first_stage_workdir = "runs/ldm_autoencoder"
    c.method.latent_scale = 0.0  # 0: 1 / std of the training latents, measured at start-up
    c.method.clip_denoised = False  # latents are not bounded to [-1, 1]
    c.method.guidance = 3.0
    c.model.channels = 32
    c.model.channel_mult = (1,)  # 7x7 latents: one resolution level
    c.model.num_res_blocks = 2
    c.model.attention_resolutions = (7,)
    c.optim.learning_rate = 1e-3
    c.train.steps = 3000
    c.train.eval_every = 1000
    c.train.sample_every = 1000
    c.train.checkpoint_every = 1000
    c.train.ema_decay = 0.999
    return c
