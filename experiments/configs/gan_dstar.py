"""The optimal discriminator, measured: D trained against a FIXED generator on 1-D densities we know.

    python experiments/gan_toys.py --config experiments/configs/gan_dstar.py --workdir runs/gan_dstar

p_data = 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2), p_g = N(0, 1.5^2). Writes dstar.json (max and mean |D - D*| where
the densities have mass; with p_g = p_data, max |D - 1/2| and the final loss next to 2 log 2) and dstar.png.
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.name = "gan_dstar"
    c.experiment = "dstar"
    c.seed = 0
    c.toy = ml_collections.ConfigDict(
        dict(
            data_means=(-2.0, 2.0),
            data_std=0.5,
            g_mean=0.0,
            g_std=1.5,
            hidden=(64, 64),
            learning_rate=1e-3,
            batch_size=1024,
            steps=3000,
            grid_min=-4.0,
            grid_max=4.0,
            mass_threshold=0.02,
        )
    )
    return c
