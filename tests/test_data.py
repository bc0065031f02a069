import numpy as np
import pytest

from jgen.data import eval_batches, from_model_range, get_source, make_train_iterator, to_model_range, train_batches
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


class _Recording:
    """A source that records which indices were read."""

    def __init__(self, source):
        self.source, self.read = source, set()

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        self.read.add(int(i))
        return self.source[i]


@pytest.mark.parametrize("n", [2, 4])
def test_each_process_reads_only_its_rows_of_the_same_global_batches(n):
    """Side by side in process order, the processes' local batches are the 1-process global batches row for row
    (across an epoch boundary), each process reads only its own examples, and the iterator state is the same for
    every process count, so a position saved by n processes resumes in 1."""
    train, _, _ = get_source(tiny_config().data)
    epoch = len(train) // 48
    one = _Recording(train)
    full = train_batches(one, 5, 48, process_index=0, process_count=1)
    parts = [_Recording(train) for _ in range(n)]
    local = [train_batches(parts[p], 5, 48, process_index=p, process_count=n) for p in range(n)]
    for b in range(epoch):  # random access reads exactly these batches (no read-ahead)
        assert local[0][b]["image"].shape == (48 // n, 8, 8, 1)
        for k in ("image", "label"):
            np.testing.assert_array_equal(np.concatenate([x[b][k] for x in local]), full[b][k])
    reads = [r.read for r in parts]
    assert all(len(r) == epoch * 48 // n for r in reads)  # its share, and nothing else
    assert all(not (reads[p] & reads[q]) for p in range(n) for q in range(p))
    assert set().union(*reads) == one.read

    it = make_train_iterator(train, 5, 48, process_index=0, process_count=1)
    its = [make_train_iterator(train, 5, 48, process_index=p, process_count=n) for p in range(n)]
    for _ in range(epoch + 3):  # past the first epoch's end
        want, got = next(it), [next(i) for i in its]
        np.testing.assert_array_equal(np.concatenate([g["label"] for g in got]), want["label"])
    assert all(i.get_state() == it.get_state() for i in its)
    resumed = make_train_iterator(train, 5, 48, process_index=0, process_count=1)
    resumed.set_state(its[1].get_state())
    np.testing.assert_array_equal(next(resumed)["image"], next(it)["image"])


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


def test_random_flip_is_a_pure_function_of_the_stream_position():
    """Each image is itself or its mirror (about half mirrored), the same for every process count and after a
    resume from the iterator state."""
    train, _, _ = get_source(tiny_config().data)
    plain = train_batches(train, 2, 32)
    flip = train_batches(train, 2, 32, random_flip=True)
    mirrored = 0
    for b in range(10):
        x, y = plain[b]["image"], flip[b]["image"]
        same = np.all(x == y, axis=(1, 2, 3))
        mirror = np.all(x[:, :, ::-1] == y, axis=(1, 2, 3))
        assert np.all(same | mirror)
        mirrored += int(np.sum(mirror & ~same))
    assert 100 < mirrored < 220, mirrored  # of 320 images, some symmetric
    parts = [train_batches(train, 2, 32, process_index=p, process_count=2, random_flip=True) for p in range(2)]
    np.testing.assert_array_equal(np.concatenate([parts[0][7]["image"], parts[1][7]["image"]]), flip[7]["image"])
    it = make_train_iterator(train, 2, 32, random_flip=True)
    for _ in range(3):
        next(it)
    again = make_train_iterator(train, 2, 32, random_flip=True)
    again.set_state(it.get_state())
    np.testing.assert_array_equal(next(again)["image"], flip[3]["image"])


def test_iterator_state_is_the_batch_count_and_restores_with_any_read_ahead():
    """In this process: the state is {"next_index": batches read}, read-ahead does not change the batches, and
    `set_state` before, or in the middle of, reading moves to that position (across an epoch boundary)."""
    train, _, _ = get_source(tiny_config().data)
    flips = train_batches(train, 4, 32, random_flip=True)  # 44 batches an epoch
    with make_train_iterator(train, 4, 32, random_flip=True, read_ahead=0) as it:
        for b in range(3):
            np.testing.assert_array_equal(next(it)["image"], flips[b]["image"])
        assert it.get_state() == {"next_index": 3}
        it.set_state({"next_index": 42})
        for b in (42, 43, 44):
            np.testing.assert_array_equal(next(it)["image"], flips[b]["image"])
    with make_train_iterator(train, 4, 32, random_flip=True, read_ahead=4) as ahead:
        ahead.set_state({"next_index": 43})
        np.testing.assert_array_equal(next(ahead)["image"], flips[43]["image"])
        assert ahead.get_state() == {"next_index": 44}
    with pytest.raises(ValueError, match="next_index"):
        ahead.set_state({"next_index": -1})


def test_worker_processes_resume_mid_epoch_with_the_same_batches_and_state():
    """worker_count=2 (grain worker processes, spawned: ~4 s of start-up on 2 cores) restored from a mid-epoch state
    saved by an in-process iterator yields batch for batch the bytes of worker_count=0, with flips, across the
    epoch boundary, and ends at the same state. (A fresh start is the same path from position 0.)"""
    train, _, _ = get_source(tiny_config().data)
    inline = make_train_iterator(train, 4, 32, random_flip=True)  # 44 batches an epoch
    for _ in range(41):
        next(inline)
    with make_train_iterator(train, 4, 32, random_flip=True, worker_count=2, read_ahead=2) as it:
        it.set_state(inline.get_state())
        for _ in range(4):
            want, got = next(inline), next(it)
            for k in ("image", "label"):
                np.testing.assert_array_equal(got[k], want[k])
        assert it.get_state() == inline.get_state() == {"next_index": 45}
