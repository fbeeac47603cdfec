"""Activation layers and their F forms: forward against numpy formulas, gradcheck, dim handling."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn as nn
import minidl.nn.functional as F

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


ELEMENTWISE = [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.LeakyReLU(), lambda x: np.where(x > 0, x, 0.01 * x)),
    (nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (nn.Tanh(), np.tanh),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.SiLU(), lambda x: x / (1 + np.exp(-x))),
]


@pytest.mark.parametrize("layer, reference", ELEMENTWISE, ids=lambda v: repr(v) if isinstance(v, nn.Module) else "")
@given(shape=shapes)
def test_elementwise_forward_and_gradcheck(layer, reference, shape):
    x = minidl.randn(*shape, dtype=np.float64, requires_grad=True)
    x.data[np.abs(x.data) < 1e-3] = 0.5  # keep clear of the kinks of relu / leaky relu
    np.testing.assert_allclose(layer(x).numpy(), reference(x.numpy()), rtol=1e-12, atol=1e-12)
    assert layer(x).shape == shape
    assert minidl.gradcheck(layer, x)


@pytest.mark.parametrize("dim", [0, 1, -1])
@given(data=st.data())
def test_softmax_and_log_softmax_along_dim(dim, data):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=3).map(tuple))
    x = minidl.randn(*shape, dtype=np.float64, requires_grad=True)
    expected = np_softmax(x.numpy(), dim)
    np.testing.assert_allclose(nn.Softmax(dim)(x).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(F.softmax(x, dim=dim).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(nn.LogSoftmax(dim=dim)(x).numpy(), np.log(expected), rtol=1e-10, atol=1e-12)
    assert minidl.gradcheck(nn.Softmax(dim), x)
    assert minidl.gradcheck(lambda t: F.log_softmax(t, dim), x)


def test_log_softmax_is_stable_for_huge_logits():
    x = minidl.tensor([[1e4, -1e4, 0.0]])
    y = F.log_softmax(x, dim=1).numpy()
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [[0.0, -2e4, -1e4]], rtol=1e-6)


def test_softmax_needs_dim_and_checks_it():
    with pytest.raises(ValueError, match="Softmax: pass dim="):
        nn.Softmax()
    with pytest.raises(ValueError, match=r"LogSoftmax: expected dim in \[-2, 1\] for a 2-d input, got 2"):
        nn.LogSoftmax(2)(minidl.randn(3, 4))
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"


def test_reprs_follow_pytorch():
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.ReLU(inplace=True)) == "ReLU(inplace=True)"
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.Tanh()) == "Tanh()"


def test_activations_on_device(device):
    x = minidl.randn(3, 5, device=device, requires_grad=True)
    for layer in (nn.ReLU(), nn.LeakyReLU(), nn.Tanh(), nn.Sigmoid(), nn.SiLU(), nn.Softmax(1), nn.LogSoftmax(1)):
        y = layer(x)
        assert y.device == device and y.dtype == np.float32
        y.sum().backward()
    assert x.grad.device == device


def test_sigmoid_saturates_without_overflow():
    y = nn.Sigmoid()(minidl.tensor([-1000.0, 0.0, 1000.0])).numpy()
    np.testing.assert_allclose(y, [0.0, 0.5, 1.0])
    assert math.isfinite(float(nn.SiLU()(minidl.tensor([-1000.0])).item()))
