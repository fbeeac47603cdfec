"""The conv family of the backend table: im2col and col2im with padding inside, and the fused
Convolution Function that keeps no columns.

Three versions of im2col/col2im are compared with a plain loop over every column entry:
the NumPy twins, the CUDA source itself (conv.cu compiled for the CPU by g++, one "thread"
walking the grid-stride loop), and the CuPy glue (arguments checked against the kernels'
C signatures, then run through the EMULATE adapters, as minidl's CPU stand-in for cupy does).
"""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn.functional as F
from minidl import backend, kernels
from minidl.kernels import conv as kconv
from minidl.kernels.conv import CupyConv, NumpyConv
from minidl.ops.conv import Col2Im, Convolution, Im2Col
from kernel_harness import KernelFamily, c_arguments, single_thread_library  # (tests/ is on sys.path)


# --------------------------------------------------------------------------- #
# Plain references: one column entry at a time
# --------------------------------------------------------------------------- #
def windows(shape, kernel, stride, padding, dilation):
    """Every (row, column, n, c, h, w, inside) of im2col: column entry (row, column) reads pixel (h, w)."""
    n, c, h, w = shape
    (kh, kw), (sh, sw), ((top, bottom), (left, right)), (dh, dw) = kernel, stride, padding, dilation
    oh, ow = (top + h + bottom - dh * (kh - 1) - 1) // sh + 1, (left + w + right - dw * (kw - 1) - 1) // sw + 1
    for ci, i, j, ni, p, q in itertools.product(range(c), range(kh), range(kw), range(n), range(oh), range(ow)):
        r, s = p * sh + i * dh - top, q * sw + j * dw - left
        yield (ci * kh + i) * kw + j, (ni * oh + p) * ow + q, ni, ci, r, s, 0 <= r < h and 0 <= s < w
    return oh, ow


def im2col_loop(x, kernel, stride, padding, dilation, pad_value=0.0):
    entries = list(windows(x.shape, kernel, stride, padding, dilation))
    cols = np.zeros((max(e[0] for e in entries) + 1, max(e[1] for e in entries) + 1), dtype=x.dtype)
    for row, column, n, c, r, s, inside in entries:
        cols[row, column] = x[n, c, r, s] if inside else pad_value
    return cols


def col2im_loop(cols, shape, kernel, stride, padding, dilation):
    image = np.zeros(shape, dtype=cols.dtype)
    for row, column, n, c, r, s, inside in windows(shape, kernel, stride, padding, dilation):
        if inside:
            image[n, c, r, s] += cols[row, column]
    return image


@st.composite
def geometries(draw):
    """An image shape, kernel, stride, padding (four sides drawn apart) and dilation that fit."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    size = tuple(max(1, d * (k - 1) + 1 - sum(p)) + draw(st.integers(0, 4))
                 for k, d, p in zip(kernel, dilation, padding))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size
    return shape, kernel, stride, padding, dilation


def laid_out(a, layout):
    """``a`` with the same values in another memory layout."""
    if layout == "channel-major":  # what conv2d outputs are: (C, N, H, W) memory, (N, C, H, W) shape
        return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    if layout == "sliced":  # not one dense block: every other column of a wider array
        wide = np.zeros(a.shape[:3] + (2 * a.shape[3],), dtype=a.dtype)
        wide[..., ::2] = a
        return wide[..., ::2]
    return np.ascontiguousarray(a)


layouts = st.sampled_from(["nchw", "channel-major", "sliced"])
pad_values = st.sampled_from([0.0, -np.inf, 1.5])


# --------------------------------------------------------------------------- #
# The NumPy twins
# --------------------------------------------------------------------------- #
@given(geometry=geometries(), layout=layouts, pad_value=pad_values)
def test_twin_im2col_matches_the_loop(geometry, layout, pad_value):
    shape, *args = geometry
    x = laid_out(np.random.default_rng(0).standard_normal(shape), layout)
    np.testing.assert_array_equal(NumpyConv.im2col(x, *args, pad_value), im2col_loop(x, *args, pad_value))


@given(geometry=geometries())
def test_twin_col2im_matches_the_loop_and_is_the_adjoint(geometry):
    shape, *args = geometry
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    cols = NumpyConv.im2col(x, *args)
    y = rng.standard_normal(cols.shape)
    image = NumpyConv.col2im(y, shape, *args)
    assert image.shape == shape
    np.testing.assert_allclose(image, col2im_loop(y, shape, *args), rtol=1e-12, atol=1e-12)
    # the dot-product test, padding included: <im2col(x), y> = <x, col2im(y)>
    np.testing.assert_allclose((cols * y).sum(), (x * image).sum(), rtol=1e-10)


# --------------------------------------------------------------------------- #
# The CUDA source, compiled for the CPU
# --------------------------------------------------------------------------- #
CONV = KernelFamily({"conv.cu": kconv.EMULATE}, ["float*", "int", "long long", "float"], launch_owner=kconv)


@pytest.fixture(scope="module")
def cuda_on_cpu(tmp_path_factory):
    """conv.cu built as a CPU library: the kernels' own index arithmetic, run without a GPU."""
    return single_thread_library(tmp_path_factory, "conv.cu")


@given(geometry=geometries(), layout=layouts, pad_value=pad_values)
def test_cuda_source_matches_the_twins(cuda_on_cpu, geometry, layout, pad_value):
    shape, *args = geometry
    x = laid_out(np.random.default_rng(2).standard_normal(shape).astype(np.float32), layout)
    with pytest.MonkeyPatch.context() as monkeypatch:
        cols, [(name, arguments)] = CONV.launched_by(monkeypatch, lambda: CupyConv.im2col(x, *args, pad_value))
        cols[...] = np.nan
        cuda_on_cpu[name](*c_arguments(arguments))
        np.testing.assert_array_equal(cols, NumpyConv.im2col(x, *args, pad_value))

        y = np.random.default_rng(3).standard_normal(cols.shape).astype(np.float32)
        image, [(name, arguments)] = CONV.launched_by(monkeypatch, lambda: CupyConv.col2im(y, shape, *args))
        image[...] = np.nan
        cuda_on_cpu[name](*c_arguments(arguments))
        np.testing.assert_allclose(image, NumpyConv.col2im(y, shape, *args), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- #
# The CuPy glue: arguments as the C signatures declare, run through EMULATE
# --------------------------------------------------------------------------- #
@given(geometry=geometries(), layout=layouts, pad_value=pad_values)
def test_glue_and_emulators_match_the_twins(geometry, layout, pad_value):
    shape, *args = geometry
    x = laid_out(np.random.default_rng(4).standard_normal(shape).astype(np.float32), layout)
    y = np.random.default_rng(5).standard_normal(NumpyConv.im2col(x, *args).shape).astype(np.float32)
    with pytest.MonkeyPatch.context() as monkeypatch:
        launched = CONV.patch(monkeypatch)  # arguments checked against the C signatures, run through EMULATE
        cols = CupyConv.im2col(x, *args, pad_value)
        image = CupyConv.col2im(y, shape, *args)
        assert launched == ["im2col_f32", "col2im_f32"]  # one launch each
        np.testing.assert_array_equal(cols, NumpyConv.im2col(x, *args, pad_value))
        np.testing.assert_allclose(image, NumpyConv.col2im(y, shape, *args), rtol=1e-5, atol=1e-6)
        assert image.transpose(1, 0, 2, 3).flags.c_contiguous  # channel-major, like conv2d's outputs
        CupyConv.im2col(x.astype(np.float64), *args)  # other dtypes run the twin: no launch
        assert launched == ["im2col_f32", "col2im_f32"]


def test_dense_block_reads_channel_major_memory_without_a_copy(monkeypatch):
    monkeypatch.setattr(backend, "cupy", np)
    x = laid_out(np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5), "channel-major")
    block, steps = kconv.dense_block(x)
    assert np.shares_memory(block, x) and block.flags.c_contiguous and steps == (4 * 5, 2 * 4 * 5, 5, 1)
    sliced = laid_out(x, "sliced")
    block, steps = kconv.dense_block(sliced)
    assert not np.shares_memory(block, sliced) and steps == (3 * 4 * 5, 4 * 5, 5, 1)


# --------------------------------------------------------------------------- #
# The Functions
# --------------------------------------------------------------------------- #
@given(geometry=geometries(), pad_value=st.sampled_from([0.0, 1.5]))  # (-inf makes numerical gradients nan)
def test_im2col_col2im_functions_with_padding_are_each_others_backward(geometry, pad_value, device):
    shape, kernel, stride, padding, dilation = geometry
    rng = np.random.default_rng(6)
    x = minidl.tensor(rng.standard_normal(shape), device=device, requires_grad=True)
    assert minidl.gradcheck(lambda x: Im2Col(kernel, stride, dilation, padding, pad_value)(x), x)
    rows, columns = NumpyConv.im2col(rng.standard_normal(shape), kernel, stride, padding, dilation).shape
    cols = minidl.tensor(rng.standard_normal((rows, columns)), device=device, requires_grad=True)
    assert minidl.gradgradcheck(lambda c: Col2Im(shape, kernel, stride, dilation, padding)(c) ** 2, cols)


@st.composite
def convolutions(draw):
    shape, kernel, stride, padding, dilation = draw(geometries())
    out = draw(st.integers(1, 3))
    return shape, (out, shape[1]) + kernel, stride, padding, dilation, draw(st.booleans())


def make_convolution(case, device, rng, needs=(True, True, True)):
    shape, weight_shape, stride, padding, dilation, bias = case
    arrays = [rng.standard_normal(shape), rng.standard_normal(weight_shape)]
    arrays += [rng.standard_normal(weight_shape[0])] if bias else []
    needs = needs[:len(arrays)] if any(needs[:len(arrays)]) else (True,) + tuple(needs[1:len(arrays)])
    leaves = [minidl.tensor(a, device=device, requires_grad=n) for a, n in zip(arrays, needs)]
    return (lambda: Convolution(stride, padding, dilation)), leaves


def convolution_case(data, device):
    """For tests/test_composed_twins.py's CASES: (a maker of a fresh Convolution, float64 arrays)."""
    shape, weight_shape, stride, padding, dilation, bias = data.draw(convolutions())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    arrays = [rng.standard_normal(shape), rng.standard_normal(weight_shape)]
    arrays += [rng.standard_normal(weight_shape[0])] if bias else []
    return (lambda: Convolution(stride, padding, dilation)), arrays


@given(case=convolutions(), needs=st.lists(st.booleans(), min_size=3, max_size=3).filter(any))
def test_convolution_gradcheck_and_equals_its_composed_twin(case, needs, device):
    make, leaves = make_convolution(case, device, np.random.default_rng(7), needs)
    assert minidl.gradcheck(lambda *inputs: make()(*inputs), leaves)
    fused, twin = make()(*leaves), make().composed(*leaves)
    np.testing.assert_allclose(fused.numpy(), twin.numpy(), rtol=1e-10, atol=1e-12)
    g = minidl.tensor(np.random.default_rng(8).standard_normal(fused.shape), device=device)
    wanted = [t for t in leaves if t.requires_grad]
    for a, b in zip(minidl.grad(fused, wanted, g), minidl.grad(twin, wanted, g)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-11)


@given(case=convolutions())
def test_convolution_second_derivatives_through_the_twin(case, device):
    make, leaves = make_convolution(case, device, np.random.default_rng(9))
    assert minidl.gradgradcheck(lambda *inputs: make()(*inputs), leaves)


def test_conv2d_keeps_columns_only_where_the_table_says(device):
    """On a GPU (and its stand-in) the columns are built again in backward; the CPU keeps them."""
    x = minidl.randn(2, 3, 8, 8, device=device, requires_grad=True)
    w = minidl.randn(4, 3, 3, 3, device=device, requires_grad=True)
    b = minidl.zeros(4, device=device, requires_grad=True)
    y = F.conv2d(x, w, b, padding=1)
    assert type(y.grad_fn) is Convolution and y.grad_fn.inputs[0] is x  # padding inside: no Pad op before it
    kept = [name for name, value in vars(y.grad_fn).items() if hasattr(value, "shape")]
    keeps = kernels.backend_for(x.data).keeps_columns
    assert keeps == (device == "cpu") and kept == (["cols"] if keeps else []), kept
    y.sum().backward(retain_graph=True)
    grads = [t.grad.numpy() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    y.grad_fn.cols = None  # not kept: backward builds the columns again, with the same result
    y.sum().backward()
    for t, grad in zip((x, w, b), grads):
        np.testing.assert_allclose(t.grad.numpy(), grad, rtol=1e-6, atol=1e-6)


def test_conv2d_under_autocast_runs_in_float16(device):
    x = minidl.randn(2, 3, 6, 6, device=device, requires_grad=True)
    w = minidl.randn(4, 3, 3, 3, device=device, requires_grad=True)
    with minidl.amp.autocast():
        y = F.conv2d(x, w, padding=1)
    assert y.dtype == np.float16
    y.float().sum().backward()
    assert x.grad.dtype == w.grad.dtype == np.float32
    expected = F.conv2d(x.detach(), w.detach(), padding=1).numpy()
    np.testing.assert_allclose(y.float().numpy(), expected, rtol=1e-2, atol=2e-2)


# --------------------------------------------------------------------------- #
# What a convolution costs on the GPU, counted on the CPU stand-in
# --------------------------------------------------------------------------- #
@pytest.mark.gpu
def test_conv2d_launches_on_the_stand_in():
    """forward: im2col, matmul, bias add; backward: W^T @ dY and col2im (dx), im2col and
    dY @ cols^T (dW), one sum (db). No layout copies when the activations are channel-major,
    as conv2d's own outputs are."""
    if not minidl.cuda.is_available() or backend.cupy.__name__ != "minidl.fakecupy":
        pytest.skip("counts launches on minidl.fakecupy (MINIDL_FAKE_CUDA=1)")
    from minidl.fakecupy import meter

    def channel_major(*shape):  # an activation as a conv layer leaves it: (C, N, H, W) memory
        image = F.conv2d(minidl.randn(shape[0], 2, *shape[2:], device="cuda"),
                         minidl.randn(shape[1], 2, 1, 1, device="cuda"))
        return image.detach()

    x = channel_major(4, 6, 9, 9).requires_grad_()
    w = minidl.randn(8, 6, 3, 3, device="cuda", requires_grad=True)
    b = minidl.zeros(8, device="cuda", requires_grad=True)
    gy = channel_major(4, 8, 9, 9)
    with meter.measure() as forward:
        y = F.conv2d(x, w, b, padding=1)
    with meter.measure() as backward:
        minidl.grad(y, [x, w, b], gy)
    assert forward.report()["launches"] == 3 and forward.report()["kernels"] == 1
    assert backward.report()["launches"] == 5 and backward.report()["kernels"] == 2
    assert backward.report()["matmuls"] == 2 and backward.report()["syncs"] == 0
