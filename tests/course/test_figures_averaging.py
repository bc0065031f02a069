"""Chart 14 (the averaging problem) from the 8x8 digits alone: its completions are real training lower halves."""

import numpy as np

from course.autoencoders import averaging_data, draw_averaging
from jgen.config import base_config
from jgen.data import get_source


def test_chart14_mean_of_the_nearest_training_lower_halves(tmp_path):
    d = averaging_data(data="digits", num_queries=2, k=3, num_eval=50)
    cfg = base_config().data
    cfg.name = "digits"
    train_src, test_src, _ = get_source(cfg)
    train = np.stack([train_src[i]["image"] for i in range(len(train_src))])
    q = d["queries"]
    half = d["half"]
    assert half == 4 and q["completions"].shape == (2, 3, 8, 8, 1)
    for i in range(2):
        digit = q["digit"][i]
        # each completion is the lower half of a training digit among the k nearest by upper half (brute force;
        # ties may be broken either way)
        dist = ((train[:, :half] - digit[:half]) ** 2).sum(axis=(1, 2, 3))
        kth = np.sort(dist)[2]
        for c in q["completions"][i, :, half:]:
            same = np.all(train[:, half:] == c, axis=(1, 2, 3))
            assert same.any() and dist[same].min() <= kth + 1e-9
        np.testing.assert_array_equal(q["completions"][i, :, :half], np.broadcast_to(digit[:half], (3, half, 8, 1)))
        np.testing.assert_allclose(q["mean"][i, half:], q["completions"][i, :, half:].mean(axis=0), atol=1e-6)
    s = d["scores"]
    assert s["grey_mean"] > s["grey_data"]  # the mean is blurrier than real digits
    draw_averaging(d, str(tmp_path / "14.png"))
    assert (tmp_path / "14.png").stat().st_size > 10_000
