"""The geometric view of GAN training: 8 Gaussians on a circle, MLP generator and discriminator.

    python experiments/gan_toys.py --config experiments/configs/gan_ring.py --workdir runs/gan_ring
    python experiments/gan_toys.py --config experiments/configs/gan_ring.py --workdir runs/ring_hinge \
        --config.toy.loss=hinge

Writes ring.png (samples from the same latents at several steps, with the 8 modes marked) and ring.json
(per snapshot: modes covered of 8, fraction of high-quality samples within 3 std of a mode, both losses).
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.name = "gan_ring"
    c.experiment = "ring"
    c.seed = 0
    c.toy = ml_collections.ConfigDict(
        dict(
            loss="non_saturating",  # minimax | non_saturating | hinge | wgan_gp
            n_critic=1,
            gp_weight=0.1,
            r1_gamma=0.0,
            num_modes=8,
            radius=2.0,
            std=0.02,
            latent_dim=16,
            hidden=(128, 128),
            learning_rate=1e-3,
            b1=0.5,
            b2=0.999,
            batch_size=256,
            steps=10000,
            snapshot_every=1000,
            num_eval=2000,
        )
    )
    return c
