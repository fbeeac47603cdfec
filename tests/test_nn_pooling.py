"""Pooling layers: each is its functional form with the stored arguments; gradients; errors."""

import numpy as np
import pytest

import minidl
import minidl.nn as nn
import minidl.nn.functional as F


def test_maxpool2d_defaults_and_matches_functional(device):
    pool = nn.MaxPool2d(2)
    assert pool.stride == 2 and pool.padding == 0 and pool.dilation == 1
    assert repr(pool) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    x = minidl.randn(2, 3, 7, 6, device=device)
    np.testing.assert_array_equal(pool(x).numpy(), F.max_pool2d(x, 2).numpy())
    assert pool(x).shape == (2, 3, 3, 3)
    strided = nn.MaxPool2d((3, 2), stride=(2, 1), padding=1, dilation=(1, 2), ceil_mode=True)
    np.testing.assert_array_equal(
        strided(x).numpy(), F.max_pool2d(x, (3, 2), (2, 1), 1, (1, 2), ceil_mode=True).numpy()
    )
    y, indices = nn.MaxPool2d(2, return_indices=True)(x)
    np.testing.assert_array_equal(
        np.take_along_axis(x.numpy().reshape(2, 3, -1), indices.numpy().reshape(2, 3, -1), axis=2).reshape(y.shape),
        y.numpy(),
    )


def test_maxpool1d_avgpool_modules_match_functional(device):
    x1, x2 = minidl.randn(2, 3, 9, device=device), minidl.randn(2, 3, 6, 7, device=device)
    np.testing.assert_array_equal(nn.MaxPool1d(3, 2, 1)(x1).numpy(), F.max_pool1d(x1, 3, 2, 1).numpy())
    np.testing.assert_array_equal(nn.AvgPool1d(3)(x1).numpy(), F.avg_pool1d(x1, 3).numpy())
    avg = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_array_equal(avg(x2).numpy(), F.avg_pool2d(x2, 3, 2, 1, True, False).numpy())
    assert nn.AvgPool2d(2, divisor_override=1)(x2).shape == (2, 3, 3, 3)
    np.testing.assert_allclose(
        nn.AvgPool2d(2, divisor_override=1)(x2).numpy(), 4 * nn.AvgPool2d(2)(x2).numpy(), rtol=1e-5, atol=1e-6
    )
    assert repr(nn.AvgPool2d(2)) == "AvgPool2d(kernel_size=2, stride=2, padding=0)"


def test_adaptive_pool_modules(device):
    x = minidl.randn(2, 4, 7, 5, device=device)
    np.testing.assert_allclose(
        nn.AdaptiveAvgPool2d(1)(x).numpy(), x.numpy().mean(axis=(2, 3), keepdims=True), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(nn.AdaptiveMaxPool2d(1)(x).numpy(), x.numpy().max(axis=(2, 3), keepdims=True))
    assert nn.AdaptiveAvgPool2d((3, None))(x).shape == (2, 4, 3, 5)
    assert nn.AdaptiveMaxPool2d((2, 3))(x).shape == (2, 4, 2, 3)
    assert nn.AdaptiveAvgPool1d(2)(minidl.randn(2, 4, 7, device=device)).shape == (2, 4, 2)
    assert repr(nn.AdaptiveAvgPool2d((2, 2))) == "AdaptiveAvgPool2d(output_size=(2, 2))"


@pytest.mark.parametrize(
    "layer",
    [
        nn.MaxPool2d(3, 2, 1), nn.MaxPool2d(2, ceil_mode=True), nn.AvgPool2d(3, 2, 1, count_include_pad=False),
        nn.AvgPool2d(2, ceil_mode=True), nn.AdaptiveAvgPool2d((2, 3)), nn.AdaptiveMaxPool2d((3, 2)),
    ],
    ids=repr,
)
def test_pool_layers_gradcheck(layer, device):
    values = np.random.default_rng(0).permutation(2 * 2 * 5 * 5).reshape(2, 2, 5, 5) * 0.01  # no ties
    x = minidl.tensor(values, device=device, requires_grad=True)
    assert minidl.gradcheck(layer, x)


def test_pool_layers_have_no_parameters_and_report_bad_inputs():
    for layer in (nn.MaxPool2d(2), nn.AvgPool1d(2), nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d(1)):
        assert list(layer.parameters()) == []
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 4-D input \(N, C, H, W\)"):
        nn.MaxPool2d(2)(minidl.randn(4, 4))
    with pytest.raises(ValueError, match=r"avg_pool1d: expected a 3-D input \(N, C, L\)"):
        nn.AvgPool1d(2)(minidl.randn(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"max_pool2d: the kernel \(5, dilation 1, so 5 wide\) is larger"):
        nn.MaxPool2d(5)(minidl.randn(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: expected output_size to be an int >= 1"):
        nn.AdaptiveAvgPool2d((0, 1))(minidl.randn(1, 1, 4, 4))
