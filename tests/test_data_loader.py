"""DataLoader: every sample exactly once per epoch (shuffled or not, with drop_last), on each
device; reproducible orders per seed that change from epoch to epoch; labels as int64;
transforms on the device; generic datasets through collate_fn; clear errors."""

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import backend
from minidl.data import ArrayDataset, DataLoader, Dataset, pad_collate


def ids_dataset(n, label_dtype=np.int64):
    """Inputs whose row i holds i (so a batch says which samples it holds), labels i % 3."""
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None], 2, axis=1)
    return ArrayDataset(x, (np.arange(n) % 3).astype(label_dtype))


def epoch_ids(loader):
    batches = [(x.numpy(), y.numpy()) for x, y in loader]
    for x, y in batches:  # inputs and labels stay paired
        np.testing.assert_array_equal(y, x[:, 0].astype(np.int64) % 3)
    return [x[:, 0].astype(np.int64) for x, _ in batches]


@given(n=st.integers(1, 40), batch_size=st.integers(1, 45), shuffle=st.booleans(), drop_last=st.booleans())
def test_every_sample_once_per_epoch(n, batch_size, shuffle, drop_last):
    loader = DataLoader(ids_dataset(n), batch_size, shuffle, drop_last=drop_last, generator=n)
    for _ in range(2):
        batches = epoch_ids(loader)
        assert len(batches) == len(loader)
        assert all(len(b) == batch_size for b in batches[:-1])
        seen = np.concatenate(batches) if batches else np.zeros(0, np.int64)
        assert len(set(seen.tolist())) == len(seen)  # nothing twice
        if drop_last:
            assert len(loader) == n // batch_size and len(seen) == len(loader) * batch_size
        else:
            assert len(loader) == -(-n // batch_size) and sorted(seen.tolist()) == list(range(n))
        if not shuffle:
            np.testing.assert_array_equal(seen, np.arange(len(seen)))


def test_every_sample_once_per_epoch_on_device(device):
    loader = DataLoader(ids_dataset(103), batch_size=10, shuffle=True, device=device, generator=0)
    for _ in range(2):
        batches = list(loader)
        assert all(x.device == device and y.device == device for x, y in batches)
        seen = np.concatenate([x.numpy()[:, 0] for x, _ in batches]).astype(np.int64)
        assert sorted(seen.tolist()) == list(range(103))


def test_shuffle_is_reproducible_per_seed_and_changes_every_epoch():
    def two_epochs(generator):
        loader = DataLoader(ids_dataset(50), batch_size=50, shuffle=True, generator=generator)
        return [epoch_ids(loader)[0] for _ in range(2)]

    first, second = two_epochs(7)
    again_first, again_second = two_epochs(7)
    np.testing.assert_array_equal(first, again_first)
    np.testing.assert_array_equal(second, again_second)
    assert not np.array_equal(first, second)  # a new order each epoch
    assert not np.array_equal(first, two_epochs(8)[0])  # another seed, another order
    np.testing.assert_array_equal(two_epochs(np.random.default_rng(7))[0], first)  # a Generator works too


def test_a_minidl_generator_shuffles_as_numpy_does_and_an_int_seed_becomes_one():
    reference = np.random.default_rng(4)  # minidl's CPU generator is numpy's default_rng(seed)
    loader = DataLoader(ids_dataset(20), batch_size=20, shuffle=True, generator=minidl.Generator().manual_seed(4))
    for _ in range(2):
        np.testing.assert_array_equal(epoch_ids(loader)[0], reference.permutation(20))
    seeded = DataLoader(ids_dataset(20), shuffle=True, generator=4)
    assert isinstance(seeded.generator, minidl.Generator) and seeded.generator.initial_seed() == 4


def orders(loader, epochs):
    return [np.concatenate(epoch_ids(loader)) for _ in range(epochs)]


def test_generator_state_saved_at_an_epoch_boundary_resumes_the_same_orders(tmp_path):
    def make(seed):
        return DataLoader(ids_dataset(30), batch_size=7, shuffle=True, generator=minidl.Generator().manual_seed(seed))

    straight = orders(make(11), 4)
    stopped = make(11)
    orders(stopped, 2)
    minidl.save({"loader_rng": stopped.generator.get_state()}, tmp_path / "ckpt.npz")
    resumed = make(999)  # a fresh loader, another seed: the restored state must win
    resumed.generator.set_state(minidl.load(tmp_path / "ckpt.npz")["loader_rng"])
    for expected, got in zip(straight[2:], orders(resumed, 2)):
        np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(straight[2], straight[3])


def test_without_a_generator_the_cpu_rng_state_resumes_the_orders():
    loader = DataLoader(ids_dataset(25), batch_size=25, shuffle=True)
    state = minidl.get_rng_state()
    first = orders(loader, 2)
    minidl.manual_seed(123)
    minidl.set_rng_state(state)
    for expected, got in zip(first, orders(DataLoader(ids_dataset(25), batch_size=25, shuffle=True), 2)):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.gpu
@pytest.mark.skipif(not minidl.cuda.is_available(), reason="needs cupy and a GPU")
def test_a_gpu_generator_is_refused_because_orders_are_drawn_on_the_host():
    with pytest.raises(ValueError, match="DataLoader: the generator must be on the CPU .* got one on 'cuda:0'"):
        DataLoader(ids_dataset(4), shuffle=True, generator=minidl.Generator("cuda"))


def test_shuffle_without_a_generator_follows_manual_seed():
    def one_epoch():
        return epoch_ids(DataLoader(ids_dataset(30), batch_size=30, shuffle=True))[0]

    minidl.manual_seed(5)
    order = one_epoch()
    minidl.manual_seed(5)
    np.testing.assert_array_equal(one_epoch(), order)
    assert not np.array_equal(order, np.arange(30))


def test_same_seed_same_order_on_every_device(device):
    def order_on(where):
        loader = DataLoader(ids_dataset(40), batch_size=40, shuffle=True, device=where, generator=3)
        return next(iter(loader))[0].numpy()[:, 0]

    np.testing.assert_array_equal(order_on(device), order_on("cpu"))


def test_labels_come_out_int64_and_inputs_keep_their_dtype(device):
    images = np.zeros((6, 1, 2, 2), dtype=np.uint8)
    for label_dtype in (np.int32, np.uint8, np.int64):
        loader = DataLoader(ArrayDataset(images, np.arange(6, dtype=label_dtype)), batch_size=4, device=device)
        x, y = next(iter(loader))
        assert x.dtype == np.uint8 and y.dtype == np.int64
        assert isinstance(x, minidl.Tensor) and not x.requires_grad
    x, y = next(iter(DataLoader(ArrayDataset(images, np.ones(6, np.float32)), batch_size=4)))
    assert y.dtype == np.float32  # regression targets are not labels


def test_transform_runs_on_the_inputs_of_each_batch_on_the_device(device):
    seen = []

    def double(batch):
        seen.append(backend.device_of(batch))
        return batch * 2

    loader = DataLoader(ids_dataset(5), batch_size=2, device=device, transform=double)
    x, y = next(iter(loader))
    np.testing.assert_array_equal(x.numpy()[:, 0], [0, 2])
    np.testing.assert_array_equal(y.numpy(), [0, 1])
    assert seen == [device]


def test_array_dataset_batches_never_go_through_getitem():
    class NoSampleAccess(ArrayDataset):
        def __getitem__(self, index):
            raise AssertionError("the fast path must index the arrays, not the samples")

    x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
    batches = list(DataLoader(NoSampleAccess(x, y), batch_size=2, shuffle=True, generator=0))
    assert sum(len(b[0]) for b in batches) == 5


class Squares(Dataset):
    """A generic dataset: sample i is (array [i, i*i], label i), built on request."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        return np.array([i, i * i], dtype=np.float32), i


def test_generic_dataset_uses_default_collate(device):
    loader = DataLoader(Squares(), batch_size=3, shuffle=True, device=device, generator=1)
    batches = list(loader)
    assert len(batches) == len(loader) == 3
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    assert sorted(y.tolist()) == list(range(7)) and batches[0][1].dtype == np.int64
    np.testing.assert_array_equal(x[:, 1], y.astype(np.float32) ** 2)
    assert batches[0][0].device == device


def test_generic_dataset_of_bare_arrays_yields_single_tensors():
    class Rows(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return np.full(3, i, dtype=np.float32)

    batch = next(iter(DataLoader(Rows(), batch_size=4, transform=lambda b: b + 1)))
    assert isinstance(batch, minidl.Tensor)
    np.testing.assert_array_equal(batch.numpy()[:, 0], [1, 2, 3, 4])


def test_variable_length_sequences_with_pad_collate(device):
    class Clips(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full((i + 1, 2), i + 1, dtype=np.float32), i

    collate = functools.partial(pad_collate, padding_value=-1.0)
    padded, lengths, labels = next(iter(DataLoader(Clips(), batch_size=5, device=device, collate_fn=collate)))
    assert padded.shape == (5, 5, 2) and padded.device == device
    np.testing.assert_array_equal(lengths.numpy(), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(labels.numpy(), [0, 1, 2, 3, 4])
    assert padded.numpy()[0, 1, 0] == -1.0 and padded.numpy()[4, 4, 1] == 5.0


def test_collate_fn_over_an_array_dataset_is_used():
    def first_field_only(samples):
        return np.stack([s[0] for s in samples])

    batch = next(iter(DataLoader(ids_dataset(4), batch_size=4, collate_fn=first_field_only)))
    assert isinstance(batch, minidl.Tensor) and batch.shape == (4, 2)


def test_empty_dataset_gives_no_batches_unshuffled_and_refuses_to_shuffle():
    loader = DataLoader(ArrayDataset(np.zeros((0, 2))), batch_size=3, shuffle=False)
    assert len(loader) == 0 and list(loader) == [] and list(loader) == []
    generic = DataLoader(ArrayDataset(np.zeros((0, 2))), batch_size=3, collate_fn=list)
    assert list(generic) == []
    with pytest.raises(ValueError, match="DataLoader: the dataset is empty"):
        DataLoader(ArrayDataset(np.zeros((0, 2))), batch_size=3, shuffle=True)


def test_loader_errors():
    dataset = ids_dataset(4)
    with pytest.raises(ValueError, match="DataLoader: batch_size must be a positive int, got 0"):
        DataLoader(dataset, batch_size=0)
    with pytest.raises(TypeError, match="DataLoader: dataset must have __len__ and __getitem__, got int"):
        DataLoader(3)
    with pytest.raises(TypeError, match="DataLoader: generator must be None, a minidl.Generator, an int seed or a numpy"):
        DataLoader(dataset, generator="seed")
    with pytest.raises(ValueError, match="DataLoader: a generator seed must be a non-negative int, got -1"):
        DataLoader(dataset, generator=-1)
    with pytest.raises(TypeError, match="DataLoader: transform must be callable or None"):
        DataLoader(dataset, transform=3)
    with pytest.raises(TypeError, match="DataLoader: collate_fn must be callable or None"):
        DataLoader(dataset, collate_fn="pad")
    assert "batch_size=4" in repr(DataLoader(dataset, batch_size=4))
