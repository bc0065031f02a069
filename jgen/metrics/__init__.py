"""Evaluation metrics: sample quality in a feature space (FID, IS, KID, precision/recall, density/coverage)
and likelihood summaries (bits/dim, perplexity, the importance-weighted bound).

The metric functions are pure functions of arrays; feature networks live in `jgen.metrics.feature_nets`.
"""

from jgen.metrics.fid import (FeatureStats, feature_stats, finalize_stats, frechet_distance, init_stats,
                              merge_stats, update_stats)
from jgen.metrics.isc import inception_score
from jgen.metrics.kid import kid
from jgen.metrics.likelihood import bits_per_dim, dequantized_bits_per_dim, iwae_bound, perplexity
from jgen.metrics.manifold import density_coverage, precision_recall
from jgen.metrics.sample_metrics import compute_sample_metrics

__all__ = ["FeatureStats", "feature_stats", "finalize_stats", "frechet_distance", "init_stats", "merge_stats",
           "update_stats", "inception_score", "kid", "bits_per_dim", "dequantized_bits_per_dim", "iwae_bound",
           "perplexity", "density_coverage", "precision_recall", "compute_sample_metrics"]
