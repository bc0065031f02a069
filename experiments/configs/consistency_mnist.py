"""Class-conditional consistency training (iCT, Song & Dhariwal 2023) on the embedded MNIST: 1 to few steps.

    python -m jgen train --config experiments/configs/consistency_mnist.py --workdir runs/consistency_mnist
    python -m jgen sample --workdir runs/consistency_mnist --steps 2 --labels 0,1,2,3,4,5,6,7,8,9 --num_samples 8 \
        --out runs/consistency_mnist/two_steps.png
    python -m jgen eval --workdir runs/consistency_mnist --num_samples 1000 --steps 2

The network and the training budget are ddpm_mnist's (the 280k-parameter UNet, batch 64, optimizer, EMA); the
objective is iCT's (jgen/methods/consistency.py): sigma in [0.002, 80], sigma_data 0.5, pseudo-Huber loss, the
lognormal(-1.1, 2) index distribution, and a discretisation that doubles from 11 to 161 levels over the 2,000
steps (iCT goes to 1281 over 400k steps). `--config.model.kind=dit` trains the DiT of dit_mnist
instead. Results are in docs/few_step.md.
"""

from experiments.configs import ddpm_mnist
from jgen.run import default_config


def get_config():
    c = default_config("consistency")
    base = ddpm_mnist.get_config()
    for section in ("data", "model", "optim", "train"):
        c[section] = base[section]  # ddpm_mnist's data, UNet, optimizer and loop
    c.name = "consistency_mnist"
    c.method.conditional = True
    c.method.label_dropout = 0.1
    c.method.sample_steps = 1  # network evaluations per image
    c.method.scales_start = 10
    c.method.scales_end = 160
    return c
