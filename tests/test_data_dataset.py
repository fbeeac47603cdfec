"""Datasets and collating: ArrayDataset rows and checks, default_collate, pad_sequences and
pad_collate against a plain numpy loop."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import backend
from minidl.data import ArrayDataset, Dataset, default_collate, pad_collate, pad_sequences
from minidl.data.collate import default_collate as default_collate_from_module


# --------------------------------------------------------------------------- #
# ArrayDataset
# --------------------------------------------------------------------------- #
@given(n=st.integers(1, 6), feature_shape=st.lists(st.integers(1, 3), max_size=3))
def test_array_dataset_samples_are_rows(n, feature_shape):
    x = np.arange(n * int(np.prod(feature_shape)), dtype=np.float32).reshape([n, *feature_shape])
    y = np.arange(n) * 10
    dataset = ArrayDataset(x, y)
    assert len(dataset) == n
    for i in range(n):
        xi, yi = dataset[i]
        np.testing.assert_array_equal(xi, x[i])
        assert yi == y[i]
    rows = dataset[np.array([n - 1, 0])]  # an index array gives a batch of rows
    np.testing.assert_array_equal(rows[0], x[[n - 1, 0]])


def test_array_dataset_accepts_tensors_and_lists_and_keeps_dtypes():
    dataset = ArrayDataset(minidl.tensor([[1.0, 2.0], [3.0, 4.0]]), [7, 8], np.array([1, 2], dtype=np.uint8))
    x, y, z = dataset[1]
    np.testing.assert_array_equal(x, [3.0, 4.0])
    assert y == 8 and dataset.arrays[2].dtype == np.uint8
    assert "2 samples" in repr(dataset)


def test_array_dataset_to_device(device):
    dataset = ArrayDataset(np.ones((3, 2)), np.arange(3)).to(device)
    assert all(backend.device_of(a) == device for a in dataset.arrays)
    np.testing.assert_array_equal(backend.to_numpy(dataset[2][1]), 2)


def test_array_dataset_checks_its_arrays():
    with pytest.raises(ValueError, match=r"ArrayDataset: all arrays must have the same first dim.*\(3, 2\).*\(4,\)"):
        ArrayDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="ArrayDataset: expected at least one array"):
        ArrayDataset()
    with pytest.raises(ValueError, match="ArrayDataset: array 1 is a scalar"):
        ArrayDataset(np.zeros(3), np.float32(1.0))
    with pytest.raises(TypeError, match="ArrayDataset: array 0"):
        ArrayDataset([[1, 2], [3]])
    with pytest.raises(IndexError, match="ArrayDataset: index 5 is out of range for 2 samples"):
        ArrayDataset(np.zeros(2))[5]


def test_dataset_base_class_says_what_to_define():
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Dataset()[0]
    with pytest.raises(NotImplementedError, match="__len__"):
        len(Dataset())


# --------------------------------------------------------------------------- #
# default_collate
# --------------------------------------------------------------------------- #
def test_default_collate_stacks_fields_and_numbers():
    samples = [(np.full((2, 2), i, dtype=np.float32), i, float(i), True) for i in range(3)]
    x, y, z, b = default_collate(samples)
    np.testing.assert_array_equal(x, np.stack([s[0] for s in samples]))
    assert y.dtype == np.int64 and list(y) == [0, 1, 2]
    assert z.dtype == np.float32 and b.dtype == np.bool_
    assert default_collate_from_module is default_collate


def test_default_collate_stacks_tensors(device):
    samples = [minidl.ones(2, device=device) * i for i in range(3)]
    stacked = default_collate(samples)
    assert backend.device_of(stacked) == device
    np.testing.assert_array_equal(backend.to_numpy(stacked), [[0, 0], [1, 1], [2, 2]])


def test_default_collate_errors():
    with pytest.raises(ValueError, match="default_collate: cannot stack samples of different shapes.*pad_collate"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(ValueError, match="default_collate: expected a non-empty list"):
        default_collate([])
    with pytest.raises(ValueError, match="default_collate: every sample must be a tuple of 2 fields"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="default_collate: cannot batch samples of type str"):
        default_collate(["a", "b"])


# --------------------------------------------------------------------------- #
# pad_sequences and pad_collate
# --------------------------------------------------------------------------- #
def reference_pad(sequences, batch_first, value):
    longest = max(len(s) for s in sequences)
    out = np.full((len(sequences), longest) + sequences[0].shape[1:], value, dtype=sequences[0].dtype)
    for i, s in enumerate(sequences):
        for t in range(len(s)):
            out[i, t] = s[t]
    return out if batch_first else out.swapaxes(0, 1)


@given(
    lengths=st.lists(st.integers(0, 6), min_size=1, max_size=5),
    trailing=st.lists(st.integers(1, 3), max_size=2),
    batch_first=st.booleans(),
    value=st.sampled_from([0.0, -1.0, 7.5]),
)
def test_pad_sequences_matches_a_loop(lengths, trailing, batch_first, value):
    rng = np.random.default_rng(len(lengths))
    sequences = [rng.standard_normal((t, *trailing)).astype(np.float32) for t in lengths]
    padded, out_lengths = pad_sequences(sequences, batch_first=batch_first, padding_value=value)
    np.testing.assert_array_equal(padded, reference_pad(sequences, batch_first, value))
    assert out_lengths.dtype == np.int64 and list(out_lengths) == lengths


def test_pad_sequences_on_device(device):
    sequences = [backend.to_device(np.arange(t * 2, dtype=np.float32).reshape(t, 2), device) for t in (3, 1, 2)]
    padded, lengths = pad_sequences(sequences + [minidl.ones(2, 2, device=device)])
    assert backend.device_of(padded) == device and backend.device_of(lengths) == device
    expected = reference_pad([backend.to_numpy(s) for s in sequences] + [np.ones((2, 2), np.float32)], True, 0.0)
    np.testing.assert_array_equal(backend.to_numpy(padded), expected)
    np.testing.assert_array_equal(backend.to_numpy(lengths), [3, 1, 2, 2])


def test_pad_collate_pads_the_first_field_and_batches_the_rest():
    samples = [(np.ones((t, 3), np.float32) * t, t % 2, float(t)) for t in (2, 5, 1)]
    padded, lengths, labels, extra = pad_collate(samples, padding_value=-1.0)
    assert padded.shape == (3, 5, 3) and list(lengths) == [2, 5, 1]
    assert padded[0, 2, 0] == -1.0 and padded[1, 4, 0] == 5.0
    assert labels.dtype == np.int64 and list(labels) == [0, 1, 1] and extra.dtype == np.float32
    bare_padded, bare_lengths = pad_collate([np.zeros(3), np.zeros(1)], batch_first=False)
    assert bare_padded.shape == (3, 2) and list(bare_lengths) == [3, 1]


def test_pad_sequences_errors():
    with pytest.raises(ValueError, match="pad_sequences: expected a non-empty list"):
        pad_sequences([])
    with pytest.raises(ValueError, match=r"pad_sequences: every sequence must have the same shape after its time axis"):
        pad_sequences([np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match=r"pad_sequences: sequence 1 must be an array with a time axis.*shape \(\)"):
        pad_sequences([np.zeros(2), np.array(1.0)])
    with pytest.raises(ValueError, match="pad_sequences: sequence 0 .* got list"):
        pad_sequences([[1.0, 2.0]])
    with pytest.raises(ValueError, match="pad_collate: expected a non-empty list"):
        pad_collate([])
