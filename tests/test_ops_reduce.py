"""Reductions: sum, mean, amax, amin, max, min, var, std, argmax, argmin over all dims, one dim
or a tuple, with keepdim; forward against numpy, backward by gradcheck, and the errors.
(The dim/axis aliases and max's (values, indices) are pinned in test_api_consistency.py.)"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
seeds = st.integers(0, 2**32 - 1)


@st.composite
def shape_and_axis(draw, shapes=shapes):
    """A shape and an axis argument for it: None, an int (maybe negative) or a tuple."""
    shape = draw(shapes)
    ndim = len(shape)
    axis = draw(
        st.one_of(
            st.none(),
            st.integers(-ndim, ndim - 1),
            st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple),
        )
    )
    return shape, axis


def distinct(shape, seed):
    """Distinct values at least 0.01 apart (max/min have no ties to split)."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) * 0.01 - 0.5 * n * 0.01


def leaf(array, device):
    return minidl.tensor(array, dtype=np.float64, device=device, requires_grad=True)


def count(shape, axis):
    axes = range(len(shape)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    return int(np.prod([shape[a] for a in axes]))


REDUCTIONS = {
    "sum": (minidl.sum, np.sum),
    "mean": (minidl.mean, np.mean),
    "amax": (minidl.amax, np.max),
    "amin": (minidl.amin, np.min),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
@fixture_ok
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reduction_forward_and_backward(device, name, case, keepdims, seed):
    op, reference = REDUCTIONS[name]
    shape, axis = case
    values = distinct(shape, seed)
    y = op(leaf(values, device), dim=axis, keepdim=keepdims)
    expected = reference(values, axis=axis, keepdims=keepdims)
    assert y.shape == np.shape(expected)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)
    assert minidl.gradcheck(lambda x: op(x, axis, keepdims), leaf(values, device))


@pytest.mark.parametrize("correction", [0, 1])
@fixture_ok
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_var_and_std(device, correction, case, keepdims, seed):
    shape, axis = case
    if count(shape, axis) <= correction:
        with pytest.raises(ValueError, match=r"var: expected more than 1 element\(s\) per reduction for correction=1, got 1"):
            minidl.var(leaf(np.zeros(shape), device), axis, correction=correction)
        return
    values = np.random.default_rng(seed).normal(size=shape)
    x = leaf(values, device)
    np.testing.assert_allclose(
        minidl.var(x, axis, keepdim=keepdims, correction=correction).numpy(),
        np.var(values, axis, ddof=correction, keepdims=keepdims),
    )
    np.testing.assert_allclose(
        x.std(axis, bool(correction), keepdims).numpy(), np.std(values, axis, ddof=correction, keepdims=keepdims)
    )
    assert minidl.gradcheck(lambda x: x.var(axis, keepdim=keepdims, correction=correction), leaf(values, device))
    assert minidl.gradgradcheck(lambda x: x.var(axis, keepdim=keepdims, correction=correction), leaf(values, device))


@settings(max_examples=10)
@given(case=shape_and_axis(), seed=seeds)
def test_sum_and_mean_second_derivatives(case, seed):
    shape, axis = case
    values = distinct(shape, seed)
    assert minidl.gradgradcheck(lambda x: minidl.mean(x * x, axis), leaf(values, "cpu"))
    assert minidl.gradgradcheck(lambda x: minidl.amax(x * x, axis), leaf(values + 1.0, "cpu"))


def test_amax_splits_the_gradient_between_ties_and_max_with_a_dim_gives_it_to_the_first():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]], "cpu")
    x.amax(dim=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0.5, 0.5], [0.5, 0, 0.5]])
    x = leaf([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]], "cpu")
    x.max(dim=1).values.sum().backward()  # PyTorch: the gradient follows the returned index
    np.testing.assert_allclose(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])
    y = leaf([4.0, 1.0, 4.0, 4.0], "cpu")
    y.min().backward()
    np.testing.assert_allclose(y.grad.numpy(), [0, 1, 0, 0])


def test_a_0d_tensor_reduces_to_itself():
    x = leaf(2.0, "cpu")
    for op in (minidl.sum, minidl.mean, minidl.max, minidl.min, minidl.amax, minidl.amin):
        assert op(x).shape == () and op(x).item() == 2.0
    values, indices = minidl.max(x, 0)
    assert values.item() == 2.0 and indices.item() == 0


@fixture_ok
@given(case=shape_and_axis(shapes | st.just((3, 1, 2))), keepdims=st.booleans(), seed=seeds)
def test_argmax_argmin_match_numpy(device, case, keepdims, seed):
    shape, axis = case
    if isinstance(axis, tuple):
        axis = axis[0]
    values = distinct(shape, seed)
    x = minidl.tensor(values, device=device)
    for ours, theirs in [(minidl.argmax, np.argmax), (minidl.argmin, np.argmin)]:
        result = ours(x, axis, keepdims)
        expected = theirs(values, axis=axis, keepdims=keepdims)
        assert result.dtype.kind == "i" and not result.requires_grad
        np.testing.assert_array_equal(result.numpy(), expected)


@pytest.mark.parametrize("op", [minidl.sum, minidl.mean, minidl.amax, minidl.var])
def test_bad_dims_name_the_op(op):
    x = minidl.ones(2, 3)
    name = op.__name__
    with pytest.raises(ValueError, match=rf"{name}: expected dim in \[-2, 1\] for a 2-d input, got 2"):
        op(x, 2)
    with pytest.raises(ValueError, match=rf"{name}: expected each dim at most once, got \(1, -1\)"):
        op(x, (1, -1))
    with pytest.raises(ValueError, match=r"max: expected dim in \[-2, 1\] for a 2-d input, got 2"):
        minidl.max(x, 2)
    with pytest.raises(TypeError, match=r"max: expected dim in \[-2, 1\] for a 2-d input, got \(0, 1\)"):
        minidl.max(x, (0, 1))  # PyTorch's max takes one dim; amax takes several


def test_empty_reductions():
    empty = minidl.zeros(0, 3)
    assert minidl.sum(empty, 0).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"amax: expected no empty dim to reduce over, got a tensor of shape \(0, 3\)"):
        minidl.amax(empty, 0)
    with pytest.raises(ValueError, match=r"max: expected no empty dim to reduce over, got a tensor of shape \(0, 3\)"):
        minidl.max(empty, 0)
    with pytest.raises(ValueError, match="mean: expected no empty dim to average over"):
        minidl.mean(empty)
