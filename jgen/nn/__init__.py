"""Pure flax.linen modules (no training logic here)."""
