"""GAN pieces that are not a training method: losses (pure functions of logits) and the toy experiments."""
