"""random_split and Subset: disjoint, complete, reproducible splits by counts or fractions
(PyTorch's rounding); a Subset through the DataLoader gives the batches that indexing the
arrays by hand gives, on the fast path, and keeps shuffle/generator state saving; errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import backend
from minidl.data import ArrayDataset, DataLoader, Dataset, Subset, random_split


def ids_dataset(n):
    """Inputs whose row i holds i, labels i % 3."""
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None], 2, axis=1)
    return ArrayDataset(x, (np.arange(n) % 3).astype(np.int64))


@st.composite
def sizes_and_counts(draw):
    counts = draw(st.lists(st.integers(0, 12), min_size=1, max_size=5))
    return sum(counts), counts


@given(sizes_and_counts(), st.integers(0, 2**32))
def test_split_by_counts_is_disjoint_complete_and_reproducible(n_counts, seed):
    n, counts = n_counts
    parts = random_split(ids_dataset(n), counts, generator=seed)
    assert [len(p) for p in parts] == counts
    rows = np.concatenate([p.indices for p in parts])
    assert sorted(rows.tolist()) == list(range(n))  # every sample once: disjoint and complete
    again = random_split(ids_dataset(n), counts, generator=seed)
    assert all(np.array_equal(a.indices, b.indices) for a, b in zip(parts, again))
    for part in parts:  # a subset's samples are the dataset's rows at its indices
        for i, row in enumerate(part.indices):
            x, y = part[i]
            assert x[0] == row and y == row % 3


def test_the_split_is_one_permutation_cut_in_order():
    parts = random_split(ids_dataset(10), [3, 0, 7], generator=minidl.Generator().manual_seed(5))
    expected = minidl.Generator().manual_seed(5).permutation(10)
    np.testing.assert_array_equal(np.concatenate([p.indices for p in parts]), expected)
    assert len(parts[1]) == 0


def test_seeds_differ_and_the_default_generator_follows_manual_seed():
    first, second = (random_split(ids_dataset(50), [25, 25], generator=s)[0].indices for s in (1, 2))
    assert not np.array_equal(first, second)
    minidl.manual_seed(3)
    a = random_split(ids_dataset(50), [25, 25])[0].indices
    b = random_split(ids_dataset(50), [25, 25])[0].indices
    minidl.manual_seed(3)
    np.testing.assert_array_equal(random_split(ids_dataset(50), [25, 25])[0].indices, a)
    assert not np.array_equal(a, b)  # the default generator moves on


def test_a_generator_is_advanced_so_two_splits_differ():
    generator = minidl.Generator().manual_seed(0)
    a = random_split(ids_dataset(20), [10, 10], generator=generator)[0].indices
    b = random_split(ids_dataset(20), [10, 10], generator=generator)[0].indices
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("n, fractions, expected", [
    (30, [0.3, 0.3, 0.4], [9, 9, 12]),          # PyTorch's docs example
    (10, [0.33, 0.33, 0.34], [4, 3, 3]),         # floors 3, 3, 3; the 1 left over goes to the first
    (11, [0.5, 0.5], [6, 5]),                    # floors 5, 5; one left over
    (7, [0.25, 0.25, 0.25, 0.25], [2, 2, 2, 1]),  # floors 1 each; 3 left over: round robin
    (5, [1.0, 0.0], [5, 0]),
    (100, [0.1] * 10, [10] * 10),                # the fractions add up to 0.9999999999999999
])
def test_fractions_round_as_pytorch(n, fractions, expected):
    parts = random_split(ids_dataset(n), fractions, generator=0)
    assert [len(p) for p in parts] == expected
    assert sorted(np.concatenate([p.indices for p in parts]).tolist()) == list(range(n))


@given(n=st.integers(0, 60), weights=st.lists(st.integers(0, 9), min_size=1, max_size=4).filter(any))
def test_fractions_are_always_complete(n, weights):
    fractions = [w / sum(weights) for w in weights]
    parts = random_split(ids_dataset(n), fractions, generator=0)
    sizes = [len(p) for p in parts]
    assert sum(sizes) == n
    assert all(abs(size - n * f) < len(fractions) for size, f in zip(sizes, fractions))


def by_hand(dataset, subset, order, batch_size):
    """Each batch from the parent's arrays, indexed by hand."""
    rows = subset.indices[order]
    return [tuple(a[rows[i:i + batch_size]] for a in dataset.arrays) for i in range(0, len(rows), batch_size)]


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_subset_through_the_loader_gives_the_batches_indexed_by_hand(device, shuffle):
    dataset = ids_dataset(37)
    train, _ = random_split(dataset, [0.8, 0.2], generator=4)
    loader = DataLoader(train, batch_size=8, shuffle=shuffle, device=device, generator=11)
    assert loader._arrays is not None  # the fast path: whole-array batches, no per-sample reads
    orders = minidl.Generator().manual_seed(11)
    for _ in range(2):  # two epochs: the second continues the shuffle stream
        order = orders.permutation(len(train)) if shuffle else np.arange(len(train))
        batches = list(loader)
        expected = by_hand(dataset, train, order, 8)
        assert len(batches) == len(expected) == len(loader)
        for (x, y), (ex, ey) in zip(batches, expected):
            assert x.device == device and y.device == device and y.dtype == np.int64
            np.testing.assert_array_equal(x.numpy(), ex)
            np.testing.assert_array_equal(y.numpy(), ey)


def test_a_subset_of_a_dataset_already_on_the_device(device):
    dataset = ids_dataset(12).to(device)
    loader = DataLoader(Subset(dataset, [11, 0, 5]), batch_size=2, device=device)
    batches = [(x.numpy()[:, 0].tolist(), y.numpy().tolist()) for x, y in loader]
    assert batches == [([11.0, 0.0], [2, 0]), ([5.0], [2])]


def test_a_subset_on_the_fast_path_reads_no_sample_and_copies_once_per_epoch(device, monkeypatch):
    dataset = ids_dataset(40)
    subset = Subset(dataset, np.arange(0, 40, 3))
    loader = DataLoader(subset, batch_size=4, shuffle=True, device=device, generator=0)
    copies = []
    real_to_device = backend.to_device
    monkeypatch.setattr(backend, "to_device", lambda a, d: copies.append(np.shape(a)) or real_to_device(a, d))
    monkeypatch.setattr(Subset, "__getitem__", lambda self, i: pytest.fail("a sample was read one by one"))
    seen = np.concatenate([x.numpy()[:, 0] for x, _ in loader]).astype(np.int64)
    assert sorted(seen.tolist()) == list(range(0, 40, 3))
    assert copies == [(len(subset),)]  # only the epoch's order moves, once


def test_a_subset_of_a_subset_keeps_the_fast_path():
    dataset = ids_dataset(20)
    inner = Subset(dataset, [19, 3, 5, 7, 11])
    outer = Subset(inner, [4, 0, 2])
    loader = DataLoader(outer, batch_size=3)
    assert loader._arrays is not None
    (x, y), = list(loader)
    assert x.numpy()[:, 0].tolist() == [11, 19, 5] and y.numpy().tolist() == [2, 1, 2]
    assert outer[1][0][0] == 19 and outer[-1][0][0] == 5


def test_a_subset_of_a_generic_dataset_reads_sample_by_sample():
    class Squares(Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return np.array([i * i], dtype=np.float32), i

    loader = DataLoader(Subset(Squares(), [9, 2, 4]), batch_size=2)
    assert loader._arrays is None
    batches = [(x.numpy()[:, 0].tolist(), y.numpy().tolist()) for x, y in loader]
    assert batches == [([81.0, 4.0], [9, 2]), ([16.0], [4])]


def test_resuming_the_shuffle_of_a_subset_gives_the_same_epochs():
    train, _ = random_split(ids_dataset(30), [20, 10], generator=1)

    def epoch(loader):
        return np.concatenate([x.numpy()[:, 0] for x, _ in loader]).tolist()

    loader = DataLoader(train, batch_size=6, shuffle=True, generator=7)
    epoch(loader)
    state = loader.generator.get_state()
    expected = [epoch(loader), epoch(loader)]
    fresh = DataLoader(train, batch_size=6, shuffle=True, generator=0)
    fresh.generator.set_state(state)
    assert [epoch(fresh), epoch(fresh)] == expected
    assert expected[0] != expected[1]


@pytest.mark.parametrize("lengths, error, message", [
    ([5, 4], ValueError, r"random_split: expected non-negative counts that add up to the dataset's 10 samples, "
                         r"got \[5, 4\]"),
    ([12, -2], ValueError, "random_split: expected non-negative counts .*, got \\[12, -2\\]"),
    ([0.5, 0.6], ValueError, r"random_split: expected fractions in \[0, 1\] that add up to 1 \(or int counts\), "
                             r"got \[0.5, 0.6\]"),
    ([1.5, -0.5], ValueError, "random_split: expected fractions in"),
    ([], TypeError, r"random_split: expected lengths to be a non-empty list of counts or fractions, got \[\]"),
    (10, TypeError, "random_split: expected lengths to be a non-empty list .*, got 10"),
    (["5", "5"], TypeError, "random_split: expected lengths .*, got \\['5', '5'\\]"),
    ([True, 9], TypeError, "random_split: expected lengths"),
    ([np.int64(4), np.int64(6)], None, None),
])
def test_bad_lengths_are_named(lengths, error, message):
    if error is None:
        assert [len(p) for p in random_split(ids_dataset(10), lengths)] == [4, 6]
        return
    with pytest.raises(error, match=message):
        random_split(ids_dataset(10), lengths)


def test_bad_generators_are_named():
    with pytest.raises(ValueError, match="random_split: expected a non-negative int as the generator seed, got -1"):
        random_split(ids_dataset(4), [2, 2], generator=-1)
    with pytest.raises(TypeError, match="random_split: expected None, a minidl.Generator, .*, got 'str'"):
        random_split(ids_dataset(4), [2, 2], generator="0")


@pytest.mark.gpu
def test_a_gpu_generator_is_refused_because_the_permutation_is_drawn_on_the_host(device):
    if device == "cpu":
        pytest.skip("needs a cuda generator")
    with pytest.raises(ValueError, match="random_split: expected a CPU generator"):
        random_split(ids_dataset(4), [2, 2], generator=minidl.Generator("cuda"))


@pytest.mark.parametrize("indices, error, message", [
    ([0, 10], IndexError, r"Subset: expected indices in \[0, 10\) \(the dataset's samples\), got 10"),
    ([-1, 2], IndexError, r"Subset: expected indices in \[0, 10\) .*, got -1"),
    ([0.0, 1.0], TypeError, "Subset: expected indices to be a 1-d sequence of ints, got an array of dtype float64"),
    ([True, False], TypeError, "Subset: expected indices to be a 1-d sequence of ints, got an array of dtype bool"),
    ([[0, 1]], TypeError, r"Subset: expected indices .*, got an array of dtype int64 and shape \(1, 2\)"),
])
def test_bad_subset_indices_are_named(indices, error, message):
    with pytest.raises(error, match=message):
        Subset(ids_dataset(10), indices)


def test_subset_basics():
    subset = Subset(ids_dataset(10), minidl.tensor(np.array([4, 2])))  # a Tensor of indices is fine too
    assert len(subset) == 2 and subset.indices.dtype == np.int64 and "Subset(2 of ArrayDataset" in repr(subset)
    assert subset[0][0][0] == 4 and subset[-1][0][0] == 2
    assert len(Subset(ids_dataset(3), [])) == 0
    with pytest.raises(IndexError, match="Subset: index 2 is out of range for 2 samples"):
        subset[2]
    with pytest.raises(TypeError, match="Subset: expected a dataset"):
        Subset(5, [0])
