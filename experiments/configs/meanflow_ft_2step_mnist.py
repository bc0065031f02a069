"""Two-step MeanFlow fine-tuned from a trained flow-matching run on the embedded MNIST.

    python -m jgen train --config experiments/configs/flow_mnist.py --workdir runs/flow_mnist      # the source
    python -m jgen train --config experiments/configs/meanflow_ft_2step_mnist.py --workdir runs/meanflow_ft_2step_mnist
    python -m jgen eval --workdir runs/meanflow_ft_2step_mnist --num_samples 1000 --steps 2

meanflow_ft_mnist.py without training-time guidance and for twice as long (4,000 steps of batch 64 after
flow_mnist's 2,000): half of the examples with r < t, the plain conditional velocity as the target. Guidance
w = 2 makes meanflow_ft_mnist the one-step config; following a guided field over several jumps over-sharpens, so
for 2-4 jumps this one is better (docs/few_step.md). Its own sampling is two jumps (1 -> 0.5 -> 0).
"""

from experiments.configs import meanflow_ft_mnist


def get_config():
    c = meanflow_ft_mnist.get_config()
    c.name = "meanflow_ft_2step_mnist"
    c.method.cfg_scale = 1.0
    c.method.sample_steps = 2
    c.train.steps = 4000
    return c
