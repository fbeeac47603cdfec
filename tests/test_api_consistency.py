"""Public API details that follow PyTorch, and error messages that name the op and what came.

Each test pins one thing a learner carries over from (or to) PyTorch, or one message
a user mistake produces.
"""

import inspect
from collections import OrderedDict

import numpy as np
import pytest

import minidl
from minidl.data.transforms import Transform


def test_tensor_to_takes_a_dtype_first_as_pytorch(device):
    x = minidl.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x.to(minidl.float64)
    assert y.dtype == np.float64 and y.device == device
    y.sum().backward()
    assert x.grad.dtype == np.float32 and np.allclose(x.grad.numpy(), 1.0)
    assert x.to("float32") is x  # already that dtype: no copy, as PyTorch


def test_tensor_to_rejects_what_is_neither_a_device_nor_a_dtype():
    with pytest.raises(ValueError, match="Device: expected 'cpu', 'cuda' or 'cuda:N', got 'float77'"):
        minidl.ones(2).to("float77")


def test_clamp_takes_pytorch_keywords(device):
    x = minidl.tensor([-2.0, 0.5, 3.0], device=device)
    assert x.clamp(min=0).tolist() == [0.0, 0.5, 3.0]
    assert x.clamp(max=1).tolist() == [-2.0, 0.5, 1.0]
    assert x.clip(min=0).tolist() == [0.0, 0.5, 3.0]
    assert x.clamp(-1, 1).tolist() == x.clip(-1, 1).tolist() == [-1.0, 0.5, 1.0]


def test_randint_may_leave_low_out_as_pytorch(device):
    values = minidl.randint(3, (50,), device=device)
    assert values.shape == (50,) and values.dtype == np.int64 and set(values.tolist()) <= {0, 1, 2}
    assert minidl.randint(5, 6, (2,), device=device).tolist() == [5, 5]


def test_backward_takes_gradient_as_pytorch():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward(gradient=minidl.tensor([1.0, 10.0]))
    assert x.grad.tolist() == [3.0, 30.0]


def test_grad_has_torch_autograd_grads_argument_order():
    names = list(inspect.signature(minidl.grad).parameters)
    assert names == ["outputs", "inputs", "grad_outputs", "retain_graph", "create_graph", "allow_unused"]
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    (slope,) = minidl.grad((x * x).sum(), x, None, False, True)  # positional create_graph=True, as in PyTorch
    assert slope.requires_grad


def test_grad_names_the_unused_input():
    x, unused = minidl.tensor([1.0], requires_grad=True), minidl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"grad: input 1 \(shape \(2,\)\) was not used"):
        minidl.grad((x * 2).sum(), [x, unused])


@pytest.mark.parametrize("make, op", [
    (lambda: minidl.zeros(2, -1), "zeros"),
    (lambda: minidl.ones((-3,)), "ones"),
    (lambda: minidl.randn(2, -1), "randn"),
    (lambda: minidl.rand(-1), "rand"),
    (lambda: minidl.randint(0, 5, (2, -1)), "randint"),
    (lambda: minidl.full((2, -1), 1.5), "full"),
])
def test_creation_names_the_function_with_a_bad_shape(make, op):
    with pytest.raises(ValueError, match=rf"^{op}: expected a shape of non-negative integers"):
        make()


def test_tensor_from_bad_data_says_what_came():
    with pytest.raises(ValueError, match=r"tensor: nested lists of different lengths .*\[\[1, 2\], \[3\]\]"):
        minidl.tensor([[1, 2], [3]])
    with pytest.raises(TypeError, match="tensor: cannot make a tensor from str data 'abc'"):
        minidl.tensor("abc")


def test_argmax_checks_its_axis():
    x = minidl.ones(2, 3)
    assert x.argmax(axis=-1).tolist() == [0, 0]
    with pytest.raises(ValueError, match="argmax: axis 3 is out of range for a tensor with 2 dimensions"):
        x.argmax(axis=3)
    with pytest.raises(TypeError, match=r"argmin: axis must be None or one int, got \(0, 1\)"):
        x.argmin(axis=(0, 1))


def test_pad_says_which_widths_it_expected():
    with pytest.raises(ValueError, match=r"pad: expected pad_width .* 2 such pairs .* shape \(2, 3\)"):
        minidl.pad(minidl.ones(2, 3), ((1, 2), (3, 4), (5, 6)))


def test_a_transform_without_call_says_what_to_write():
    class Forgotten(Transform):
        pass

    with pytest.raises(NotImplementedError, match=r"Forgotten must define __call__\(batch\)"):
        Forgotten()(np.zeros((1, 3, 2, 2)))


def test_sequential_refuses_a_non_module_in_an_ordered_dict():
    with pytest.raises(TypeError, match="Sequential: entry 'act' is a int, not a Module"):
        minidl.nn.Sequential(OrderedDict([("fc", minidl.nn.Linear(2, 2)), ("act", 5)]))
