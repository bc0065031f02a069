"""Class-conditional MeanFlow (Geng et al. 2025) on the embedded MNIST: one-step generation, flow_mnist's UNet.

    python -m jgen train --config experiments/configs/meanflow_mnist.py --workdir runs/meanflow_mnist
    python -m jgen sample --workdir runs/meanflow_mnist --steps 1 --labels 0,1,2,3,4,5,6,7,8,9 --num_samples 8 \
        --out runs/meanflow_mnist/one_step.png
    python -m jgen eval --workdir runs/meanflow_mnist --num_samples 1000 --steps 1

The network and the training budget are ddpm_mnist's (the 280k-parameter UNet, batch 64, optimizer, EMA), with
the interval t - r as the UNet's second time input; the objective is MeanFlow's (jgen/methods/meanflow.py): 25% of
the examples with r < t, logit-normal(-0.4, 1) times, adaptive weight power 1. Label dropout 0.1 lets `--steps`
samples without labels be unconditional. `--config.model.kind=dit` trains the DiT of dit_mnist instead.
Each step also runs the JVP through the UNet (docs/few_step.md measures its cost); results are in docs/few_step.md.
"""

from experiments.configs import ddpm_mnist
from jgen.run import default_config


def get_config():
    c = default_config("meanflow")
    base = ddpm_mnist.get_config()
    for section in ("data", "model", "optim", "train"):
        c[section] = base[section]  # ddpm_mnist's data, UNet, optimizer and loop
    c.name = "meanflow_mnist"
    c.method.conditional = True
    c.method.label_dropout = 0.1
    c.method.sample_steps = 1  # network evaluations per image
    c.method.interval_fraction = 0.25
    c.method.logit_mean = -0.4
    c.method.logit_std = 1.0
    c.method.weight_power = 1.0
    c.method.cfg_scale = 1.0  # training-time guidance (1: none)
    return c
