"""Elementwise arithmetic: forward against numpy, backward by gradcheck (float64) over
hypothesis-drawn shapes that broadcast, second derivatives by gradgradcheck, and errors."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
two_shapes = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3)
seeds = st.integers(0, 2**32 - 1)


def uniform(shape, seed, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, shape)


def away_from_zero(shape, seed, low=0.5, high=2.0):
    """Values with |x| in [low, high] and a random sign (no kinks, no division by ~0)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def leaf(array, device):
    return minidl.tensor(array, dtype=np.float64, device=device, requires_grad=True)


# --------------------------------------------------------------------------- #
# Binary ops: broadcasting forward and backward
# --------------------------------------------------------------------------- #
BINARY = {
    "add": (lambda a, b: a + b, np.add, uniform),
    "sub": (lambda a, b: a - b, np.subtract, uniform),
    "mul": (lambda a, b: a * b, np.multiply, uniform),
    "div": (lambda a, b: a / b, np.divide, away_from_zero),
    "pow": (lambda a, b: a**b, np.power, lambda shape, seed: uniform(shape, seed, 0.5, 2.0)),
}


@pytest.mark.parametrize("name", list(BINARY))
@fixture_ok
@given(shapes=two_shapes, seed=seeds)
def test_binary_op_forward_and_backward(device, name, shapes, seed):
    op, reference, values = BINARY[name]
    (shape_a, shape_b), result_shape = shapes
    a_values, b_values = values(shape_a, seed), values(shape_b, seed + 1)
    a, b = leaf(a_values, device), leaf(b_values, device)
    y = op(a, b)
    assert y.shape == result_shape
    np.testing.assert_allclose(y.numpy(), reference(a_values, b_values), rtol=1e-12)
    y.sum().backward()
    assert a.grad.shape == shape_a and b.grad.shape == shape_b  # summed back over broadcast axes
    assert minidl.gradcheck(op, [leaf(a_values, device), leaf(b_values, device)])


@pytest.mark.parametrize("name", list(BINARY))
@settings(max_examples=8)
@given(shapes=two_shapes, seed=seeds)
def test_binary_op_second_derivatives(name, shapes, seed):
    op, _, values = BINARY[name]
    (shape_a, shape_b), _ = shapes
    assert minidl.gradgradcheck(op, [leaf(values(shape_a, seed), "cpu"), leaf(values(shape_b, seed + 1), "cpu")])


def test_broadcast_gradients_are_summed_by_hand():
    a = leaf([[1.0], [2.0], [3.0]], "cpu")  # (3, 1)
    b = leaf([[10.0, 20.0, 30.0, 40.0]], "cpu")  # (1, 4)
    (a * b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [[100.0], [100.0], [100.0]])  # sum of b over the 4 columns
    np.testing.assert_allclose(b.grad.numpy(), [[6.0, 6.0, 6.0, 6.0]])  # sum of a over the 3 rows


def test_only_inputs_that_need_it_get_a_gradient():
    a, b = leaf([1.0, 2.0], "cpu"), minidl.tensor([3.0, 4.0], dtype=np.float64)
    for op in BINARY.values():
        a.grad = None
        op[0](a, b).sum().backward()
        assert a.grad is not None and b.grad is None


# --------------------------------------------------------------------------- #
# Python numbers and numpy arrays as operands, reflected forms
# --------------------------------------------------------------------------- #
REFLECTED = {
    "scalar + x": (lambda x: 2.5 + x, lambda v: 2.5 + v),
    "x - scalar": (lambda x: x - 2, lambda v: v - 2),
    "scalar - x": (lambda x: 2 - x, lambda v: 2 - v),
    "scalar * x": (lambda x: 3 * x, lambda v: 3 * v),
    "scalar / x": (lambda x: 3.0 / x, lambda v: 3.0 / v),
    "x / scalar": (lambda x: x / 4, lambda v: v / 4),
    "scalar ** x": (lambda x: 2.0**x, lambda v: 2.0**v),
    "array + x": (lambda x: np.array([1.0, -2.0]) + x, lambda v: np.array([1.0, -2.0]) + v),
    "array * x": (lambda x: np.array([1.0, -2.0]) * x, lambda v: np.array([1.0, -2.0]) * v),
    "array - x": (lambda x: np.array([1.0, -2.0]) - x, lambda v: np.array([1.0, -2.0]) - v),
    "array / x": (lambda x: np.array([1.0, -2.0]) / x, lambda v: np.array([1.0, -2.0]) / v),
    "x ** array": (lambda x: x ** np.array([2.0, 3.0]), lambda v: v ** np.array([2.0, 3.0])),
}


@pytest.mark.parametrize("name", list(REFLECTED))
def test_numbers_and_arrays_as_operands(device, name):
    op, reference = REFLECTED[name]
    values = away_from_zero((3, 2), 7)
    x = leaf(values, device)
    y = op(x)
    assert isinstance(y, minidl.Tensor)
    np.testing.assert_allclose(y.numpy(), reference(values), rtol=1e-12)
    assert minidl.gradcheck(op, leaf(values, device))


# --------------------------------------------------------------------------- #
# Unary ops
# --------------------------------------------------------------------------- #
UNARY = {
    "neg": (lambda x: -x, np.negative, uniform),
    "exp": (minidl.exp, np.exp, uniform),
    "log": (minidl.log, np.log, lambda shape, seed: uniform(shape, seed, 0.2, 3.0)),
    "sqrt": (minidl.sqrt, np.sqrt, lambda shape, seed: uniform(shape, seed, 0.2, 3.0)),
    "abs": (minidl.abs, np.abs, away_from_zero),
    "square": (lambda x: x**2, np.square, uniform),
    "cube": (lambda x: x**3, lambda v: v**3, uniform),
    "x ** 0.5": (lambda x: x**0.5, np.sqrt, lambda shape, seed: uniform(shape, seed, 0.2, 3.0)),
    "x ** -1": (lambda x: x**-1, np.reciprocal, away_from_zero),
    "x ** 0": (lambda x: x**0, np.ones_like, uniform),
    "method exp": (lambda x: x.exp(), np.exp, uniform),
    "method abs": (lambda x: abs(x), np.abs, away_from_zero),
}


@pytest.mark.parametrize("name", list(UNARY))
@fixture_ok
@given(shape=shapes, seed=seeds)
def test_unary_op_forward_and_backward(device, name, shape, seed):
    op, reference, values = UNARY[name]
    v = values(shape, seed)
    y = op(leaf(v, device))
    assert y.shape == shape and y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), reference(v), rtol=1e-12)
    assert minidl.gradcheck(op, leaf(v, device))
    assert minidl.gradgradcheck(op, leaf(v, device))


def test_pow_at_zero_has_finite_gradients():
    x = leaf([0.0, 1.0], "cpu")
    with np.errstate(all="raise"):
        (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])


def test_abs_has_zero_gradient_at_zero():
    x = leaf([0.0, -1.0], "cpu")
    abs(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, -1.0])


# --------------------------------------------------------------------------- #
# where and clip
# --------------------------------------------------------------------------- #
@fixture_ok
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3), seed=seeds)
def test_where(device, shapes, seed):
    (shape_c, shape_a, shape_b), result_shape = shapes
    condition = np.random.default_rng(seed).random(shape_c) < 0.5
    a_values, b_values = uniform(shape_a, seed), uniform(shape_b, seed + 1)
    cond = minidl.tensor(condition, device=device)
    y = minidl.where(cond, leaf(a_values, device), leaf(b_values, device))
    assert y.shape == result_shape
    np.testing.assert_array_equal(y.numpy(), np.where(condition, a_values, b_values))
    op = lambda a, b: minidl.where(cond, a, b)  # noqa: E731
    assert minidl.gradcheck(op, [leaf(a_values, device), leaf(b_values, device)])
    assert minidl.gradgradcheck(op, [leaf(a_values, device), leaf(b_values, device)])


def test_where_with_a_number_and_its_errors():
    x = leaf([-1.0, 2.0], "cpu")
    y = minidl.where(x.data > 0, x, 0.0)
    y.sum().backward()
    assert y.tolist() == [0.0, 2.0] and x.grad.tolist() == [0.0, 1.0]
    with pytest.raises(TypeError, match="where: expected a boolean tensor or array as condition"):
        minidl.where(minidl.tensor([1, 0]), x, x)


@pytest.mark.parametrize("low, high", [(-0.5, 0.5), (None, 0.3), (-0.3, None)])
@fixture_ok
@given(shape=shapes, seed=seeds)
def test_clip(device, low, high, shape, seed):
    v = uniform(shape, seed, -1.0, 1.0)
    bounds = [b for b in (low, high) if b is not None]
    v = np.where(np.min([np.abs(v - b) for b in bounds], axis=0) < 1e-3, v + 3e-3, v)  # stay off the kinks
    y = minidl.clip(leaf(v, device), low, high)
    np.testing.assert_array_equal(y.numpy(), np.clip(v, low, high))
    assert minidl.gradcheck(lambda x: x.clip(low, high), leaf(v, device))


def test_clip_gradient_on_the_bounds_is_one_like_pytorch(device):
    # torch.clamp's backward passes the gradient where low <= x <= high, bounds included
    x = leaf([-1.0, -0.5, 0.0, 0.5, 1.0], device)
    minidl.clip(x, -0.5, 0.5).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_clip_needs_a_bound():
    with pytest.raises(ValueError, match="clamp: expected at least one of min= and max=, got neither"):
        minidl.clip(minidl.ones(2))


# --------------------------------------------------------------------------- #
# Shape and dtype mistakes
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "op, name", [(lambda a, b: a + b, "Add"), (lambda a, b: a * b, "Mul"), (lambda a, b: a / b, "Div")]
)
def test_shapes_that_do_not_broadcast_name_the_op(op, name):
    with pytest.raises(ValueError, match=rf"{name}: .*broadcast.*\(2, 3\) and \(4,\)"):
        op(minidl.ones(2, 3), minidl.ones(4))


def test_mixed_float_dtypes_promote_and_gradients_keep_each_dtype():
    a = minidl.tensor([1.0, 2.0], requires_grad=True)  # float32
    b = minidl.tensor([3.0, 4.0], dtype=np.float64, requires_grad=True)
    y = a * b
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
