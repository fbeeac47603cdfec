"""The pool family of the backend table: max pooling's NumPy twins against a plain loop over
windows, the CuPy glue against pool.cu's C signatures, and what max pooling, cross-entropy and
ReLU cost on the fake GPU.

* twins vs reference: hypothesis draws shapes, kernel, stride, padding, dilation, ceil_mode,
  ties and NaNs; values and winner indices must match exactly, gradients to rounding;
* the CUDA source itself: pool.cu compiled for the CPU by g++ (one "thread" walks the grid), run
  on the arguments the glue passes, must equal the twins;
* glue: ``launch.launch`` is replaced by a checker that reads each kernel's C signature from
  pool.cu, checks every argument (dtype, C-contiguity, exact scalar type) and runs the kernel's
  EMULATE adapter; the CuPy entries must then equal the twins, for C-contiguous and for
  channel-major (conv2d output) inputs, in one launch each;
* fake GPU (MINIDL_FAKE_CUDA=1, -m gpu): launches per op on minidl.fakecupy's meter; a
  cross-entropy step makes no float64 array and no host sync.
"""

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn.functional as F
from minidl import kernels
from minidl.kernels import pool as kp
from kernel_harness import KernelFamily, c_arguments, reports, single_thread_library  # (tests/ is on sys.path)

on_fake_gpu = pytest.mark.skipif(os.environ.get("MINIDL_FAKE_CUDA") != "1", reason="counts launches on minidl.fakecupy")


# --------------------------------------------------------------------------- #
# The plain reference: one window, one pixel at a time (what each CUDA thread does)
# --------------------------------------------------------------------------- #
def reference_forward(x, kernel, stride, padding, dilation, ceil_mode):
    n, c, h, w = x.shape
    oh, ow = (kp.pooled_size(*axis, ceil_mode) for axis in zip((h, w), kernel, stride, padding, dilation))
    y = np.full((n, c, oh, ow), -np.inf, dtype=x.dtype)
    index = np.full((n, c, oh, ow), -1, dtype=np.int64)
    for a in range(n):
        for b in range(c):
            for p in range(oh):
                for q in range(ow):
                    for i in range(kernel[0]):
                        for j in range(kernel[1]):
                            r = p * stride[0] + i * dilation[0] - padding[0]
                            s = q * stride[1] + j * dilation[1] - padding[1]
                            if not (0 <= r < h and 0 <= s < w):
                                continue
                            v, best = x[a, b, r, s], y[a, b, p, q]
                            if index[a, b, p, q] < 0 or v > best or (np.isnan(v) and not np.isnan(best)):
                                y[a, b, p, q], index[a, b, p, q] = v, r * w + s
    return y, index


def reference_backward(gy, index, input_shape):
    gx = np.zeros(input_shape, dtype=gy.dtype)
    n, c, h, w = input_shape
    for a, b, p, q in np.ndindex(*gy.shape):
        if index[a, b, p, q] >= 0:
            gx[a, b, index[a, b, p, q] // w, index[a, b, p, q] % w] += gy[a, b, p, q]
    return gx


def channel_major(a):
    """a (N, C, ...) held as (C, N, ...) memory: the layout of conv2d's outputs."""
    return np.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1)


@st.composite
def pool_cases(draw):
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(2))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(2))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(2))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 5))
                 for k, d, p in zip(kernel, dilation, padding))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["normal", "ties", "nan", "inf"]))
    x = rng.integers(0, 3, shape).astype(np.float32) if kind != "normal" else rng.standard_normal(shape).astype(np.float32)
    if kind == "nan":
        x[rng.random(shape) < 0.1] = np.nan
    if kind == "inf":
        x[rng.random(shape) < 0.5] = -np.inf
    geometry = (kernel, stride, padding, dilation)
    return x, geometry, draw(st.booleans())


# --------------------------------------------------------------------------- #
# The NumPy twins
# --------------------------------------------------------------------------- #
@given(case=pool_cases())
def test_forward_twin_matches_window_by_window(case):
    x, geometry, ceil_mode = case
    y, index = kp.NumpyPool.max_pool2d_forward(x, *geometry, ceil_mode)
    expected, expected_index = reference_forward(x, *geometry, ceil_mode)
    assert y.dtype == x.dtype and index.dtype == np.int64
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(index, expected_index)


@given(case=pool_cases())
def test_backward_twin_adds_each_gradient_to_its_winner(case):
    x, geometry, ceil_mode = case
    y, index = kp.NumpyPool.max_pool2d_forward(x, *geometry, ceil_mode)
    gy = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    gx = kp.NumpyPool.max_pool2d_backward(gy, index, x.shape, *geometry)
    assert gx.shape == x.shape and gx.dtype == np.float32
    np.testing.assert_allclose(gx, reference_backward(gy, index, x.shape), rtol=1e-6, atol=1e-6)


def test_global_window_takes_the_argmax_path():
    x = np.array([[[[1, 3], [3, np.nan]], [[2, 2], [np.nan, np.nan]]]], dtype=np.float32)
    y, index = kp.NumpyPool.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert np.isnan(y).all() and index.ravel().tolist() == [3, 2]  # a NaN wins; the first one
    y, index = kp.NumpyPool.max_pool2d_forward(x[:, :, :1], (1, 2), (1, 2), (0, 0), (1, 1), False)
    assert y.ravel().tolist() == [3, 2] and index.ravel().tolist() == [1, 0]  # ties: the first
    gx = kp.NumpyPool.max_pool2d_backward(np.ones((1, 2, 1, 1), np.float32), index, (1, 2, 1, 2),
                                          (1, 2), (1, 2), (0, 0), (1, 1))
    assert gx.ravel().tolist() == [0, 1, 1, 0]


# --------------------------------------------------------------------------- #
# The CuPy glue, checked against pool.cu's signatures (backend.cupy replaced by numpy)
# --------------------------------------------------------------------------- #
POOL = KernelFamily({"pool.cu": kp.EMULATE}, ["float*", "long long*", "long long", "int"])
SIGNATURES = POOL.signatures


kernel_launches = POOL.launches_fixture()


def test_the_signatures_were_read():
    assert set(SIGNATURES) == {"max_pool2d_forward_f32", "max_pool2d_backward_f32"}
    assert SIGNATURES["max_pool2d_forward_f32"][:3] == ["float*", "float*", "long long*"]
    assert SIGNATURES["max_pool2d_backward_f32"][:3] == ["float*", "long long*", "float*"]


@given(case=pool_cases(), layout=st.sampled_from(["contiguous", "channel-major", "strided"]))
def test_kernels_equal_the_twins(kernel_launches, case, layout):
    x, geometry, ceil_mode = case
    x = {"contiguous": x, "channel-major": channel_major(x), "strided": x[:, :, :, ::-1]}[layout]
    y, index = kp.CupyPool.max_pool2d_forward(x, *geometry, ceil_mode)
    expected, expected_index = kp.NumpyPool.max_pool2d_forward(x, *geometry, ceil_mode)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(index, expected_index)
    gy = channel_major(np.random.default_rng(1).standard_normal(y.shape).astype(np.float32))
    gx = kp.CupyPool.max_pool2d_backward(gy, index, x.shape, *geometry)
    np.testing.assert_allclose(gx, kp.NumpyPool.max_pool2d_backward(gy, index, x.shape, *geometry), atol=1e-6)
    assert kernel_launches[-2:] == ["max_pool2d_forward_f32", "max_pool2d_backward_f32"]


# --------------------------------------------------------------------------- #
# The CUDA source, compiled for the CPU: the kernels' own index arithmetic, run without a GPU
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def cuda_on_cpu(tmp_path_factory):
    return single_thread_library(tmp_path_factory, "pool.cu")


@given(case=pool_cases(), layout=st.sampled_from(["contiguous", "channel-major"]))
def test_cuda_source_matches_the_twins(cuda_on_cpu, case, layout):
    x, geometry, ceil_mode = case
    x = channel_major(x) if layout == "channel-major" else x
    expected, expected_index = kp.NumpyPool.max_pool2d_forward(x, *geometry, ceil_mode)
    gy = channel_major(np.random.default_rng(3).standard_normal(expected.shape).astype(np.float32))
    with pytest.MonkeyPatch.context() as monkeypatch:
        (y, index), [(name, arguments)] = POOL.launched_by(
            monkeypatch, lambda: kp.CupyPool.max_pool2d_forward(x, *geometry, ceil_mode))
        y[...], index[...] = 7, 7
        cuda_on_cpu[name](*c_arguments(arguments))
        np.testing.assert_array_equal(y, expected)
        np.testing.assert_array_equal(index, expected_index)
        gx, [(name, arguments)] = POOL.launched_by(
            monkeypatch, lambda: kp.CupyPool.max_pool2d_backward(gy, index, x.shape, *geometry))
        gx[...] = np.nan
        cuda_on_cpu[name](*c_arguments(arguments))
        np.testing.assert_allclose(gx, kp.NumpyPool.max_pool2d_backward(gy, index, x.shape, *geometry), atol=1e-6)


def test_other_dtypes_fall_back_to_the_twins(kernel_launches):
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 5))
    y, index = kp.CupyPool.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), True)
    gx = kp.CupyPool.max_pool2d_backward(np.ones_like(y), index, x.shape, (2, 2), (2, 2), (0, 0), (1, 1))
    assert y.dtype == gx.dtype == np.float64 and kernel_launches == []


def test_every_cupy_entry_has_gpu_check_cases():
    entries = {case[0] for case in kp.CHECK_CASES}
    assert entries == {"max_pool2d_forward", "max_pool2d_backward"}
    for entry, make, *_ in kp.CHECK_CASES:
        args = make(np.random.default_rng(0))
        getattr(kernels.NumpyBackend, entry)(*args)


# --------------------------------------------------------------------------- #
# The ops on the fake GPU: launches, syncs, float64 arrays
# --------------------------------------------------------------------------- #
@pytest.mark.gpu
@on_fake_gpu
@pytest.mark.parametrize("pool", ["2x2", "3x3 s2 p1", "global", "adaptive equal bins", "channel-major input"])
def test_max_pool_is_one_launch_each_way(pool):
    x = minidl.randn(4, 8, 12, 12, device="cuda", requires_grad=True)
    conv = minidl.nn.Conv2d(3, 8, 3, padding=1).to("cuda")
    image = minidl.randn(4, 3, 12, 12, device="cuda")
    run = {"2x2": lambda: F.max_pool2d(x, 2), "3x3 s2 p1": lambda: F.max_pool2d(x, 3, 2, 1),
           "global": lambda: F.adaptive_max_pool2d(x, 1), "adaptive equal bins": lambda: F.adaptive_max_pool2d(x, 3)}
    if pool == "channel-major input":
        with minidl.no_grad():
            x = conv(image).requires_grad_()
        assert not x.data.flags.c_contiguous
        run[pool] = lambda: F.max_pool2d(x, 2)

    forward, backward, sites = reports(run[pool], x)
    assert forward["launches"] == 1 and forward["kernels"] == 1, sites
    assert backward["launches"] == 1 and backward["kernels"] == 1, sites
    assert forward["syncs"] == backward["syncs"] == forward["float64_arrays"] == backward["float64_arrays"] == 0


@pytest.mark.gpu
@on_fake_gpu
@pytest.mark.parametrize("label_smoothing, budget", [(0.0, (4, 2)), (0.2, (4, 2))])
def test_cross_entropy_step_makes_no_float64_array_and_no_sync(label_smoothing, budget):
    """Lessons 05/06/10/11's loss: 4 + 2 launches with or without smoothing (the fused kernels of
    minidl/kernels/loss.py; before them 29 + 10, and 32 + 10 with smoothing)."""
    logits = minidl.randn(64, 10, device="cuda", requires_grad=True)
    target = minidl.tensor(np.random.default_rng(0).integers(0, 10, 64), device="cuda")

    forward, backward, sites = reports(lambda: F.cross_entropy(logits, target, label_smoothing=label_smoothing), logits)
    for report, launches in zip((forward, backward), budget):
        assert report["float64_arrays"] == 0 and report["syncs"] == 0, report
        assert report["h2d_bytes"] == 0, report
        assert report["launches"] <= launches, sites


@pytest.mark.gpu
@on_fake_gpu
def test_relu_launches():
    x = minidl.randn(4, 8, 6, 6, device="cuda", requires_grad=True)
    forward, backward, sites = reports(lambda: F.relu(x), x)
    assert forward["launches"] == 1 and backward["launches"] <= 2, sites
    assert forward["float64_arrays"] == backward["float64_arrays"] == 0
