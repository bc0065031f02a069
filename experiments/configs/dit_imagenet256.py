"""DiT-S/B/L/XL at patch 2/4/8 on ImageNet-256 latents (Peebles & Xie 2023, "Scalable Diffusion Models with
Transformers"): the paper's twelve models, counted here, not trained.

    python -m experiments.dit_table     # parameters and forward GFLOPs of all twelve beside the paper's Table 4

`get_config(variant)` for variant in S/2 ... XL/8 (default XL/2, the paper's best); the model section is
`model.kind=dit` with the variant's depth, hidden size, heads and patch. The paper's setting: class-conditional
latent diffusion on the 32x32x4 latents of Stable Diffusion's f=8 VAE (ImageNet at 256x256), 1,000 classes plus the
null class (label dropout 0.1), linear betas 1e-4..0.02 over T = 1000, eps prediction, AdamW 1e-4 without weight
decay, batch 256, EMA 0.9999, 400k steps (7M for the final DiT-XL/2), no augmentation but flips. The paper's head also
predicts the variance (learned sigma, 2 x 4 output channels); jgen's predicts the 4 channels of its
parameterisation, so the counts below use a head of 8 channels to compare with the paper.
Counting: `experiments.dit_table` initialises each model abstractly (jax.eval_shape: no memory) for one 32x32x4 input
and counts the forward pass's FLOPs from its jaxpr (jgen.train.throughput.count_flops); the paper's Gflops are
multiply-accumulates (one per multiply-add), so its numbers compare with count.matmul / 2 (tests/test_dit.py).
Runtime: not trained here: it needs ImageNet, a first stage with 32x32x4 latents (jgen has none at this scale) and
accelerators; `python -m jgen train` with this config stops, before any compute, at the missing TFDS imagenet2012
(and then at the missing first-stage run, runs/vae_imagenet256).
"""

from jgen.run import default_config

LATENT_SHAPE = (32, 32, 4)  # ImageNet 256x256 through Stable Diffusion's f=8 VAE
NUM_CLASSES = 1000
SIZES = {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}  # depth, width, heads
PATCHES = (2, 4, 8)
VARIANTS = tuple(f"{size}/{p}" for size in SIZES for p in PATCHES)
# The paper's Table 4: (parameters in millions, forward Gflops) at 256x256, learned-sigma head included.
PAPER = {
    "S/8": (33, 0.36),
    "S/4": (33, 1.41),
    "S/2": (33, 6.06),
    "B/8": (131, 1.42),
    "B/4": (130, 5.56),
    "B/2": (130, 23.01),
    "L/8": (459, 5.01),
    "L/4": (458, 19.70),
    "L/2": (458, 80.71),
    "XL/8": (676, 7.39),
    "XL/4": (675, 29.05),
    "XL/2": (675, 118.64),
}


def get_config(variant: str = "XL/2"):
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}; choose one of {list(VARIANTS)}")
    size, patch = variant.split("/")
    depth, width, heads = SIZES[size]
    c = default_config("latent_diffusion")
    c.name = f"dit_{size.lower()}{patch}_imagenet256"
    c.data.name = "tfds"
    c.data.tfds_name = "imagenet2012"
    c.data.num_classes = NUM_CLASSES
    c.data.batch_size = 256
    c.data.random_flip = True
    c.method.first_stage_workdir = "runs/vae_imagenet256"  # a VAE run with 32x32x4 latents of 256x256 ImageNet
    c.method.schedule = "linear"
    c.method.timesteps = 1000
    c.method.parameterization = "eps"
    c.method.conditional = True
    c.method.label_dropout = 0.1
    c.method.guidance = 1.5  # the paper's guided samples (FID 2.27 for DiT-XL/2)
    c.method.sampler = "ddpm"
    c.method.sample_steps = 250
    c.model.kind = "dit"
    c.model.patch_size = int(patch)
    c.model.hidden_size = width
    c.model.depth = depth
    c.model.num_heads = heads
    c.model.mlp_ratio = 4.0
    c.optim.name = "adamw"
    c.optim.learning_rate = 1e-4
    c.optim.weight_decay = 0.0
    c.train.steps = 400_000
    c.train.ema_decay = 0.9999
    return c
