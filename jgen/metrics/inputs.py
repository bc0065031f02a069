"""Checks at the metrics' boundary: a metric of non-finite numbers would be NaN or, worse, plausible-looking."""

from __future__ import annotations

import numpy as np

from jgen.config import InputError


def finite_array(name: str, x, dtype=np.float64) -> np.ndarray:
    """`x` as a numpy array of `dtype`; InputError naming `name` and the count of NaN/inf entries if any."""
    arr = np.asarray(x, dtype)
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise InputError(
            f"{name} has {bad} non-finite value(s) (NaN or inf) out of {arr.size}: the images or "
            "features it came from are not finite (a diverged model?); metrics of them would be "
            "meaningless"
        )
    return arr
