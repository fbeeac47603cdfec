"""Linear, Identity, Flatten and F.pad: forward against plain loops / numpy, gradients by gradcheck."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn as nn
import minidl.nn.functional as F

sizes = st.integers(1, 4)


def gradcheck_module(module, *inputs):
    """gradcheck of module(*inputs) with respect to the inputs that require grad AND every parameter.

    gradcheck perturbs float64 copies of what it is given, so the parameters are passed in as
    inputs and swapped into the module for each evaluation.
    """
    names = [n for n, _ in module.named_parameters()]
    count = len(inputs)

    def run(*args):
        saved = dict(module._parameters)
        module._parameters.update(zip(names, args[count:]))
        try:
            return module(*args[:count])
        finally:
            module._parameters.update(saved)

    params = [minidl.Tensor(p.data, requires_grad=True) for p in module.parameters()]
    labels = [f"input {i}" for i in range(count)] + names
    return minidl.gradcheck(run, (*inputs, *params), names=labels)


def linear_reference(x, w, b):
    """y[..., o] = sum_i x[..., i] w[o, i] + b[o], as explicit loops over outputs and inputs."""
    y = np.zeros(x.shape[:-1] + (w.shape[0],))
    for o in range(w.shape[0]):
        for i in range(w.shape[1]):
            y[..., o] += x[..., i] * w[o, i]
        y[..., o] += 0 if b is None else b[o]
    return y


@given(lead=st.lists(sizes, max_size=2), n_in=sizes, n_out=sizes, bias=st.booleans())
def test_linear_forward_matches_loops(lead, n_in, n_out, bias):
    fc = nn.Linear(n_in, n_out, bias=bias)
    x = minidl.randn(*lead, n_in)
    y = fc(x)
    assert y.shape == tuple(lead) + (n_out,) and y.dtype == np.float32
    b = fc.bias.numpy() if bias else None
    np.testing.assert_allclose(y.numpy(), linear_reference(x.numpy(), fc.weight.numpy(), b), rtol=1e-5, atol=1e-6)


def test_linear_shapes_and_repr():
    fc = nn.Linear(3, 5)
    assert fc.weight.shape == (5, 3) and fc.bias.shape == (5,)
    assert [n for n, _ in fc.named_parameters()] == ["weight", "bias"]
    assert repr(fc) == "Linear(in_features=3, out_features=5, bias=True)"
    no_bias = nn.Linear(3, 5, bias=False)
    assert no_bias.bias is None and [n for n, _ in no_bias.named_parameters()] == ["weight"]
    assert nn.Linear(2, 2, dtype=np.float64).weight.dtype == np.float64


@given(batch=sizes, n_in=sizes, n_out=sizes, bias=st.booleans())
def test_linear_gradcheck_inputs_and_parameters(batch, n_in, n_out, bias):
    fc = nn.Linear(n_in, n_out, bias=bias)
    x = minidl.randn(batch, n_in, dtype=np.float64, requires_grad=True)
    assert gradcheck_module(fc, x)


def test_linear_gradcheck_batched_3d_input():
    fc = nn.Linear(3, 2)
    assert gradcheck_module(fc, minidl.randn(2, 4, 3, dtype=np.float64, requires_grad=True))


def test_linear_on_device(device):
    fc = nn.Linear(4, 3).to(device)
    x = minidl.randn(2, 4, device=device)
    y = fc(x)
    assert y.device == device
    y.sum().backward()
    np.testing.assert_allclose(fc.bias.grad.numpy(), [2, 2, 2])
    np.testing.assert_allclose(fc.weight.grad.numpy(), np.tile(x.numpy().sum(0), (3, 1)), rtol=1e-6)


def test_linear_bad_input_names_the_layer():
    fc = nn.Linear(3, 5)
    with pytest.raises(ValueError, match=r"Linear: expected input of shape \(\*, 3\).*got shape \(2, 4\)"):
        fc(minidl.randn(2, 4))
    with pytest.raises(ValueError, match="Linear"):
        fc(minidl.tensor(1.0))
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(-1, 2)
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 4\).*weight of shape \(5, 3\)"):
        F.linear(minidl.randn(2, 4), fc.weight)


def test_identity_and_flatten():
    x = minidl.randn(2, 3, 4, 5, requires_grad=True)
    assert nn.Identity(54, unused=True)(x) is x
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Flatten(2)(x).shape == (2, 3, 20)
    np.testing.assert_array_equal(nn.Flatten()(x).numpy(), x.numpy().reshape(2, 60))
    nn.Flatten()(x).sum().backward()
    assert x.grad.shape == x.shape
    with pytest.raises(ValueError, match="Flatten: start_dim=3"):
        nn.Flatten(3)(minidl.randn(2, 3))
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"


@given(shape=st.lists(sizes, min_size=1, max_size=3), data=st.data())
def test_pad_is_last_axis_first(shape, data):
    pairs = data.draw(st.integers(1, len(shape)))
    widths = data.draw(st.lists(st.integers(0, 2), min_size=2 * pairs, max_size=2 * pairs))
    x = minidl.randn(*shape, dtype=np.float64, requires_grad=True)
    y = F.pad(x, widths, value=1.5)
    expected_widths = [(0, 0)] * len(shape)
    for k in range(pairs):  # pair k pads axis -1 - k
        expected_widths[len(shape) - 1 - k] = (widths[2 * k], widths[2 * k + 1])
    np.testing.assert_array_equal(y.numpy(), np.pad(x.numpy(), expected_widths, constant_values=1.5))
    assert minidl.gradcheck(lambda t: F.pad(t, widths), x)


def test_pad_errors():
    x = minidl.randn(2, 3)
    with pytest.raises(ValueError, match="even number"):
        F.pad(x, (1,))
    with pytest.raises(ValueError, match="even number"):
        F.pad(x, (1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="negative"):
        F.pad(x, (-1, 0))
    with pytest.raises(NotImplementedError, match="reflect"):
        F.pad(x, (1, 1), mode="reflect")


def test_linear_refuses_float64_input_like_conv2d():
    """PyTorch: 'mat1 and mat2 must have the same dtype'. minidl names the layer and both dtypes,
    as Conv2d does, rather than promoting the float32 weight silently."""
    layer = nn.Linear(3, 2)
    with pytest.raises(TypeError, match="Linear: expected an input of dtype float32 like the weight, got dtype float64"):
        layer(minidl.zeros(4, 3, dtype=np.float64))
    with pytest.raises(TypeError, match="Conv2d: expected an input of dtype float32 like the weight, got dtype float64"):
        nn.Conv2d(3, 2, 1)(minidl.zeros(1, 3, 2, 2, dtype=np.float64))
    assert layer.double()(minidl.zeros(4, 3, dtype=np.float64)).dtype == np.float64


def test_linear_refuses_a_tuple():
    out = nn.LSTM(3, 3)(minidl.randn(2, 1, 3))
    with pytest.raises(TypeError, match=r"Linear: expected a Tensor as input, got a tuple of 2 \(an LSTM returns"):
        nn.Linear(3, 2)(out)


def test_functional_linear_refuses_mixed_dtypes_too():
    import minidl.nn.functional as F

    with pytest.raises(TypeError, match="linear: expected an input of dtype float32 like the weight, got dtype float64"):
        F.linear(minidl.zeros(2, 3, dtype=np.float64), minidl.zeros(4, 3))
    with pytest.raises(TypeError, match="linear: expected an input of dtype float64 like the bias, got dtype float32"):
        F.linear(minidl.zeros(2, 3), minidl.zeros(4, 3), minidl.zeros(4, dtype=np.float64))
