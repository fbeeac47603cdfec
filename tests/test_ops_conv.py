"""conv1d, conv2d, unfold, fold: forward against direct sums, gradients by gradcheck in float64."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
import minidl.nn.functional as F
from minidl.ops.conv import Col2Im, Im2Col

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# --------------------------------------------------------------------------- #
# Plain references: nested loops, no im2col
# --------------------------------------------------------------------------- #
def conv2d_reference(x, w, b, stride, padding, dilation, groups):
    """y[n, o, p, q] = b[o] + sum_{c, i, j} w[o, c, i, j] x_pad[n, g*Cg + c, p*sh + i*dh, q*sw + j*dw]."""
    (sh, sw), (dh, dw) = stride, dilation
    (top, bottom), (left, right) = padding
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, _, h, wd = x.shape
    out, cg, kh, kw = w.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, out, oh, ow))
    for o in range(out):
        g = o // (out // groups)
        for p in range(oh):
            for q in range(ow):
                total = np.zeros(n) if b is None else np.full(n, b[o], dtype=float)
                for c in range(cg):
                    for i in range(kh):
                        for j in range(kw):
                            total += w[o, c, i, j] * x[:, g * cg + c, p * sh + i * dh, q * sw + j * dw]
                y[:, o, p, q] = total
    return y


def unfold_reference(x, kernel, stride, dilation):
    """cols[n, (c, i, j), (p, q)] = x[n, c, p*sh + i*dh, q*sw + j*dw], window by window."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    n, c, h, w = x.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    cols = np.zeros((n, c * kh * kw, oh * ow))
    for p in range(oh):
        for q in range(ow):
            patch = x[:, :, p * sh : p * sh + dh * (kh - 1) + 1 : dh, q * sw : q * sw + dw * (kw - 1) + 1 : dw]
            cols[:, :, p * ow + q] = patch.reshape(n, -1)
    return cols


@st.composite
def conv_cases(draw, spatial_dims=2):
    """A valid convolution: shapes, stride, padding, dilation, groups (size-1 axes included)."""
    groups = draw(st.sampled_from([1, 1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(spatial_dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(spatial_dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(spatial_dims))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(spatial_dims))
    size = tuple(
        max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 3)) for k, d, p in zip(kernel, dilation, padding)
    )
    return dict(
        n=draw(st.integers(1, 2)), cin=cin, cout=cout, size=size, kernel=kernel, stride=stride,
        padding=padding, dilation=dilation, groups=groups, bias=draw(st.booleans()),
    )


def make(case, rng, device, dtype=np.float64):
    x = rng.standard_normal((case["n"], case["cin"]) + case["size"]).astype(dtype)
    w = rng.standard_normal((case["cout"], case["cin"] // case["groups"]) + case["kernel"]).astype(dtype)
    b = rng.standard_normal(case["cout"]).astype(dtype) if case["bias"] else None
    tensors = [minidl.tensor(a, device=device, requires_grad=True) if a is not None else None for a in (x, w, b)]
    return (x, w, b), tensors


# --------------------------------------------------------------------------- #
# Forward
# --------------------------------------------------------------------------- #
@fixture_ok
@given(case=conv_cases())
def test_conv2d_matches_direct_sum(case, device):
    (x, w, b), (xt, wt, bt) = make(case, np.random.default_rng(1), device)
    y = F.conv2d(xt, wt, bt, case["stride"], case["padding"], case["dilation"], case["groups"])
    pads = tuple((p, p) for p in case["padding"])
    expected = conv2d_reference(x, w, b, case["stride"], pads, case["dilation"], case["groups"])
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-10)


@fixture_ok
@given(case=conv_cases(spatial_dims=1))
def test_conv1d_matches_direct_sum(case, device):
    (x, w, b), (xt, wt, bt) = make(case, np.random.default_rng(2), device)
    y = F.conv1d(xt, wt, bt, case["stride"][0], case["padding"][0], case["dilation"][0], case["groups"])
    expected = conv2d_reference(
        x[:, :, None], w[:, :, None], b, (1,) + case["stride"], ((0, 0), (case["padding"][0],) * 2),
        (1,) + case["dilation"], case["groups"],
    )[:, :, 0]
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kernel,dilation", [((3, 3), (1, 1)), ((2, 4), (1, 1)), ((3, 2), (2, 3)), ((1, 1), (1, 1))])
def test_conv2d_same_padding_keeps_size_and_pads_the_odd_pixel_after(kernel, dilation, device):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((4, 3) + kernel)
    y = F.conv2d(minidl.tensor(x, device=device), minidl.tensor(w, device=device), padding="same", dilation=dilation)
    assert y.shape == (2, 4, 5, 6)
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    pads = tuple((t // 2, t - t // 2) for t in totals)  # PyTorch: the extra pixel goes after
    np.testing.assert_allclose(y.numpy(), conv2d_reference(x, w, None, (1, 1), pads, dilation, 1), atol=1e-10)
    valid = F.conv2d(minidl.tensor(x, device=device), minidl.tensor(w, device=device), padding="valid")
    expected = conv2d_reference(x, w, None, (1, 1), ((0, 0),) * 2, (1, 1), 1)
    np.testing.assert_allclose(valid.numpy(), expected, atol=1e-10)


def test_conv1d_same_padding_and_unbatched_inputs(device):
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((3, 7)), rng.standard_normal((2, 3, 4)), rng.standard_normal(2)
    xt, wt, bt = (minidl.tensor(a, device=device) for a in (x, w, b))
    y = F.conv1d(xt, wt, bt, padding="same")
    assert y.shape == (2, 7)
    np.testing.assert_allclose(y.numpy(), F.conv1d(xt[None], wt, bt, padding="same").numpy()[0])
    expected = conv2d_reference(x[None, :, None], w[:, :, None], b, (1, 1), ((0, 0), (1, 2)), (1, 1), 1)
    np.testing.assert_allclose(y.numpy(), expected[0, :, 0], atol=1e-10)
    image = rng.standard_normal((3, 4, 5))
    y2 = F.conv2d(minidl.tensor(image, device=device), minidl.tensor(rng.standard_normal((2, 3, 2, 2)), device=device))
    assert y2.shape == (2, 3, 4)


def test_conv2d_float32_stays_float32(device):
    x, w = minidl.randn(2, 3, 8, 8, device=device), minidl.randn(4, 3, 3, 3, device=device)
    y = F.conv2d(x, w, minidl.zeros(4, device=device), padding=1)
    assert y.dtype == np.float32 and y.shape == (2, 4, 8, 8) and y.device == device
    expected = conv2d_reference(x.numpy(), w.numpy(), None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-4, atol=1e-4)


@fixture_ok
@given(case=conv_cases())
def test_unfold_fold_match_windows_and_are_adjoint(case, device):
    rng = np.random.default_rng(5)
    shape = (case["n"], case["cin"]) + case["size"]
    kernel, stride, dilation, padding = case["kernel"], case["stride"], case["dilation"], case["padding"]
    x = rng.standard_normal(shape)
    cols = F.unfold(minidl.tensor(x, device=device), kernel, dilation, padding, stride)
    padded = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    np.testing.assert_array_equal(cols.numpy(), unfold_reference(padded, kernel, stride, dilation))
    # fold is unfold's adjoint: <unfold(x), c> == <x, fold(c)>
    c = rng.standard_normal(cols.shape)
    back = F.fold(minidl.tensor(c, device=device), shape[2:], kernel, dilation, padding, stride)
    assert back.shape == shape
    np.testing.assert_allclose((cols.numpy() * c).sum(), (x * back.numpy()).sum(), rtol=1e-10)


# --------------------------------------------------------------------------- #
# Backward
# --------------------------------------------------------------------------- #
@fixture_ok
@given(case=conv_cases())
def test_conv2d_gradcheck(case, device):
    _, (xt, wt, bt) = make(case, np.random.default_rng(6), device)
    inputs = (xt, wt) if bt is None else (xt, wt, bt)

    def fn(x, w, b=None):
        return F.conv2d(x, w, b, case["stride"], case["padding"], case["dilation"], case["groups"])

    assert minidl.gradcheck(fn, inputs)


@fixture_ok
@given(case=conv_cases(spatial_dims=1))
def test_conv1d_gradcheck(case, device):
    _, (xt, wt, bt) = make(case, np.random.default_rng(7), device)
    inputs = (xt, wt) if bt is None else (xt, wt, bt)

    def fn(x, w, b=None):
        return F.conv1d(x, w, b, case["stride"], case["padding"], case["dilation"], case["groups"])

    assert minidl.gradcheck(fn, inputs)


def test_conv2d_gradcheck_same_padding_asymmetric(device):
    rng = np.random.default_rng(8)
    x = minidl.tensor(rng.standard_normal((2, 2, 4, 5)), device=device, requires_grad=True)
    w = minidl.tensor(rng.standard_normal((3, 2, 2, 4)), device=device, requires_grad=True)
    assert minidl.gradcheck(lambda x, w: F.conv2d(x, w, padding="same"), (x, w))


def test_conv2d_second_derivatives(device):
    rng = np.random.default_rng(9)
    x = minidl.tensor(rng.standard_normal((2, 2, 5, 4)), device=device, requires_grad=True)
    w = minidl.tensor(rng.standard_normal((2, 1, 2, 3)), device=device, requires_grad=True)
    b = minidl.tensor(rng.standard_normal(2), device=device, requires_grad=True)
    fn = lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)  # noqa: E731
    assert minidl.gradgradcheck(fn, (x, w, b))


def test_im2col_and_col2im_are_each_others_backward(device):
    rng = np.random.default_rng(10)
    x = minidl.tensor(rng.standard_normal((1, 2, 5, 5)), device=device, requires_grad=True)
    assert minidl.gradcheck(lambda x: Im2Col((2, 3), (2, 1), (1, 2))(x), x)
    cols = minidl.tensor(rng.standard_normal((2 * 6, 1 * 2 * 1)), device=device, requires_grad=True)
    assert minidl.gradcheck(lambda c: Col2Im((1, 2, 5, 5), (2, 3), (2, 1), (1, 2))(c), cols)
    assert minidl.gradgradcheck(lambda c: Col2Im((1, 2, 5, 5), (2, 3), (2, 1), (1, 2))(c) ** 2, cols)


def test_no_gradient_is_computed_for_an_input_that_does_not_need_one(device):
    x = minidl.randn(2, 3, 6, 6, device=device)  # like the first layer's images
    w = minidl.randn(4, 3, 3, 3, device=device, requires_grad=True)
    F.conv2d(x, w).sum().backward()
    assert x.grad is None and w.grad.shape == w.shape


# --------------------------------------------------------------------------- #
# Bad inputs
# --------------------------------------------------------------------------- #
def test_conv_errors_name_the_op_and_what_was_expected(device):
    x, w = minidl.randn(2, 3, 6, 6, device=device), minidl.randn(4, 3, 3, 3, device=device)
    with pytest.raises(ValueError, match=r"conv2d: the input has 5 channels but the weight .* expects 3"):
        F.conv2d(minidl.randn(2, 5, 6, 6, device=device), w)
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input \(N, C, H, W\).*got shape \(6, 6\)"):
        F.conv2d(minidl.randn(6, 6, device=device), w)
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D weight"):
        F.conv2d(x, minidl.randn(4, 3, 3, device=device))
    with pytest.raises(ValueError, match=r"conv2d: the kernel \(3x3.*does not fit in the padded input \(2x2\)"):
        F.conv2d(minidl.randn(1, 3, 2, 2, device=device), w)
    with pytest.raises(ValueError, match=r"conv2d: padding='same' needs stride 1"):
        F.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"conv2d: expected padding to be an int, a tuple, 'valid' or 'same'"):
        F.conv2d(x, w, padding="full")
    with pytest.raises(ValueError, match=r"conv2d: expected stride to be an int >= 1"):
        F.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match=r"conv2d: expected padding to be an int >= 0 or a tuple of 2"):
        F.conv2d(x, w, padding=(1, 1, 1))
    with pytest.raises(ValueError, match=r"conv2d: expected a bias of shape \(4,\)"):
        F.conv2d(x, w, minidl.zeros(3, device=device))
    with pytest.raises(ValueError, match=r"conv2d: out_channels \(4, weight.shape\[0\]\) must be divisible by groups"):
        F.conv2d(x, minidl.randn(4, 1, 3, 3, device=device), groups=3)
    with pytest.raises(TypeError, match=r"conv2d: expected an input of dtype float32 like the weight, got dtype float64"):
        F.conv2d(x.double(), w)
    with pytest.raises(ValueError, match=r"conv1d: expected a 3-D input \(N, C, L\)"):
        F.conv1d(x, minidl.randn(4, 3, 3, device=device))
    with pytest.raises(ValueError, match=r"fold: expected input \(N, C\*2\*2, 9\)"):
        F.fold(minidl.randn(1, 8, 10, device=device), (4, 4), 2)
    with pytest.raises(ValueError, match=r"unfold: expected a 4-D input"):
        F.unfold(minidl.randn(3, 6, 6, device=device), 2)
