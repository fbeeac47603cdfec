"""max/avg/adaptive pooling: forward window by window, gradients routed exactly, gradcheck in float64."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import minidl
import minidl.nn.functional as F

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# --------------------------------------------------------------------------- #
# Plain references: one window at a time
# --------------------------------------------------------------------------- #
def output_size(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    return out - 1 if ceil_mode and (out - 1) * s >= size + p else out


def max_pool_reference(x, kernel, stride, padding, dilation, ceil_mode=False):
    """(y, gradient routing, flat indices): for each window, its first maximum among the real pixels."""
    n, c, h, w = x.shape
    oh, ow = (output_size(*a, ceil_mode) for a in zip((h, w), kernel, stride, padding, dilation))
    y, index = np.zeros((n, c, oh, ow)), np.zeros((n, c, oh, ow), dtype=np.int64)
    for p in range(oh):
        for q in range(ow):
            rows = [p * stride[0] - padding[0] + i * dilation[0] for i in range(kernel[0])]
            cols = [q * stride[1] - padding[1] + j * dilation[1] for j in range(kernel[1])]
            cells = [(r, col) for r in rows for col in cols if 0 <= r < h and 0 <= col < w]
            if not cells:  # a dilated window can fall entirely in the padding: -inf, no winner
                y[:, :, p, q], index[:, :, p, q] = -np.inf, -1
                continue
            values = np.stack([x[:, :, r, col] for r, col in cells], axis=-1)  # (N, C, cells)
            first = values.argmax(axis=-1)  # numpy's argmax returns the first maximum
            y[:, :, p, q] = values.max(axis=-1)
            index[:, :, p, q] = np.array([r * w + col for r, col in cells])[first]
    return y, index


def avg_pool_reference(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True, divisor=None):
    n, c, h, w = x.shape
    oh, ow = (output_size(*a, 1, ceil_mode) for a in zip((h, w), kernel, stride, padding))
    y = np.zeros((n, c, oh, ow))
    for p in range(oh):
        for q in range(ow):
            top, left = p * stride[0] - padding[0], q * stride[1] - padding[1]
            bottom, right = min(top + kernel[0], h + padding[0]), min(left + kernel[1], w + padding[1])
            count = (bottom - top) * (right - left)  # PyTorch's window: clipped to the padded input
            rows, cols = slice(max(top, 0), min(bottom, h)), slice(max(left, 0), min(right, w))
            if not count_include_pad:
                count = (rows.stop - rows.start) * (cols.stop - cols.start)
            y[:, :, p, q] = x[:, :, rows, cols].sum(axis=(2, 3)) / (divisor or count)
    return y


def adaptive_reference(x, out, reduce):
    n, c, h, w = x.shape
    y = np.zeros((n, c) + out)
    for i in range(out[0]):
        for j in range(out[1]):
            rows = slice(i * h // out[0], math.ceil((i + 1) * h / out[0]))
            cols = slice(j * w // out[1], math.ceil((j + 1) * w / out[1]))
            y[:, :, i, j] = reduce(x[:, :, rows, cols], axis=(2, 3))
    return y


@st.composite
def pool_cases(draw, spatial_dims=2, dilation=True):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(spatial_dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(spatial_dims))
    dil = tuple(draw(st.integers(1, 2)) if dilation else 1 for _ in range(spatial_dims))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 4)) for k, d, p in zip(kernel, dil, padding))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size
    return dict(shape=shape, kernel=kernel, stride=stride, padding=padding, dilation=dil, ceil_mode=draw(st.booleans()))


def as_2d(case):
    """A 1-D case as the same pooling on a height-1 image."""
    if len(case["kernel"]) == 2:
        return case
    return dict(case, shape=case["shape"][:2] + (1,) + case["shape"][2:], kernel=(1,) + case["kernel"],
                stride=(1,) + case["stride"], padding=(0,) + case["padding"], dilation=(1,) + case["dilation"])


# --------------------------------------------------------------------------- #
# Max pooling
# --------------------------------------------------------------------------- #
@fixture_ok
@given(case=pool_cases())
def test_max_pool2d_matches_window_by_window(case, device):
    x = np.random.default_rng(1).standard_normal(case["shape"])
    y, index = F.max_pool2d(minidl.tensor(x, device=device), case["kernel"], case["stride"], case["padding"],
                            case["dilation"], case["ceil_mode"], return_indices=True)
    expected, expected_index = max_pool_reference(x, case["kernel"], case["stride"], case["padding"],
                                                  case["dilation"], case["ceil_mode"])
    np.testing.assert_array_equal(y.numpy(), expected)
    real = expected_index >= 0
    np.testing.assert_array_equal(index.numpy()[real], expected_index[real])


@fixture_ok
@given(case=pool_cases(spatial_dims=1))
def test_max_pool1d_matches_window_by_window(case, device):
    x = np.random.default_rng(2).standard_normal(case["shape"])
    y = F.max_pool1d(minidl.tensor(x, device=device), case["kernel"][0], case["stride"][0], case["padding"][0],
                     case["dilation"][0], case["ceil_mode"])
    c2 = as_2d(case)
    expected, _ = max_pool_reference(x[:, :, None], c2["kernel"], c2["stride"], c2["padding"], c2["dilation"],
                                     c2["ceil_mode"])
    np.testing.assert_array_equal(y.numpy(), expected[:, :, 0])


@fixture_ok
@given(case=pool_cases(), ties=st.booleans())
def test_max_pool2d_routes_each_gradient_to_one_first_maximum(case, ties, device):
    """Exact routing, ties included: gx[winner pixel] += gy; nothing else (as PyTorch)."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, case["shape"]).astype(float) if ties else rng.standard_normal(case["shape"])
    xt = minidl.tensor(x, device=device, requires_grad=True)
    y = F.max_pool2d(xt, case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"])
    gy = rng.standard_normal(y.shape)
    y.backward(minidl.tensor(gy, device=device))
    _, index = max_pool_reference(x, case["kernel"], case["stride"], case["padding"], case["dilation"],
                                  case["ceil_mode"])
    expected = np.zeros(x.shape[:2] + (x.shape[2] * x.shape[3],))
    n, c = np.indices(index.shape[:2])
    per_window = [a.reshape(*a.shape[:2], -1).transpose(2, 0, 1) for a in (index, gy)]
    for flat_index, g in zip(*per_window):  # window by window: its gradient to its winner pixel
        np.add.at(expected, (n, c, flat_index), np.where(flat_index >= 0, g, 0.0))
    np.testing.assert_allclose(xt.grad.numpy(), expected.reshape(x.shape), atol=1e-12)


@fixture_ok
@given(case=pool_cases())
def test_max_pool2d_gradcheck(case, device):
    x = np.random.default_rng(4).permutation(np.arange(np.prod(case["shape"]))).reshape(case["shape"]) * 0.01
    xt = minidl.tensor(x, device=device, requires_grad=True)  # distinct values: no ties, no kinks

    def fn(t):
        return F.max_pool2d(t, case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"])

    assume(np.isfinite(fn(xt).numpy()).all())  # a window wholly in the padding gives -inf
    assert minidl.gradcheck(fn, xt)


@fixture_ok
@given(case=pool_cases(spatial_dims=1))
def test_max_pool1d_gradcheck(case, device):
    x = np.random.default_rng(5).permutation(np.arange(np.prod(case["shape"]))).reshape(case["shape"]) * 0.01
    xt = minidl.tensor(x, device=device, requires_grad=True)
    c = case

    def fn(t):
        return F.max_pool1d(t, c["kernel"], c["stride"], c["padding"], c["dilation"], c["ceil_mode"])

    assume(np.isfinite(fn(xt).numpy()).all())  # a window wholly in the padding gives -inf
    assert minidl.gradcheck(fn, xt)


def test_max_pool_second_derivatives_and_nan(device):
    x = minidl.tensor(np.random.default_rng(6).standard_normal((2, 2, 5, 5)), device=device, requires_grad=True)
    assert minidl.gradgradcheck(lambda t: F.max_pool2d(t, 3, 2, 1) ** 2, x)
    nan = minidl.tensor([[[[1.0, np.nan], [3.0, 2.0]]]], device=device, requires_grad=True)
    y = F.max_pool2d(nan, 2)
    y.sum().backward()
    assert np.isnan(y.item()) and nan.grad.numpy().ravel().tolist() == [0.0, 1.0, 0.0, 0.0]


def test_max_pool_unbatched_and_float32(device):
    x = minidl.randn(3, 6, 7, device=device)
    y = F.max_pool2d(x, 2)
    assert y.shape == (3, 3, 3) and y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), F.max_pool2d(x[None], 2).numpy()[0])
    assert F.max_pool1d(minidl.randn(3, 7, device=device), 3, 2).shape == (3, 3)


# --------------------------------------------------------------------------- #
# Average pooling
# --------------------------------------------------------------------------- #
@fixture_ok
@given(case=pool_cases(dilation=False), count_include_pad=st.booleans(), override=st.sampled_from([None, None, 3]))
def test_avg_pool2d_matches_window_by_window(case, count_include_pad, override, device):
    x = np.random.default_rng(7).standard_normal(case["shape"])
    y = F.avg_pool2d(minidl.tensor(x, device=device), case["kernel"], case["stride"], case["padding"],
                     case["ceil_mode"], count_include_pad, override)
    expected = avg_pool_reference(x, case["kernel"], case["stride"], case["padding"], case["ceil_mode"],
                                  count_include_pad, override)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


@fixture_ok
@given(case=pool_cases(spatial_dims=1, dilation=False), count_include_pad=st.booleans())
def test_avg_pool1d_matches_window_by_window(case, count_include_pad, device):
    x = np.random.default_rng(8).standard_normal(case["shape"])
    y = F.avg_pool1d(minidl.tensor(x, device=device), case["kernel"], case["stride"], case["padding"],
                     case["ceil_mode"], count_include_pad)
    c2 = as_2d(case)
    expected = avg_pool_reference(x[:, :, None], c2["kernel"], c2["stride"], c2["padding"], c2["ceil_mode"],
                                  count_include_pad)
    np.testing.assert_allclose(y.numpy(), expected[:, :, 0], rtol=1e-12, atol=1e-12)


@fixture_ok
@given(case=pool_cases(dilation=False), count_include_pad=st.booleans())
def test_avg_pool2d_gradcheck(case, count_include_pad, device):
    xt = minidl.tensor(np.random.default_rng(9).standard_normal(case["shape"]), device=device, requires_grad=True)
    c = case
    assert minidl.gradcheck(
        lambda t: F.avg_pool2d(t, c["kernel"], c["stride"], c["padding"], c["ceil_mode"], count_include_pad), xt
    )


def test_avg_pool_spreads_the_gradient_evenly_and_twice_differentiable(device):
    x = minidl.randn(1, 1, 4, 4, dtype=np.float64, device=device, requires_grad=True)
    F.avg_pool2d(x, 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full((1, 1, 4, 4), 0.25))
    assert minidl.gradgradcheck(lambda t: F.avg_pool2d(t, 3, 2, 1) ** 2, x)
    y = minidl.randn(2, 5, dtype=np.float64, device=device, requires_grad=True)
    assert minidl.gradcheck(lambda t: F.avg_pool1d(t, 2, 1, 1, count_include_pad=False), y)


# --------------------------------------------------------------------------- #
# Adaptive pooling
# --------------------------------------------------------------------------- #
out_sizes = st.tuples(st.integers(1, 5), st.integers(1, 5))


@fixture_ok
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7)), out=out_sizes)
def test_adaptive_pools_match_bin_by_bin(shape, out, device):
    x = np.random.default_rng(10).standard_normal(shape)
    xt = minidl.tensor(x, device=device)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(xt, out).numpy(), adaptive_reference(x, out, np.mean), atol=1e-12)
    np.testing.assert_array_equal(F.adaptive_max_pool2d(xt, out).numpy(), adaptive_reference(x, out, np.max))
    one_d = F.adaptive_avg_pool1d(minidl.tensor(x[:, :, 0], device=device), out[1])
    expected = adaptive_reference(x[:, :, :1], (1, out[1]), np.mean)[:, :, 0]
    np.testing.assert_allclose(one_d.numpy(), expected, atol=1e-12)


@fixture_ok
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 6), st.integers(1, 6)), out=out_sizes)
def test_adaptive_pools_gradcheck(shape, out, device):
    x = np.random.default_rng(11).permutation(np.arange(np.prod(shape))).reshape(shape) * 0.01
    xt = minidl.tensor(x, device=device, requires_grad=True)
    assert minidl.gradcheck(lambda t: F.adaptive_avg_pool2d(t, out), xt)
    assert minidl.gradcheck(lambda t: F.adaptive_max_pool2d(t, out), xt)


def test_adaptive_pools_global_and_none_sizes(device):
    x = minidl.randn(2, 3, 5, 4, device=device)
    expected = x.numpy().mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, 1).numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(F.adaptive_max_pool2d(x, 1).numpy(), x.numpy().max(axis=(2, 3), keepdims=True))
    assert F.adaptive_avg_pool2d(x, (None, 2)).shape == (2, 3, 5, 2)
    assert F.adaptive_max_pool2d(x[0], (3, None)).shape == (3, 3, 4)
    ties = minidl.tensor(np.ones((1, 1, 2, 2)), device=device, requires_grad=True)
    F.adaptive_max_pool2d(ties, 1).sum().backward()
    assert ties.grad.numpy().ravel().tolist() == [1.0, 0.0, 0.0, 0.0]  # one winner, the first


# --------------------------------------------------------------------------- #
# Bad inputs
# --------------------------------------------------------------------------- #
def test_pool_errors_name_the_op_and_what_was_expected(device):
    x = minidl.randn(2, 3, 6, 6, device=device)
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 4-D input \(N, C, H, W\).*got shape \(6, 6\)"):
        F.max_pool2d(minidl.randn(6, 6, device=device), 2)
    with pytest.raises(ValueError, match=r"max_pool1d: expected a 3-D input \(N, C, L\)"):
        F.max_pool1d(x, 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: padding 2 must be at most half the kernel size 3"):
        F.avg_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"max_pool2d: the kernel \(7, dilation 1, so 7 wide\) is larger than"):
        F.max_pool2d(x, 7)
    with pytest.raises(ValueError, match=r"max_pool2d: expected kernel_size to be an int >= 1"):
        F.max_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"avg_pool2d: expected stride to be an int >= 1 or a tuple of 2"):
        F.avg_pool2d(x, 2, stride=(1, 2, 3))
    with pytest.raises(ValueError, match=r"avg_pool2d: expected divisor_override to be a positive int"):
        F.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(TypeError, match=r"max_pool2d: expected a floating-point input, got dtype int64"):
        F.max_pool2d(minidl.tensor(np.ones((1, 1, 4, 4), dtype=np.int64), device=device), 2)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: expected output_size to be an int >= 1 or a tuple of 2"):
        F.adaptive_avg_pool2d(x, (1, 2, 3))
    with pytest.raises(ValueError, match=r"adaptive_max_pool2d: expected output_size to be an int >= 1"):
        F.adaptive_max_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: expected a 4-D input"):
        F.adaptive_avg_pool2d(minidl.randn(4, device=device), 1)
