"""Class-conditional shortcut model (Frans et al. 2024) on the embedded MNIST: one network for 1, 2, 4, ... steps.

    python -m jgen train --config experiments/configs/shortcut_mnist.py --workdir runs/shortcut_mnist
    python -m jgen sample --workdir runs/shortcut_mnist --steps 2 --labels 0,1,2,3,4,5,6,7,8,9 --num_samples 8 \
        --out runs/shortcut_mnist/two_steps.png
    python -m jgen eval --workdir runs/shortcut_mnist --num_samples 1000 --steps 2

The network and the training budget are ddpm_mnist's (the 280k-parameter UNet, batch 64, optimizer, EMA), with
the step size d as the UNet's second time input; the objective is jgen/methods/shortcut.py's: 75% of each batch
flow matching (d = 0), 25% self-consistency targets for 2d from two d-steps, d = 1/2 .. 1/128.
`--config.model.kind=dit` trains the DiT of dit_mnist instead. Results are in docs/few_step.md.
"""

from experiments.configs import ddpm_mnist
from jgen.run import default_config


def get_config():
    c = default_config("shortcut")
    base = ddpm_mnist.get_config()
    for section in ("data", "model", "optim", "train"):
        c[section] = base[section]  # ddpm_mnist's data, UNet, optimizer and loop
    c.name = "shortcut_mnist"
    c.method.conditional = True
    c.method.label_dropout = 0.1
    c.method.sample_steps = 1  # network evaluations per image
    c.method.consistency_fraction = 0.25
    c.method.max_doublings = 7
    return c
