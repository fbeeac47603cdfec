"""Conv1d and Conv2d layers: parameters and PyTorch's initialisation, forward, gradients, errors."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
import minidl.nn as nn
import minidl.nn.functional as F

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def gradcheck_module(module, x):
    """gradcheck of module(x) with respect to x and every parameter (swapped in as float64 copies)."""
    names = [n for n, _ in module.named_parameters()]

    def run(x, *params):
        saved = dict(module._parameters)
        module._parameters.update(zip(names, params))
        try:
            return module(x)
        finally:
            module._parameters.update(saved)

    params = [minidl.Tensor(p.data, requires_grad=True) for p in module.parameters()]
    return minidl.gradcheck(run, (x, *params), names=["input"] + names)


def test_conv2d_parameters_follow_pytorch():
    conv = nn.Conv2d(3, 32, 3)
    assert conv.weight.shape == (32, 3, 3, 3) and conv.bias.shape == (32,)
    assert conv.weight.dtype == np.float32 and conv.weight.requires_grad
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]
    assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (1, 1), (0, 0))
    assert (conv.dilation, conv.groups) == ((1, 1), 1)
    assert repr(conv) == "Conv2d(3, 32, kernel_size=(3, 3), stride=(1, 1))"
    grouped = nn.Conv2d(4, 6, (2, 3), stride=2, padding=1, dilation=2, groups=2, bias=False)
    assert grouped.weight.shape == (6, 2, 2, 3) and grouped.bias is None
    assert list(grouped.parameters()) == [grouped.weight]
    assert "groups=2" in repr(grouped) and "bias=False" in repr(grouped) and "dilation=(2, 2)" in repr(grouped)
    assert nn.Conv1d(4, 8, 5).weight.shape == (8, 4, 5)
    assert nn.Conv2d(2, 2, 1, dtype=np.float64).weight.dtype == np.float64


def test_default_initialisation_is_kaiming_uniform_a_sqrt5():
    """weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in/groups * KH * KW."""
    conv = nn.Conv2d(16, 64, 3, groups=2)
    bound = 1 / math.sqrt(8 * 9)
    w, b = conv.weight.numpy(), conv.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound  # the std of U(-b, b)
    assert abs(w.mean()) < 0.02 * bound
    minidl.manual_seed(3)
    first = nn.Conv1d(3, 4, 5).weight.numpy()
    minidl.manual_seed(3)
    np.testing.assert_array_equal(first, nn.Conv1d(3, 4, 5).weight.numpy())
    assert np.abs(first).max() <= 1 / math.sqrt(15)


def test_forward_is_the_functional_form_with_the_layer_parameters(device):
    conv = nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)).to(device)
    x = minidl.randn(2, 3, 7, 6, device=device)
    expected = F.conv2d(x, conv.weight, conv.bias, (2, 1), (1, 0), (1, 2))
    np.testing.assert_array_equal(conv(x).numpy(), expected.numpy())
    same = nn.Conv1d(2, 3, 4, padding="same", bias=False).to(device)
    assert same(minidl.randn(5, 2, 9, device=device)).shape == (5, 3, 9)
    assert same(minidl.randn(2, 9, device=device)).shape == (3, 9)  # unbatched


def test_a_hand_computed_convolution():
    conv = nn.Conv2d(1, 1, 2, bias=True)
    with minidl.no_grad():
        conv.weight.data[...] = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
        conv.bias.data[...] = 0.5
    x = minidl.tensor(np.arange(9.0).reshape(1, 1, 3, 3), dtype=np.float32)
    # window at (0, 0) is [[0, 1], [3, 4]]: 0*1 + 1*2 + 3*3 + 4*4 + 0.5 = 27.5
    np.testing.assert_allclose(conv(x).numpy(), [[[[27.5, 37.5], [57.5, 67.5]]]])


@fixture_ok
@given(
    stride=st.integers(1, 2), padding=st.sampled_from([0, 1, "same", "valid"]), dilation=st.integers(1, 2),
    groups=st.sampled_from([1, 2]), bias=st.booleans(), size=st.integers(4, 6),
)
def test_conv2d_layer_gradcheck_inputs_and_parameters(stride, padding, dilation, groups, bias, size, device):
    if padding == "same":
        stride = 1
    conv = nn.Conv2d(2, 2 * groups, (2, 3), stride, padding, dilation, groups, bias).to(device).double()
    x = minidl.randn(2, 2, size, size + 1, dtype=np.float64, device=device, requires_grad=True)
    assert gradcheck_module(conv, x)


@fixture_ok
@given(
    stride=st.integers(1, 3), padding=st.sampled_from([0, 2, "same"]), dilation=st.integers(1, 3),
    size=st.integers(7, 9),
)
def test_conv1d_layer_gradcheck_inputs_and_parameters(stride, padding, dilation, size, device):
    if padding == "same":
        stride = 1
    conv = nn.Conv1d(3, 2, 3, stride, padding, dilation).to(device).double()
    x = minidl.randn(2, 3, size, dtype=np.float64, device=device, requires_grad=True)
    assert gradcheck_module(conv, x)


def test_a_small_cnn_learns(device):
    """conv -> relu -> maxpool -> conv -> relu -> global pool -> linear: a few SGD steps lower the loss."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    ).to(device)
    x, y = minidl.randn(16, 3, 8, 8, device=device), minidl.tensor(np.arange(16) % 2, device=device)
    x.data[y.data == 1] += 0.5  # separable: class 1 is brighter
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(x), y)
        model.zero_grad()
        loss.backward()
        with minidl.no_grad():
            for p in model.parameters():
                p.data -= 0.1 * p.grad.data
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_conv_layer_errors_name_the_layer():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2d: expected an input with 3 channels \(in_channels=3\), got 1"):
        conv(minidl.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"Conv2d: expected a 4-D input \(N, C, H, W\) or a 3-D unbatched"):
        conv(minidl.randn(2, 2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"Conv1d: expected a 3-D input \(N, C, L\)"):
        nn.Conv1d(3, 4, 3)(minidl.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"Conv2d: in_channels \(3\) and out_channels \(4\) must both be divisible"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"Conv2d: padding='same' needs stride 1"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"Conv1d: expected padding to be an int, a tuple, 'valid' or 'same'"):
        nn.Conv1d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match=r"Conv2d: expected kernel_size to be an int >= 1"):
        nn.Conv2d(3, 4, 0)
    with pytest.raises(ValueError, match=r"Conv2d: expected out_channels to be a positive int, got 0"):
        nn.Conv2d(3, 0, 3)
    with pytest.raises(ValueError, match=r"conv2d: the kernel \(3x3.*does not fit in the padded input \(2x2\)"):
        conv(minidl.randn(1, 3, 2, 2))
