"""Shape ops: reshape, transpose/permute, indexing, cat, stack, split/chunk, pad,
broadcast_to, sum_to, squeeze/unsqueeze/flatten. Forward against numpy, backward by
gradcheck (and gradgradcheck for indexing), repeated indices, and the error messages."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
seeds = st.integers(0, 2**32 - 1)


def uniform(shape, seed):
    return np.random.default_rng(seed).uniform(-2, 2, shape)


def leaf(array, device):
    return minidl.tensor(array, dtype=np.float64, device=device, requires_grad=True)


def check(op, values, device, reference):
    """Forward against numpy's ``reference``, backward by gradcheck."""
    y = op(leaf(values, device))
    np.testing.assert_array_equal(y.numpy(), reference(values))
    assert minidl.gradcheck(op, leaf(values, device))


# --------------------------------------------------------------------------- #
# reshape, transpose, squeeze, flatten
# --------------------------------------------------------------------------- #
@fixture_ok
@given(shape=shapes, seed=seeds)
def test_reshape(device, shape, seed):
    values = uniform(shape, seed)
    for target in (shape[::-1], (-1,), (values.size, 1), (1, -1)):
        check(lambda x: x.reshape(target), values, device, lambda v: v.reshape(target))


@fixture_ok
@given(data=st.data(), shape=shapes, seed=seeds)
def test_transpose_and_permute(device, data, shape, seed):
    axes = tuple(data.draw(st.permutations(range(len(shape)))))
    values = uniform(shape, seed)
    check(lambda x: minidl.permute(x, axes), values, device, lambda v: v.transpose(axes))
    check(lambda x: x.permute(*axes), values, device, lambda v: v.transpose(axes))
    check(lambda x: x.T, values, device, lambda v: v.T)
    if len(shape) >= 2:
        check(lambda x: x.transpose(0, -1), values, device, lambda v: np.swapaxes(v, 0, -1))
        check(lambda x: minidl.transpose(x, -1, 0), values, device, lambda v: np.swapaxes(v, 0, -1))


@fixture_ok
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=2), seed=seeds)
def test_squeeze_unsqueeze_flatten(device, shape, seed):
    values = uniform(shape, seed)
    check(lambda x: x.squeeze(), values, device, np.squeeze)
    check(lambda x: x.unsqueeze(1), values, device, lambda v: np.expand_dims(v, 1))
    check(lambda x: x.unsqueeze(-1), values, device, lambda v: np.expand_dims(v, -1))
    check(lambda x: x.flatten(), values, device, np.ravel)
    if len(shape) >= 2:
        check(lambda x: x.flatten(1), values, device, lambda v: v.reshape(v.shape[0], -1))


# --------------------------------------------------------------------------- #
# Indexing
# --------------------------------------------------------------------------- #
@st.composite
def indices(draw, shape):
    """An index for ``shape``: a slice per axis, an int, an integer array or a boolean mask."""
    kind = draw(st.sampled_from(["slices", "int", "int array", "mask", "mixed"]))
    if kind == "slices":
        return tuple(
            slice(draw(st.integers(-n, n)), draw(st.integers(-n, n)), draw(st.sampled_from([1, 2, -1])))
            for n in shape
        )
    if kind == "int":
        return draw(st.integers(-shape[0], shape[0] - 1))
    if kind == "int array":  # repeats included: their gradients must add up
        return np.array(draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=6)))
    if kind == "mask":
        return draw(hnp.arrays(np.bool_, shape))
    rows = np.array(draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=4)))
    return (slice(None), rows) if len(shape) > 1 and kind == "mixed" and rows.max() < shape[1] else (rows,)


@fixture_ok
@given(data=st.data(), shape=shapes, seed=seeds)
def test_getitem(device, data, shape, seed):
    index = data.draw(indices(shape))
    values = uniform(shape, seed)
    check(lambda x: x[index], values, device, lambda v: v[index])
    assert minidl.gradgradcheck(lambda x: x[index] * x[index], leaf(values, device))


def test_repeated_indices_accumulate_gradients(device):
    x = leaf(np.arange(4.0), device)
    x[np.array([0, 2, 0, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3, 0, 1, 0])
    y = leaf(np.zeros((2, 3)), device)
    weights = minidl.tensor([1.0, 5.0], dtype=np.float64, device=device)
    (y[minidl.tensor([1, 1]), minidl.tensor([2, 2])] * weights).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [[0, 0, 0], [0, 0, 6]])


def test_boolean_mask_tensor_index(device):
    x = leaf([[1.0, -2.0], [-3.0, 4.0]], device)
    positive = x[x > 0]
    assert positive.tolist() == [1.0, 4.0]
    positive.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 0], [0, 1]])


def test_float_index_arrays_are_refused():
    with pytest.raises(IndexError, match="getitem: index arrays must be integer or boolean, got dtype float64"):
        minidl.ones(3)[np.array([0.0, 1.0])]


# --------------------------------------------------------------------------- #
# cat, stack, split, chunk
# --------------------------------------------------------------------------- #
@fixture_ok
@given(data=st.data(), shape=shapes, sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3), seed=seeds)
def test_cat_and_split_are_inverse(device, data, shape, sizes, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    a = axis % len(shape)
    parts = [uniform(shape[:a] + (n,) + shape[a + 1 :], seed + i) for i, n in enumerate(sizes)]
    joined = np.concatenate(parts, axis=axis)
    y = minidl.cat([leaf(p, device) for p in parts], axis=axis)
    np.testing.assert_array_equal(y.numpy(), joined)
    assert minidl.gradcheck(lambda *xs: minidl.cat(xs, axis), [leaf(p, device) for p in parts])
    pieces = minidl.split(leaf(joined, device), sizes, axis)
    assert len(pieces) == len(sizes)
    for piece, part in zip(pieces, parts):
        np.testing.assert_array_equal(piece.numpy(), part)
    assert minidl.gradcheck(lambda x: minidl.split(x, sizes, axis), leaf(joined, device))


@fixture_ok
@given(data=st.data(), shape=shapes, count=st.integers(1, 3), seed=seeds)
def test_stack(device, data, shape, count, seed):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    parts = [uniform(shape, seed + i) for i in range(count)]
    y = minidl.stack([leaf(p, device) for p in parts], axis)
    np.testing.assert_array_equal(y.numpy(), np.stack(parts, axis))
    assert minidl.gradcheck(lambda *xs: minidl.stack(xs, axis), [leaf(p, device) for p in parts])


@pytest.mark.parametrize("n, size, expected", [(5, 2, [2, 2, 1]), (4, 2, [2, 2]), (3, 5, [3])])
def test_split_by_size_like_pytorch(n, size, expected):
    assert [p.shape[0] for p in minidl.split(minidl.arange(n), size)] == expected


@pytest.mark.parametrize("n, chunks, expected", [(5, 2, [3, 2]), (6, 3, [2, 2, 2]), (2, 4, [1, 1]), (7, 3, [3, 3, 1])])
def test_chunk_like_pytorch(n, chunks, expected):
    pieces = minidl.arange(float(n)).chunk(chunks)
    assert [p.shape[0] for p in pieces] == expected
    x = leaf(np.arange(float(n)), "cpu")
    assert minidl.gradcheck(lambda x: x.chunk(chunks), x)


# --------------------------------------------------------------------------- #
# pad, broadcast_to, sum_to
# --------------------------------------------------------------------------- #
@fixture_ok
@given(data=st.data(), shape=shapes, seed=seeds)
def test_pad(device, data, shape, seed):
    widths = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in shape)
    values = uniform(shape, seed)
    last_first = tuple(w for pair in widths[::-1] for w in pair)  # PyTorch's order: last dim first
    reference = lambda v: np.pad(v, widths, constant_values=1.5)  # noqa: E731
    check(lambda x: minidl.pad(x, last_first, value=1.5), values, device, reference)
    check(lambda x: minidl.ops.shape.pad_per_dim(x, widths, value=1.5), values, device, reference)
    check(lambda x: minidl.ops.shape.pad_per_dim(x, 1), values, device, lambda v: np.pad(v, 1))


@fixture_ok
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=1, min_dims=0, max_dims=3, max_side=3), seed=seeds)
def test_broadcast_to_and_sum_to_are_adjoint(device, shapes, seed):
    (shape,), target = shapes
    values = uniform(shape, seed)
    check(lambda x: x.broadcast_to(target), values, device, lambda v: np.broadcast_to(v, target))
    big = uniform(target, seed + 1)
    expected = np.broadcast_to(np.zeros(shape), target)  # reference: sum over the broadcast axes by loops
    reference = np.zeros(shape)
    for position in np.ndindex(*target):
        source = tuple(0 if n == 1 else i for n, i in zip(shape, position[len(target) - len(shape) :]))
        reference[source] += big[position]
    y = minidl.sum_to(leaf(big, device), shape)
    assert expected.shape == target
    np.testing.assert_allclose(y.numpy(), reference, rtol=1e-12)
    assert minidl.gradcheck(lambda x: minidl.sum_to(x, shape), leaf(big, device))
    assert minidl.gradgradcheck(lambda x: minidl.sum_to(x * x, shape), leaf(big, device))


# --------------------------------------------------------------------------- #
# Shape mistakes get messages that name the op
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: x.reshape(4, 4), r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\) to \(4, 4\)"),
        (lambda x: x.reshape(-1, -1), r"reshape: cannot reshape"),
        (lambda x: x.reshape(4, -1), r"reshape: cannot reshape"),
        (lambda x: minidl.permute(x, (0, 0)), r"permute: expected dims to be a permutation of the 2 dims .* got \(0, 0\)"),
        (lambda x: minidl.permute(x, (0, 2)), r"permute: expected dim in \[-2, 1\] for a 2-d input, got 2"),
        (lambda x: x.transpose(0, 3), r"transpose: expected dim in \[-2, 1\] for a 2-d input, got 3"),
        (lambda x: x.unsqueeze(3), r"unsqueeze: expected dim in \[-3, 2\] for a 2-d input, got 3"),
        (
            lambda x: minidl.cat([x, minidl.ones(3, 3)], 1),
            r"cat: expected tensor 1 to match tensor 0's shape \(2, 3\) outside dim 1, got shape \(3, 3\)",
        ),
        (lambda x: minidl.cat([]), r"cat: expected a non-empty list"),
        (lambda x: minidl.stack([x, minidl.ones(3, 2)]), r"stack: expected tensor 1 to have tensor 0's shape \(2, 3\), got \(3, 2\)"),
        (lambda x: minidl.split(x, 0), r"split: expected split_size to be a positive int, got 0"),
        (lambda x: minidl.chunk(x, 0), r"chunk: expected chunks to be a positive int, got 0"),
        (lambda x: minidl.pad(x, (-1, 0)), r"pad: expected non-negative widths"),
        (lambda x: minidl.pad(x, (1, 1, 1)), r"pad: expected an even number of int widths.*got \(1, 1, 1\)"),
        (lambda x: x.broadcast_to((4, 3)), r"broadcast_to: cannot broadcast shape \(2, 3\) to \(4, 3\)"),
        (lambda x: x.broadcast_to((3,)), r"broadcast_to: cannot broadcast shape \(2, 3\) to \(3,\)"),
        (lambda x: minidl.sum_to(x, (2,)), r"sum_to: shape \(2, 3\) cannot be summed down to \(2,\)"),
        (lambda x: minidl.sum_to(x, (1, 2, 3)), r"sum_to: shape \(2, 3\) cannot be summed down to \(1, 2, 3\)"),
        (lambda x: x[5], r"GetItem: index 5 is out of bounds.*\(inputs of shape \(2, 3\)\)"),
    ],
)
def test_shape_errors(call, message):
    with pytest.raises((ValueError, IndexError), match=message):
        call(minidl.ones(2, 3))


def test_split_sizes_must_add_up():
    with pytest.raises(ValueError, match=r"split: expected sizes that add up to 4 \(the length of dim 1\), got \[1, 2\]"):
        minidl.split(minidl.ones(2, 4), [1, 2], axis=1)
