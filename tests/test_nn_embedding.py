"""Embedding: lookup against plain indexing, gradients that add up over repeated indices,
padding_idx, from_pretrained, gradcheck, bad indices."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn as nn
import minidl.nn.functional as F


@given(data=st.data(), rows=st.integers(1, 6), dim=st.integers(1, 4))
def test_lookup_and_gradient_against_loops(data, rows, dim):
    shape = data.draw(st.lists(st.integers(1, 4), max_size=2).map(tuple))
    indices = np.array(data.draw(st.lists(st.integers(0, rows - 1), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))))
    indices = indices.reshape(shape)
    emb = nn.Embedding(rows, dim)
    y = emb(minidl.tensor(indices))
    assert y.shape == shape + (dim,)
    gy = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    y.backward(minidl.tensor(gy))
    expected_grad = np.zeros((rows, dim))
    table = emb.weight.numpy()
    for position in np.ndindex(*shape):
        np.testing.assert_array_equal(y.numpy()[position], table[indices[position]])
        expected_grad[indices[position]] += gy[position]  # a row used twice gets both gradients
    np.testing.assert_allclose(emb.weight.grad.numpy(), expected_grad, rtol=1e-5, atol=1e-6)


def test_repeated_indices_accumulate():
    emb = nn.Embedding(4, 2)
    emb(minidl.tensor([1, 1, 1, 3])).sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy(), [[0, 0], [3, 3], [0, 0], [1, 1]])


def test_gradcheck_weight():
    weight = minidl.randn(5, 3, dtype=np.float64, requires_grad=True)
    indices = minidl.tensor([[0, 4, 4], [2, 0, 1]])
    assert minidl.gradcheck(lambda w: F.embedding(indices, w), weight)
    # (with padding_idx the padding row's gradient is zero ON PURPOSE, so gradcheck does not apply there)


def test_padding_idx_starts_at_zero_and_gets_no_gradient():
    emb = nn.Embedding(5, 3, padding_idx=-1)
    assert emb.padding_idx == 4 and np.all(emb.weight.numpy()[4] == 0)
    with minidl.no_grad():
        emb.weight.data[4] = 2.0  # a changed padding row is still returned as it is
    y = emb(minidl.tensor([4, 0, 4]))
    np.testing.assert_array_equal(y.numpy()[0], [2, 2, 2])
    y.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy()[4], 0)
    np.testing.assert_array_equal(emb.weight.grad.numpy()[0], 1)
    assert repr(emb) == "Embedding(5, 3, padding_idx=4)"


def test_from_pretrained():
    table = minidl.randn(3, 2)
    frozen = nn.Embedding.from_pretrained(table)
    assert not frozen.weight.requires_grad
    np.testing.assert_array_equal(frozen(minidl.tensor([2])).numpy(), table.numpy()[[2]])
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad


def test_on_device(device):
    emb = nn.Embedding(6, 4).to(device)
    y = emb(minidl.tensor([[1, 2], [2, 5]], device=device))
    assert y.device == device and y.shape == (2, 2, 4)
    y.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy()[2], 2)


def test_bad_indices():
    emb = nn.Embedding(4, 2)
    with pytest.raises(TypeError, match="embedding: expected integer indices, got dtype float32"):
        emb(minidl.tensor([0.0, 1.0]))
    with pytest.raises(IndexError, match=r"must lie in \[0, 3\] for 4 rows"):
        emb(minidl.tensor([0, 4]))
    with pytest.raises(IndexError, match="out of range"):
        emb(minidl.tensor([-1]))
    with pytest.raises(ValueError, match=r"Embedding: expected padding_idx in \[-4, 3\] \(a row of the table\), got 9"):
        nn.Embedding(4, 2, padding_idx=9)
    with pytest.raises(ValueError, match="embedding_dim"):
        nn.Embedding(4, 0)
