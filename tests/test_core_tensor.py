"""Tensor: construction, dtypes (PyTorch's defaults), properties, conversions, creation
functions, operators with Python scalars and numpy arrays, and the errors users meet."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.extra import numpy as hnp

import minidl

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


# --------------------------------------------------------------------------- #
# minidl.tensor and dtypes
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "data, dtype",
    [
        (1.5, np.float32),
        ([1.0, 2.0], np.float32),
        ([[1, 2], [3, 4]], np.int64),
        (3, np.int64),
        ([True, False], np.bool_),
        (np.zeros(2, dtype=np.float64), np.float64),
        (np.zeros(2, dtype=np.float16), np.float16),
        (np.float64(2.0), np.float64),
    ],
)
def test_tensor_dtype_defaults_follow_pytorch(data, dtype):
    assert minidl.tensor(data).dtype == dtype


def test_tensor_dtype_and_device_arguments(device):
    x = minidl.tensor([1, 2, 3], dtype=np.float64, device=device)
    assert x.dtype == np.float64 and x.device == device
    assert minidl.tensor([1.0], dtype="float64").dtype == np.float64
    assert minidl.tensor([1.0], dtype=minidl.float64).dtype == np.float64


def test_tensor_copies_but_as_tensor_shares():
    source = np.zeros(3, dtype=np.float32)
    copied, shared = minidl.tensor(source), minidl.as_tensor(source)
    source[0] = 7.0
    assert copied.numpy()[0] == 0.0
    assert shared.numpy()[0] == 7.0
    assert minidl.as_tensor(shared) is shared


def test_tensor_from_a_tensor_copies_values():
    x = minidl.tensor([1.0, 2.0])
    y = minidl.tensor(x)
    y.data[0] = 5.0
    assert x.numpy()[0] == 1.0


def test_tensor_rejects_non_numeric_data():
    with pytest.raises(TypeError, match="tensor: cannot make a tensor from dict"):
        minidl.tensor({"a": 1})
    with pytest.raises((TypeError, ValueError)):
        minidl.tensor([[1, 2], [3]])  # ragged


@pytest.mark.parametrize("data", [[1, 2], [True]])
def test_only_floating_tensors_can_require_grad(data):
    with pytest.raises(TypeError, match="only floating-point tensors can require grad, got (dtype )?(int64|bool)"):
        minidl.tensor(data, requires_grad=True)
    with pytest.raises(TypeError, match="requires_grad_: only floating-point"):
        minidl.tensor(data).requires_grad_()


# --------------------------------------------------------------------------- #
# Properties and conversions
# --------------------------------------------------------------------------- #
@fixture_ok
@given(shape=shapes)
def test_properties_match_numpy(device, shape):
    values = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    x = minidl.tensor(values, device=device)
    assert x.shape == shape and x.ndim == len(shape) and x.dim() == len(shape)
    assert x.dtype == np.float32 and x.numel() == values.size
    assert x.size() == shape and x.device == device
    assert isinstance(x.numpy(), np.ndarray)
    np.testing.assert_array_equal(x.numpy(), values)
    np.testing.assert_array_equal(np.asarray(x), values)
    assert x.tolist() == values.tolist()
    if shape:
        assert len(x) == shape[0] and x.size(0) == shape[0]


def test_item_gives_a_python_number(device):
    assert minidl.tensor(2.5, device=device).item() == 2.5
    assert isinstance(minidl.tensor([[3]], device=device).item(), int)
    assert float(minidl.tensor([1.5])) == 1.5 and int(minidl.tensor(4)) == 4
    with pytest.raises(ValueError, match=r"item: only one-element tensors can be converted, got shape \(2,\)"):
        minidl.tensor([1.0, 2.0]).item()


def test_len_and_bool_errors():
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(minidl.tensor(1.0))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(minidl.tensor([1.0, 2.0]))
    assert bool(minidl.tensor([1.0])) is True


def test_repr_shows_values_dtype_and_grad():
    assert repr(minidl.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "dtype=float64" in repr(minidl.tensor([1.0], dtype=np.float64))
    x = minidl.tensor([1.0], requires_grad=True)
    assert "requires_grad=True" in repr(x)
    assert "grad_fn=<Mul>" in repr(x * 2)


def test_casts_are_differentiable():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64 and x.to(dtype=np.float32) is x
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    assert x.long().dtype == np.int64 and not x.long().requires_grad  # integers carry no gradient
    assert x.double().float().dtype == np.float32
    assert x.astype("float16").dtype == np.float16


# --------------------------------------------------------------------------- #
# Creation functions
# --------------------------------------------------------------------------- #
@fixture_ok
@given(shape=shapes)
def test_filled_tensors(device, shape):
    for make, value in [(minidl.zeros, 0.0), (minidl.ones, 1.0)]:
        for x in (make(*shape, device=device), make(shape, device=device)):
            assert x.shape == shape and x.dtype == np.float32 and x.device == device
            assert (x.numpy() == value).all()
    full = minidl.full(shape, 1.5, device=device)
    assert full.shape == shape and full.dtype == np.float32 and (full.numpy() == 1.5).all()
    assert minidl.full(*shape, fill_value=2, device=device).dtype == np.int64
    like = minidl.randn(shape, dtype=np.float64, device=device)
    for made, value in [
        (minidl.zeros_like(like), 0.0),
        (minidl.ones_like(like), 1.0),
        (minidl.full_like(like, -3.0), -3.0),
    ]:
        assert made.shape == shape and made.dtype == np.float64 and made.device == device
        assert (made.numpy() == value).all()
    for made in (minidl.randn_like(like), minidl.rand_like(like)):
        assert made.shape == shape and made.dtype == np.float64


def test_creation_arguments(device):
    x = minidl.zeros(2, 3, dtype=np.float64, device=device, requires_grad=True)
    assert x.requires_grad and x.is_leaf and x.dtype == np.float64
    np.testing.assert_array_equal(minidl.arange(4, device=device).numpy(), [0, 1, 2, 3])
    assert minidl.arange(4).dtype == np.int64 and minidl.arange(0.0, 1.0, 0.25).dtype == np.float32
    np.testing.assert_allclose(minidl.arange(1, 2, 0.5).numpy(), [1.0, 1.5])
    np.testing.assert_array_equal(minidl.eye(2, device=device).numpy(), np.eye(2))
    np.testing.assert_allclose(minidl.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5))
    ints = minidl.randint(0, 3, (100,), device=device).numpy()
    assert ints.dtype == np.int64 and set(ints.tolist()) <= {0, 1, 2}


def test_random_tensors_have_the_right_distribution():
    normal = minidl.randn(20000).numpy()
    uniform = minidl.rand(20000).numpy()
    assert normal.dtype == np.float32
    assert abs(normal.mean()) < 0.05 and abs(normal.std() - 1) < 0.05
    assert uniform.min() >= 0 and uniform.max() < 1 and abs(uniform.mean() - 0.5) < 0.02


@pytest.mark.parametrize("shape", [(-1, 2), (2.5,), ("3",)])
def test_creation_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="expected a shape of non-negative integers"):
        minidl.zeros(*shape)


def test_full_needs_a_fill_value():
    with pytest.raises(TypeError, match="full: expected a shape and a fill_value"):
        minidl.full((2, 3))


# --------------------------------------------------------------------------- #
# Operators with numbers and numpy arrays
# --------------------------------------------------------------------------- #
def test_python_numbers_keep_the_tensor_dtype():
    x = minidl.tensor([1.0, 2.0])
    for y in (x + 1, 1 + x, x * 2.5, 2.5 * x, x - 1, 1 - x, x / 2, 2 / x, x**2, 2**x, -x):
        assert isinstance(y, minidl.Tensor) and y.dtype == np.float32
    np.testing.assert_allclose((1 - x).numpy(), [0.0, -1.0])
    np.testing.assert_allclose((2 / x).numpy(), [2.0, 1.0])
    np.testing.assert_allclose((2**x).numpy(), [2.0, 4.0])
    counts = minidl.tensor([1, 2])
    assert (counts * 2).dtype == np.int64 and (counts * 0.5).dtype.kind == "f"
    mask = minidl.tensor([True, False])
    assert (mask * 2).tolist() == [2, 0]


def test_numpy_operands_on_either_side():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    a = np.array([3.0, 4.0], dtype=np.float32)
    for y, expected in [(a + x, [4, 6]), (x + a, [4, 6]), (a * x, [3, 8]), (a - x, [2, 2]), (a / x, [3, 2])]:
        assert isinstance(y, minidl.Tensor) and y.requires_grad
        np.testing.assert_allclose(y.numpy(), expected)
    y = np.float64(2.0) * x
    assert isinstance(y, minidl.Tensor) and y.dtype == np.float32
    (a @ x).backward()
    np.testing.assert_allclose(x.grad.numpy(), a)


def test_comparisons_give_boolean_tensors_without_gradients():
    x = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result, expected in [
        (x > 2, [False, False, True]),
        (x >= 2, [False, True, True]),
        (x < 2, [True, False, False]),
        (x <= 2, [True, True, False]),
        (x == 2, [False, True, False]),
        (x != 2, [True, False, True]),
        (x == minidl.tensor([1.0, 0.0, 3.0]), [True, False, True]),
    ]:
        assert result.dtype == np.bool_ and not result.requires_grad
        assert result.tolist() == expected
    assert len({x, x}) == 1  # hashed by identity


def test_setitem_refuses_to_break_gradients():
    x = minidl.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="__setitem__: a leaf tensor that requires grad .* can't be changed in place"):
        x[0] = 1.0
    with minidl.no_grad():
        x[0] = 1.0
    y = minidl.zeros(3)
    y[1:] = minidl.tensor([2.0, 3.0])
    assert x.tolist() == [1.0, 0.0, 0.0] and y.tolist() == [0.0, 2.0, 3.0]


def test_shape_methods_use_pytorch_spellings():
    x = minidl.arange(24).reshape(2, 3, 4)
    assert x.reshape((6, 4)).shape == (6, 4) and x.view(4, -1).shape == (4, 6)
    assert x.transpose(0, 2).shape == (4, 3, 2) and x.swapaxes(0, 2).shape == (4, 3, 2)
    with pytest.raises(TypeError):  # PyTorch's transpose swaps two dims: for a permutation, use permute
        x.transpose()
    assert x.permute(1, 0, 2).shape == (3, 2, 4) and x.permute((2, 1, 0)).shape == (4, 3, 2)
    assert x.T.shape == (4, 3, 2) and x.mT.shape == (2, 4, 3)
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12)
    assert x.unsqueeze(0).shape == (1, 2, 3, 4) and x.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert x[:1].squeeze().shape == (3, 4) and x[:1].squeeze(0).shape == (3, 4)
    assert x.squeeze(1).shape == (2, 3, 4)  # a dim whose size is not 1 stays, as in PyTorch
    assert x[:, :1].expand(2, 5, 4).shape == (2, 5, 4)
    np.testing.assert_array_equal(x.permute(2, 0, 1).numpy(), np.arange(24).reshape(2, 3, 4).transpose(2, 0, 1))
