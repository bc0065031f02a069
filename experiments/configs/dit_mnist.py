"""Class-conditional diffusion with a DiT backbone on the embedded MNIST: ddpm_mnist with a transformer for the UNet.

    python -m jgen train --config experiments/configs/dit_mnist.py --workdir runs/dit_mnist
    python -m jgen sample --workdir runs/dit_mnist --sampler dpm_solver --steps 20 --guidance 2.0 \
        --labels 0,1,2,3,4,5,6,7,8,9 --num_samples 8 --out runs/dit_mnist/guided.png

Everything but the network is ddpm_mnist's (linear schedule over 1,000 steps, eps prediction, batch 64, 2,000 steps,
optimizer, EMA, label dropout 0.1), so `jgen compare` sets the two backbones side by side at the same budget.
Model (`model.kind=dit`, jgen/nn/dit.py): 28x28 digits cut into 4x4 patches (49 tokens), 6 adaLN-Zero blocks of
width 128 with 4 heads, MLP ratio 4, fixed 2-D sin-cos positions; 1.87M parameters. Set model.parameterization
to v by --config.method.parameterization=v.
RUNTIME
"""

from experiments.configs import ddpm_mnist


def get_config():
    c = ddpm_mnist.get_config()
    c.name = "dit_mnist"
    c.method.parameterization = "v"  # eps: x0 = (x_t - sigma eps) / alpha amplifies the DiT's errors near t = 1
    c.model.kind = "dit"          # unet | dit (jgen/nn/backbones.py)
    c.model.patch_size = 4        # 28 / 4 = 7 x 7 tokens
    c.model.hidden_size = 128
    c.model.depth = 6
    c.model.num_heads = 4
    c.model.mlp_ratio = 4.0
    return c
