"""matmul: batched and broadcast, 1-D operands, forward against a loop reference, backward
by gradcheck, second derivatives by gradgradcheck, and the shape errors."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
seeds = st.integers(0, 2**32 - 1)
sides = st.integers(1, 3)


def uniform(shape, seed):
    return np.random.default_rng(seed).uniform(-1.5, 1.5, shape)


def leaf(array, device):
    return minidl.tensor(array, dtype=np.float64, device=device, requires_grad=True)


def matmul_reference(a, b):
    """C[..., i, j] = sum_k A[..., i, k] B[..., k, j], written as loops (1-D operands as numpy does)."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    a2, b2 = np.broadcast_to(a2, batch + a2.shape[-2:]), np.broadcast_to(b2, batch + b2.shape[-2:])
    n, k, m = a2.shape[-2], a2.shape[-1], b2.shape[-1]
    out = np.zeros(batch + (n, m))
    for index in np.ndindex(*batch):
        for i in range(n):
            for j in range(m):
                out[index + (i, j)] = sum(a2[index + (i, p)] * b2[index + (p, j)] for p in range(k))
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out


@st.composite
def matmul_shapes(draw):
    """Operand shapes for matmul: batch axes that broadcast (size 1 included), and 1-D operands."""
    (batch_a, batch_b), _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    n, k, m = draw(sides), draw(sides), draw(sides)
    shape_a = (k,) if draw(st.integers(0, 4)) == 0 else batch_a + (n, k)
    shape_b = (k,) if draw(st.integers(0, 4)) == 0 else batch_b + (k, m)
    return shape_a, shape_b


@fixture_ok
@given(shapes=matmul_shapes(), seed=seeds)
def test_matmul_forward_and_backward(device, shapes, seed):
    shape_a, shape_b = shapes
    a_values, b_values = uniform(shape_a, seed), uniform(shape_b, seed + 1)
    a, b = leaf(a_values, device), leaf(b_values, device)
    y = a @ b
    expected = matmul_reference(a_values, b_values)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12)
    y.sum().backward()
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    assert minidl.gradcheck(minidl.matmul, [leaf(a_values, device), leaf(b_values, device)])


@settings(max_examples=15)
@given(shapes=matmul_shapes(), seed=seeds)
def test_matmul_second_derivatives(shapes, seed):
    shape_a, shape_b = shapes
    a, b = leaf(uniform(shape_a, seed), "cpu"), leaf(uniform(shape_b, seed + 1), "cpu")
    assert minidl.gradgradcheck(lambda a, b: (a @ b).tanh(), [a, b])


def test_matmul_gradients_written_out():
    a, b = leaf([[1.0, 2.0], [3.0, 4.0]], "cpu"), leaf([[5.0], [6.0]], "cpu")
    (a @ b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [[5.0, 6.0], [5.0, 6.0]])  # dA = dY @ B^T
    np.testing.assert_allclose(b.grad.numpy(), [[4.0], [6.0]])  # dB = A^T @ dY


def test_matmul_with_numpy_operands_and_methods():
    x = leaf([[1.0, 2.0]], "cpu")
    w = np.array([[1.0], [1.0]])
    assert (x @ w).tolist() == [[3.0]] and (w.T @ x.T).tolist() == [[3.0]]
    assert x.matmul(w).tolist() == [[3.0]]


@pytest.mark.parametrize(
    "shape_a, shape_b, message",
    [
        ((2, 3), (4, 5), r"matmul: shapes \(2, 3\) and \(4, 5\) do not match: 3 columns on the left, 4 rows on"),
        ((3,), (4,), r"matmul: shapes \(3,\) and \(4,\) do not match"),
        ((), (3,), r"matmul: both operands need at least 1 dimension, got shapes \(\) and \(3,\)"),
        ((2, 2, 3), (3, 3, 4), r"matmul: the batch dimensions of shapes \(2, 2, 3\) and \(3, 3, 4\) do not broadcast"),
    ],
)
def test_matmul_shape_errors(shape_a, shape_b, message):
    with pytest.raises(ValueError, match=message):
        minidl.matmul(minidl.ones(*shape_a), minidl.ones(*shape_b))
