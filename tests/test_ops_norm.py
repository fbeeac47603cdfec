"""The fused batch-norm op equals the composed formula (values and gradients), passes gradcheck,
and gives correct second derivatives through its create_graph path."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl.ops import norm


def composed_batch_norm(x, gamma, beta, eps):
    """The same math from generic ops: mean, var, sub, mul, pow, add."""
    axes, shape = norm.channel_axes(x.ndim), norm.channel_shape(x.ndim, x.shape[1])
    mu = minidl.mean(x, axes, keepdims=True)
    var = minidl.var(x, axes, keepdims=True, correction=0)
    return (x - mu) * (var + eps) ** -0.5 * gamma.reshape(shape) + beta.reshape(shape)


def fused(x, gamma, beta, eps=1e-5):
    return norm.batch_norm_train(x, gamma, beta, eps)[0]


inputs_shape = st.tuples(st.integers(2, 4), st.integers(1, 3), st.lists(st.integers(1, 3), max_size=2)).map(
    lambda t: (t[0], t[1], *t[2])
)


def leaves(shape):
    x = minidl.randn(*shape, dtype=np.float64, requires_grad=True)
    gamma = minidl.randn(shape[1], dtype=np.float64, requires_grad=True)
    beta = minidl.randn(shape[1], dtype=np.float64, requires_grad=True)
    return x, gamma, beta


@given(inputs_shape)
def test_fused_equals_composed_values_and_gradients(shape):
    x, gamma, beta = leaves(shape)
    gy = minidl.randn(*shape, dtype=np.float64)
    results = []
    for f in (fused, composed_batch_norm):
        for t in (x, gamma, beta):
            t.grad = None
        y = f(x, gamma, beta, 1e-5)
        y.backward(gy)
        results.append((y.numpy(), x.grad.numpy(), gamma.grad.numpy(), beta.grad.numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


@given(inputs_shape)
def test_gradcheck(shape):
    assert minidl.gradcheck(fused, leaves(shape))


def test_second_derivatives():
    assert minidl.gradgradcheck(fused, leaves((3, 2, 2)))
    assert minidl.gradgradcheck(fused, leaves((4, 3)))


def test_create_graph_path_keeps_eps():
    # A large eps and a small batch variance make eps matter: the gradient built for a second
    # derivative (create_graph=True) must equal the composed formula's, eps included.
    x, gamma, beta = leaves((4, 2, 3))
    x = minidl.tensor(0.01 * x.numpy(), dtype=np.float64, requires_grad=True)
    gy = minidl.randn(4, 2, 3, dtype=np.float64)
    (fused_gx,) = minidl.grad(fused(x, gamma, beta, eps=0.1), x, gy, create_graph=True)
    (composed_gx,) = minidl.grad(composed_batch_norm(x, gamma, beta, 0.1), x, gy)
    np.testing.assert_allclose(fused_gx.numpy(), composed_gx.numpy(), rtol=1e-8, atol=1e-12)
    assert minidl.gradgradcheck(lambda *t: fused(*t, eps=0.1), (x, gamma, beta))


def test_returns_biased_batch_statistics():
    x = minidl.randn(5, 3, 2, dtype=np.float64)
    _, mean, var = norm.batch_norm_train(x, minidl.ones(3, dtype=np.float64), minidl.zeros(3, dtype=np.float64), 1e-5)
    values = np.moveaxis(x.numpy(), 1, 0).reshape(3, -1)
    np.testing.assert_allclose(mean, values.mean(1), rtol=1e-12)
    np.testing.assert_allclose(var, values.var(1), rtol=1e-12)


def test_eval_form_is_the_affine_map():
    x, gamma, beta = leaves((4, 3, 2))
    rm, rv = minidl.randn(3, dtype=np.float64), minidl.rand(3, dtype=np.float64) + 0.5
    y = norm.batch_norm_eval(x, rm, rv, gamma, beta, 1e-5)
    shape = (1, 3, 1)
    expected = (x.numpy() - rm.numpy().reshape(shape)) / np.sqrt(rv.numpy().reshape(shape) + 1e-5)
    expected = expected * gamma.numpy().reshape(shape) + beta.numpy().reshape(shape)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)
    assert minidl.gradcheck(lambda *t: norm.batch_norm_eval(t[0], rm, rv, t[1], t[2], 1e-5), (x, gamma, beta))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_dtype(device, dtype):
    x = minidl.randn(4, 3, 2, 2, dtype=dtype, device=device)
    y = fused(x, minidl.ones(3, dtype=dtype, device=device), minidl.zeros(3, dtype=dtype, device=device))
    assert y.dtype == dtype and y.device == device
