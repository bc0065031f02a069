"""Class-conditional flow matching with a DiT backbone (SiT, Ma et al. 2024) on the embedded MNIST.

    python -m jgen train --config experiments/configs/sit_mnist.py --workdir runs/sit_mnist
    python -m jgen sample --workdir runs/sit_mnist --sampler midpoint --steps 10 --guidance 2.0 \
        --labels 0,1,2,3,4,5,6,7,8,9 --num_samples 8 --out runs/sit_mnist/guided.png

dit_mnist's network trained with flow_mnist's objective: the straight path x_t = (1 - t) x0 + t eps (schedule
`rectified_flow`, t uniform in [1/1000, 1]) and the velocity u = eps - x0 as the target (parameterization `flow`).
RUNTIME
"""

from experiments.configs import dit_mnist


def get_config():
    c = dit_mnist.get_config()
    c.name = "sit_mnist"
    c.method.schedule = "rectified_flow"  # alpha_t = 1 - t, sigma_t = t; timesteps sets t_min = 1 / timesteps
    c.method.parameterization = "flow"     # the velocity u = eps - x0
    c.method.time_sampling = "uniform"     # uniform | logit_normal (SiT and SD3 also train with logit-normal times)
    return c
