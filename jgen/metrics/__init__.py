"""Evaluation metrics: sample quality in a feature space (FID, IS, KID, precision/recall, density/coverage)
and likelihood summaries (bits/dim, perplexity, the importance-weighted bound).

The metric functions are pure functions of arrays; feature networks live in `jgen.metrics.feature_nets`.

The names below are re-exported lazily (PEP 562): `from jgen.metrics import frechet_distance` imports
`jgen.metrics.fid` on first use. Methods import `jgen.metrics.likelihood` on the training path, and importing
this package must not pull in scipy (fid, isc) there: that cost ~1.3 s before `train` started.
"""

import importlib

_EXPORTS = {
    "jgen.metrics.fid": ("FeatureStats", "feature_stats", "finalize_stats", "frechet_distance", "init_stats",
                         "merge_stats", "update_stats"),
    "jgen.metrics.isc": ("inception_score",),
    "jgen.metrics.kid": ("kid",),
    "jgen.metrics.likelihood": ("bits_per_dim", "dequantized_bits_per_dim", "iwae_bound", "perplexity"),
    "jgen.metrics.manifold": ("density_coverage", "precision_recall"),
    "jgen.metrics.sample_metrics": ("compute_sample_metrics",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'jgen.metrics' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
