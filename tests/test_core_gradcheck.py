"""gradcheck and gradgradcheck: they pass on correct ops, and a deliberately wrong backward
fails with a report that names the input, the worst element, both values and the error."""

import re

import numpy as np
import pytest

import minidl
from minidl import Function, GradcheckError


def leaf(shape, seed=0, dtype=np.float64):
    return minidl.tensor(np.random.default_rng(seed).uniform(0.5, 2.0, shape), dtype=dtype, requires_grad=True)


class SquareWithABug(Function):
    """y = x**2, but the backward is wrong at one element (the one at ``wrong_at``)."""

    def __init__(self, wrong_at):
        self.wrong_at = wrong_at

    def forward(self, x):
        return x * x

    def backward(self, gy):
        x = self.inputs[0]
        bump = x.xp.zeros(x.shape)
        bump[self.wrong_at] = 1.0
        return gy * 2 * x + gy * minidl.Tensor(bump)


class SquareWithAConstantBackward(Function):
    """y = x**2 with a backward that is right but not differentiable: it uses raw arrays,
    so its own derivative (the second derivative) comes out as 0 instead of 2."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * minidl.Tensor(2 * self.inputs[0].data)


def test_gradcheck_passes_on_correct_ops():
    a, b = leaf((2, 3), 1), leaf((3,), 2)
    assert minidl.gradcheck(lambda a, b: (a * b).exp() / (a + b), [a, b])
    assert minidl.gradcheck(lambda a: a.tanh().sum(axis=0), a)  # a single tensor works too


def test_gradcheck_checks_only_inputs_that_require_grad():
    a = leaf((2,))
    constant = minidl.tensor([1.0, 2.0], dtype=np.float64)
    assert minidl.gradcheck(lambda a, c, k: a * c * k, [a, constant, 3.0])


def test_gradcheck_accepts_float32_inputs_and_works_in_float64():
    seen = []

    def fn(x):
        seen.append(x.dtype)
        return x * x

    x = leaf((3,), dtype=np.float32)
    assert minidl.gradcheck(fn, x)
    assert set(seen) == {np.dtype(np.float64)}
    assert x.dtype == np.float32 and x.grad is None  # the caller's tensor is untouched


def test_gradcheck_leaves_input_values_unchanged():
    x = leaf((2, 2))
    before = x.numpy().copy()
    minidl.gradcheck(lambda x: x.exp(), x)
    minidl.gradcheck(lambda x: x.exp(), x, mode="random")
    np.testing.assert_array_equal(x.numpy(), before)


def test_gradcheck_handles_several_outputs():
    x = leaf((4,))
    assert minidl.gradcheck(lambda x: minidl.split(x * x, 2), x)


def test_a_wrong_backward_fails_with_a_report_naming_the_element():
    x = leaf((3, 4), 3)
    with pytest.raises(GradcheckError) as caught:
        minidl.gradcheck(lambda x: SquareWithABug((1, 2))(x), x)
    message = str(caught.value)
    assert "input 0 (shape (3, 4))" in message
    assert "1 of 12 element(s) disagree" in message
    assert "worst element (1, 2)" in message
    numbers = dict(re.findall(r"(numerical|analytic|error) (-?[0-9.e+-]+)", message))
    assert set(numbers) == {"numerical", "analytic", "error"}
    numerical, analytic, error = (float(numbers[k]) for k in ("numerical", "analytic", "error"))
    assert abs(analytic - numerical) == pytest.approx(error, rel=1e-2)  # printed to 3 digits
    assert "atol" in message and "rtol" in message


def test_the_report_uses_names_and_tensor_names():
    a, b = leaf((2,)), leaf((2,), 1)
    with pytest.raises(GradcheckError, match=r"(?s)weights \(shape \(2,\)\).*worst element \(0,\)"):
        minidl.gradcheck(lambda a, b: a * SquareWithABug((0,))(b), [a, b], names=["bias", "weights"])
    b.name = "w"
    with pytest.raises(GradcheckError, match=r"w \(shape \(2,\)\)"):
        minidl.gradcheck(lambda a, b: a * SquareWithABug((0,))(b), [a, b])


def test_raise_exception_false_returns_false():
    x = leaf((2,))
    assert minidl.gradcheck(lambda x: SquareWithABug((1,))(x), x, raise_exception=False) is False


def test_nan_gradients_fail():
    class NanBackward(Function):
        def forward(self, x):
            return x * 1

        def backward(self, gy):
            return gy * float("nan")

    with pytest.raises(GradcheckError, match="analytic nan"):
        minidl.gradcheck(lambda x: NanBackward()(x), leaf((2,)))


def test_random_direction_mode():
    x = leaf((5, 6))
    assert minidl.gradcheck(lambda x: x.tanh() * x, x, mode="random")
    with pytest.raises(GradcheckError, match="random direction.*mode='full'"):
        minidl.gradcheck(lambda x: SquareWithABug((2, 3))(x), x, mode="random")


def test_gradcheck_argument_errors():
    with pytest.raises(ValueError, match="no input requires grad"):
        minidl.gradcheck(lambda x: x * 2, minidl.ones(2))
    with pytest.raises(ValueError, match="mode must be 'full' or 'random'"):
        minidl.gradcheck(lambda x: x * 2, leaf((2,)), mode="fast")


def test_gradgradcheck_passes_on_differentiable_backwards():
    x, w = leaf((2, 3), 4), leaf((3, 2), 5)
    assert minidl.gradgradcheck(lambda x: x.tanh() * x.exp(), x)
    assert minidl.gradgradcheck(lambda x, w: (x @ w).sigmoid(), [x, w])


def test_gradgradcheck_catches_a_backward_that_is_not_differentiable():
    x = leaf((3,))
    assert minidl.gradcheck(lambda x: SquareWithAConstantBackward()(x), x)  # first order is fine
    second_order_report = r"(?s)gradgradcheck \(second derivatives\).*3 of 3 element\(s\) disagree.*analytic 0,"
    with pytest.raises(GradcheckError, match=second_order_report):
        minidl.gradgradcheck(lambda x: SquareWithAConstantBackward()(x), x)


def test_grad_checks_the_count_and_shapes_of_grad_outputs():
    x = minidl.ones(2, 3, requires_grad=True)
    y, z = x * 2, x.sum()
    with pytest.raises(ValueError, match=r"grad: expected grad_outputs\[0\] of shape \(2, 3\) like outputs\[0\], got shape \(3, 2\)"):
        minidl.grad(y, x, grad_outputs=minidl.ones(3, 2))
    with pytest.raises(ValueError, match=r"grad: expected 2 grad_outputs \(one per output\), got 1"):
        minidl.grad([y, z], x, grad_outputs=[minidl.ones(2, 3)])
    (g,) = minidl.grad(y, x, grad_outputs=minidl.ones(2, 3))
    assert np.array_equal(g.numpy(), np.full((2, 3), 2.0))
