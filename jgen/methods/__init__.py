"""Families of generative models, one module each, found by name: `get_method(config.method.name)`.

Each module registers one `Method` subclass (jgen/methods/base.py) that owns its config section (`defaults()`),
its validation (`check(config)`), its networks and its pure train/eval/generate functions.
"""

# importing each family module runs its @register, so `get_method` knows every family once jgen.methods is imported;
# a new family is one module and one name here
from jgen.methods import (
    autoencoder,
    autoregressive,
    classifier,
    consistency,
    diffusion,
    gan,
    gmm,
    latent_diffusion,
    meanflow,
    shortcut,
    vae,
)
from jgen.methods.base import Batch, Method, Resources
from jgen.methods.registry import get_method, method_names, register

__all__ = ["Batch", "Method", "Resources", "get_method", "method_names", "register"]
