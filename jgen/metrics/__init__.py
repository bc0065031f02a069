"""Evaluation metrics: sample quality in a feature space (FID, IS, KID, precision/recall, density/coverage)
and likelihood summaries (bits/dim, perplexity, the importance-weighted bound).

The metric functions are pure functions of arrays; feature networks live in `jgen.metrics.feature_nets`.

The scipy-backed names are re-exported lazily (PEP 562): `from jgen.metrics import frechet_distance`
imports `jgen.metrics.fid` on first use. Methods import `jgen.metrics.likelihood` on the training path, and importing
this package must not pull in scipy (fid, isc) there: that cost ~1.3 s before `train` started.
"""

import importlib

# numpy/jax only: imported eagerly. `kid` must be: the function shares its module's name, and importing the
# submodule later would bind the module, not the function, to `jgen.metrics.kid`.
from jgen.metrics.kid import kid
from jgen.metrics.likelihood import bits_per_dim, dequantized_bits_per_dim, iwae_bound, perplexity, uniform_dequantize
from jgen.metrics.manifold import density_coverage, precision_recall

_LAZY = {  # scipy-backed: imported on first use
    "jgen.metrics.fid": (
        "FeatureStats",
        "feature_stats",
        "finalize_stats",
        "frechet_distance",
        "init_stats",
        "load_stats",
        "merge_stats",
        "save_stats",
        "update_stats",
    ),
    "jgen.metrics.isc": ("inception_score",),
    "jgen.metrics.sample_metrics": ("compute_sample_metrics",),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}

__all__ = [
    "FeatureStats",
    "feature_stats",
    "finalize_stats",
    "frechet_distance",
    "init_stats",
    "load_stats",
    "merge_stats",
    "save_stats",
    "update_stats",
    "inception_score",
    "kid",
    "bits_per_dim",
    "dequantized_bits_per_dim",
    "iwae_bound",
    "perplexity",
    "uniform_dequantize",
    "density_coverage",
    "precision_recall",
    "compute_sample_metrics",
]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'jgen.metrics' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
