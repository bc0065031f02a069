import numpy as np
import pytest

from jgen.data import eval_batches, from_model_range, get_source, make_train_iterator, to_model_range
from tests.conftest import tiny_config


def test_embedded_mnist_split_and_range():
    c = tiny_config()
    c.data.name = "mnist"
    train, test, info = get_source(c.data)
    assert (info.num_train, info.num_test, info.shape) == (4000, 1000, (28, 28, 1))
    ex = train[0]
    assert ex["image"].dtype == np.float32 and ex["image"].shape == (28, 28, 1)
    assert 0.0 <= ex["image"].min() and ex["image"].max() <= 1.0 and ex["image"].max() > 0.5
    assert np.bincount(test.labels, minlength=10).tolist() == [100] * 10
    # train and test are disjoint images
    tr = {x.tobytes() for x in train.images}
    assert not any(x.tobytes() in tr for x in test.images)


def test_train_stream_is_deterministic_and_resumable():
    train, _, _ = get_source(tiny_config().data)
    it = make_train_iterator(train, seed=3, global_batch_size=16)
    next(it)
    state = it.get_state()
    b2, b3 = next(it), next(it)
    it2 = make_train_iterator(train, seed=3, global_batch_size=16)
    it2.set_state(state)
    np.testing.assert_array_equal(next(it2)["image"], b2["image"])
    np.testing.assert_array_equal(next(it2)["label"], b3["label"])
    assert b2["image"].shape == (16, 8, 8, 1)


def test_process_slices_tile_the_global_batch():
    train, _, _ = get_source(tiny_config().data)
    full = next(make_train_iterator(train, 0, 16, process_index=0, process_count=1))
    parts = [next(make_train_iterator(train, 0, 16, process_index=p, process_count=4)) for p in range(4)]
    np.testing.assert_array_equal(np.concatenate([p["label"] for p in parts]), full["label"])


def test_eval_batches_cover_each_example_once():
    _, test, _ = get_source(tiny_config().data)
    seen = 0
    for batch, valid in eval_batches(test, 100):
        assert batch["image"].shape[0] == 100
        seen += valid
    assert seen == len(test)


def test_model_range_round_trip():
    x = np.linspace(0, 1, 11, dtype=np.float32)
    np.testing.assert_allclose(from_model_range(to_model_range(x)), x, atol=1e-7)
    assert float(to_model_range(x).min()) == -1.0


def test_tfds_source_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    c = tiny_config()
    c.data.name, c.data.tfds_name, c.data.data_dir = "tfds", "mnist", str(tmp_path)
    with tfds.testing.mock_data(num_examples=12):
        train, test, info = get_source(c.data)
        ex = train[3]
    assert info.shape == (28, 28, 1) and len(train) == 12
    assert ex["image"].dtype == np.float32 and 0.0 <= ex["image"].min() <= ex["image"].max() <= 1.0


def test_missing_tfds_dataset_says_what_and_where(tmp_path):
    c = tiny_config()
    c.data.name, c.data.tfds_name, c.data.data_dir = "tfds", "mnist", str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError) as e:
        get_source(c.data)
    msg = str(e.value)
    assert "'mnist'" in msg and "nowhere" in msg and "tfds build mnist" in msg
    assert not (tmp_path / "nowhere" / "downloads").exists()
