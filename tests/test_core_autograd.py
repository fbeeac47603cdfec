"""Autograd: gradient accumulation, backward's arguments and errors, freeing the graph,
iterative traversal, grad modes, detach, higher-order gradients and Newton's method."""

import math
import sys

import numpy as np
import pytest

import minidl
from minidl import Function


def leaf(values, dtype=np.float64):
    return minidl.tensor(values, dtype=dtype, requires_grad=True)


# --------------------------------------------------------------------------- #
# backward
# --------------------------------------------------------------------------- #
def test_leaves_accumulate_grad(device):
    x = minidl.tensor([1.0, -2.0], device=device, requires_grad=True)
    (x * x).sum().backward()
    (3 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2 + 3, -4 + 3])
    assert x.grad.device == device and not x.grad.requires_grad


def test_shared_subexpressions_add_their_gradients():
    x = leaf(3.0)
    y = x * x  # used twice below: its gradient must be the sum of both uses
    (y + y * x + x).backward()  # d/dx (x^2 + x^3 + x) = 2x + 3x^2 + 1
    assert x.grad.item() == pytest.approx(2 * 3 + 3 * 9 + 1)


def test_backward_with_an_explicit_gradient():
    x = leaf([1.0, 2.0, 3.0])
    y = x * x
    y.backward(minidl.tensor([1.0, 0.0, 2.0], dtype=np.float64))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 0.0, 12.0])
    x.grad = None
    (x * 2).backward(np.ones(3))  # a plain array works too
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_backward_on_a_non_scalar_without_grad_is_a_clear_error():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"grad can be implicitly created only for scalar outputs, got shape \(2,\)"):
        (x * 2).backward()


def test_backward_with_a_gradient_of_the_wrong_shape():
    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match=r"backward: grad_outputs\[0\] has shape \(3,\), but output 0 has shape \(2,\)"):
        (x * 2).backward(minidl.ones(3))


def test_backward_on_a_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        minidl.tensor([1.0]).sum().backward()


def test_gradient_dtype_follows_the_leaf():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)  # float32
    (x * minidl.tensor([1.0, 1.0], dtype=np.float64)).sum().backward()
    assert x.grad.dtype == np.float32


def test_non_leaves_keep_grad_only_when_asked():
    x = leaf([1.0, 2.0])
    y = x * 3
    z = y * y
    y.retain_grad()
    z.sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), 2 * y.numpy())
    assert z.grad is None
    with pytest.raises(RuntimeError, match="retain_grad: can't retain_grad on a tensor that does not require grad"):
        minidl.ones(2).retain_grad()


# --------------------------------------------------------------------------- #
# Freeing the graph
# --------------------------------------------------------------------------- #
def test_graph_is_freed_after_backward():
    x = leaf(2.0)
    y = x.exp()
    z = y * y
    z.backward()
    assert z.grad_fn.inputs is None and y.grad_fn.inputs is None  # what backward needed is gone
    with pytest.raises(RuntimeError, match="already freed.*retain_graph=True"):
        z.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf(2.0)
    z = (x * x).exp()
    z.backward(retain_graph=True)
    first = x.grad.item()
    z.backward()
    assert x.grad.item() == pytest.approx(2 * first)
    assert first == pytest.approx(2 * 2.0 * math.exp(4.0))


def test_a_chain_of_100000_ops_needs_no_recursion():
    x = leaf(0.5)
    y = x
    for i in range(50_000):
        y = -y if i % 2 else y * 1.0
    y = y + 0.0
    for _ in range(50_000 - 1):
        y = -y
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(200, len(_frames()) + 100))  # far below the graph's depth
    try:
        y.backward()
    finally:
        sys.setrecursionlimit(limit)
    # 25,000 + 49,999 negations: an odd number of sign flips
    assert x.grad.item() == -1.0


def _frames():
    frame, frames = sys._getframe(), []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def test_unused_outputs_of_a_multi_output_op_get_zero_gradients():
    x = leaf(np.arange(6.0))
    first, second, third = minidl.split(x, 2)
    (second * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0, 2, 2, 0, 0])


# --------------------------------------------------------------------------- #
# Grad modes, detach, requires_grad_
# --------------------------------------------------------------------------- #
def test_no_grad_records_nothing():
    x = leaf([1.0])
    with minidl.no_grad():
        assert not minidl.is_grad_enabled()
        y = x * 2
        with minidl.enable_grad():
            assert minidl.is_grad_enabled()
            z = x * 2
        assert not minidl.is_grad_enabled()
    assert minidl.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None


def test_grad_modes_are_decorators_with_or_without_parentheses():
    x = leaf([1.0])

    @minidl.no_grad
    def bare(t):
        return t * 2

    @minidl.no_grad()
    def called(t):
        return t * 2

    @minidl.enable_grad()
    def enabled(t):
        return t * 2

    assert not bare(x).requires_grad and not called(x).requires_grad
    assert bare.__name__ == "bare"
    with minidl.no_grad():
        assert enabled(x).requires_grad
    assert minidl.is_grad_enabled()


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with minidl.no_grad():
            1 / 0
    assert minidl.is_grad_enabled()
    with minidl.set_grad_enabled(False):
        assert not minidl.is_grad_enabled()
    assert minidl.is_grad_enabled()


def test_detach_cuts_the_graph_and_shares_values():
    x = leaf([1.0, 2.0])
    y = x * 3
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None and d.data is y.data
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 6.0])  # no gradient through d


def test_requires_grad_():
    x = minidl.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad
    y = leaf([1.0]) * 2
    with pytest.raises(RuntimeError, match="only leaf tensors can stop requiring grad; use detach"):
        y.requires_grad_(False)


# --------------------------------------------------------------------------- #
# Errors from a Function written wrongly
# --------------------------------------------------------------------------- #
class TwoGradients(Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return gy, gy


class WrongShape(Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return gy.sum()


def test_a_backward_returning_too_many_gradients_is_named():
    with pytest.raises(RuntimeError, match="TwoGradients.backward returned 2 gradients for 1 inputs"):
        TwoGradients()(leaf([1.0, 2.0])).sum().backward()


def test_a_backward_returning_the_wrong_shape_is_named():
    message = r"WrongShape.backward returned a gradient of shape \(\) for an input of shape \(2,\)"
    with pytest.raises(RuntimeError, match=message):
        WrongShape()(leaf([1.0, 2.0])).sum().backward()


# --------------------------------------------------------------------------- #
# Higher-order gradients
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("value", [-1.5, 0.3, 2.0])
def test_second_derivative_of_x_cubed(value):
    x = leaf(value)
    y = x**3
    y.backward(create_graph=True)
    first = x.grad
    assert first.requires_grad
    assert first.item() == pytest.approx(3 * value**2)
    x.grad = None
    first.backward()
    assert x.grad.item() == pytest.approx(6 * value)


@pytest.mark.parametrize("value", [-1.2, 0.0, 0.7])
def test_second_and_third_derivatives_of_tanh(value):
    x = leaf(value)
    (d1,) = minidl.grad(minidl.tanh(x), x, create_graph=True)
    (d2,) = minidl.grad(d1, x, create_graph=True)
    (d3,) = minidl.grad(d2, x)
    t = math.tanh(value)
    assert d1.item() == pytest.approx(1 - t * t)
    assert d2.item() == pytest.approx(-2 * t * (1 - t * t))
    assert d3.item() == pytest.approx(-2 * (1 - t * t) * (1 - 3 * t * t))
    assert x.grad is None  # minidl.grad returns gradients instead of storing them


def test_newtons_method_finds_a_minimum_with_second_derivatives():
    """Minimise f(x) = x^4 - 3x^2 + x with x <- x - f'(x) / f''(x), both derivatives by autograd."""
    x = leaf(2.0)
    for _ in range(20):
        f = x**4 - 3 * x**2 + x
        (slope,) = minidl.grad(f, x, create_graph=True)
        (curvature,) = minidl.grad(slope, x)
        with minidl.no_grad():
            x = leaf(x.item() - slope.item() / curvature.item())
    stationary = np.roots([4, 0, -6, 1])  # f'(x) = 4x^3 - 6x + 1
    expected = stationary.real.max()  # Newton from x = 2 goes to the right-hand minimum
    assert x.item() == pytest.approx(expected, abs=1e-12)
    assert 12 * x.item() ** 2 - 6 > 0  # a minimum: f'' > 0


def test_grad_reports_unused_inputs():
    x, unused = leaf(1.0), leaf(2.0)
    with pytest.raises(RuntimeError, match="not used to compute the outputs; pass allow_unused=True"):
        minidl.grad(x * 2, [x, unused])
    gx, gu = minidl.grad(x * 2, [x, unused], allow_unused=True)
    assert gx.item() == 2.0 and gu is None
    with pytest.raises(RuntimeError, match="grad_outputs must be given for non-scalar outputs"):
        minidl.grad(leaf([1.0, 2.0]) * 2, x)


# --------------------------------------------------------------------------- #
# Graph export
# --------------------------------------------------------------------------- #
def test_to_dot_draws_ops_and_named_tensors():
    a, b = leaf(1.0), leaf(2.0)
    b.name = "b"
    out = minidl.tanh(a * b + b**2)
    dot = minidl.to_dot(out, names={a: "a", out: "f"})
    assert dot.startswith("digraph minidl {") and dot.rstrip().endswith("}")
    for word in ("Mul", "PowScalar", "Add", "Tanh", 'label="a\\n', 'label="b\\n', 'label="f\\n', "->"):
        assert word in dot
    assert dot.count("shape=box") == 4
