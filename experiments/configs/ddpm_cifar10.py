"""DDPM on CIFAR-10 at the paper's scale (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", CIFAR-10 model).

    python -m jgen train --config experiments/configs/ddpm_cifar10.py --workdir runs/ddpm_cifar10 \
        --config.data.data_dir=/path/to/tensorflow_datasets

Data: TFDS `cifar10` prepared once in array_record format (`tfds build cifar10 --data_dir=<dir>
--file_format=array_record`); jgen never downloads. Unconditional, 32x32x3, random horizontal flips.
Model: the paper's UNet: 128 base channels, multipliers (1, 2, 2, 2) (32 -> 16 -> 8 -> 4), 2 residual blocks per
resolution, self-attention at 16x16 (and in the middle), GroupNorm(32), dropout 0.1: 35,746,307 parameters, the
paper's 35.7M (checked by abstract initialisation in tests/test_ddpm_cifar10.py).
Diffusion: linear betas 1e-4..0.02 over T = 1000 steps, eps prediction, the "simple" unweighted loss; samples by
ancestral DDPM sampling over all 1000 steps, as in the paper.
Optimisation: Adam 2e-4 with 5,000 linear warm-up steps then constant, batch 128, gradient clipping at norm 1.0,
EMA 0.9999, 800k steps.
Runtime: not trained here. It needs an accelerator: the paper's TPU v3-8 ran about 21 steps/s, so 800k steps take
about 10.6 hours there (800,000 / 21 s); docs/gpu.md has the step times measured on a GPU. The config is for a
GPU/TPU job (docs/scaling.md covers multi-host launching,
model.dtype=bfloat16, parallel.fsdp and model.remat); on the CPU it serves the tests, at tiny width.
Reported at each evaluation: the per-example training loss (eps MSE) on 2,048 test images; FID/IS against the
test split with the Inception network via `jgen eval --workdir ... --num_samples 50000 --feature_net inception`.
"""

from jgen.run import default_config


def get_config():
    c = default_config("diffusion")
    c.name = "ddpm_cifar10"
    c.data.name = "tfds"
    c.data.tfds_name = "cifar10"
    c.data.num_classes = 10
    c.data.batch_size = 128
    c.data.random_flip = True
    c.method.schedule = "linear"  # 1e-4 .. 0.02
    c.method.timesteps = 1000
    c.method.parameterization = "eps"
    c.method.loss_weighting = "none"  # L_simple
    c.method.conditional = False  # the paper's CIFAR-10 model is unconditional
    c.method.label_dropout = 0.0
    c.method.sampler = "ddpm"  # ancestral sampling over every step, as in the paper
    c.method.sample_steps = 1000
    c.method.guidance = 1.0
    c.method.clip_denoised = True
    c.model.channels = 128
    c.model.channel_mult = (1, 2, 2, 2)
    c.model.num_res_blocks = 2
    c.model.attention_resolutions = (16,)
    c.model.num_heads = 1
    c.model.dropout = 0.1
    c.optim.name = "adam"
    c.optim.learning_rate = 2e-4
    c.optim.schedule = "constant"
    c.optim.warmup_steps = 5000
    c.optim.grad_clip = 1.0
    c.train.steps = 800_000
    c.train.ema_decay = 0.9999
    c.train.log_every = 100
    c.train.eval_every = 10_000
    c.train.sample_every = 10_000
    c.train.checkpoint_every = 5_000
    c.train.keep_checkpoints = 3
    c.train.eval_batch_size = 512  # a multiple of 8 devices
    c.train.num_eval_examples = 2048
    c.eval.feature_net = "inception"
    c.eval.num_samples = 10_000
    return c
