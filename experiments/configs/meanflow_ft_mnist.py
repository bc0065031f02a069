"""One-step MeanFlow fine-tuned from a trained flow-matching run, with training-time guidance, on the embedded MNIST.

    python -m jgen train --config experiments/configs/flow_mnist.py --workdir runs/flow_mnist      # the source
    python -m jgen train --config experiments/configs/meanflow_ft_mnist.py --workdir runs/meanflow_ft_mnist
    python -m jgen eval --workdir runs/meanflow_ft_mnist --num_samples 1000 --steps 1

meanflow_mnist's objective and budget (2,000 steps of batch 64) started from flow_mnist's EMA parameters
(`train.init_from`): u(z, t, t) = v(z, t) is the flow model's velocity already, so every step can go to the
intervals (half of the examples with r < t instead of a quarter), and the network learns the guided field
w v + (1 - w) u(z, t, t | no label) with w = 2 (MeanFlow's training-time guidance, still one evaluation per
sample). The interval embedding, which the flow model lacks, starts at its initialisation. Guidance sharpens the
one-step samples and over-sharpens the multi-step ones: for 2-4 steps use meanflow_ft_2step_mnist.py (no guidance,
twice as long). Results are in docs/few_step.md.
"""

from experiments.configs import meanflow_mnist


def get_config():
    c = meanflow_mnist.get_config()
    c.name = "meanflow_ft_mnist"
    c.train.init_from = "runs/flow_mnist"  # a finished flow_mnist.py run (its newest checkpoint: train.init_step 0)
    c.method.interval_fraction = 0.5
    c.method.cfg_scale = 2.0
    return c
