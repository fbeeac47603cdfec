"""The activation and loss families of the backend table: ReLU's backward and the class-index
cross-entropy, NumPy twins beside CUDA kernels (minidl/kernels/activation.py, loss.py and their .cu).

* twins vs reference: a plain loop over rows and classes (float64, the math written out), with
  hypothesis drawing rows, classes, class weights, ignore_index and label smoothing;
* the CUDA source itself: activation.cu and loss.cu compiled for the CPU by g++ (one std::thread
  per CUDA thread, __syncthreads a barrier), run on the arguments the glue passes, must equal the twins;
* glue: ``launch.launch`` is replaced by a checker that reads each kernel's C signature from its
  .cu file, checks every argument (dtype, C-contiguity, exact scalar type) and runs the EMULATE
  adapter; the CuPy entries must equal the twins, in one launch each;
* gradients: gradcheck and gradgradcheck in float64 through the new ops;
* fake GPU (MINIDL_FAKE_CUDA=1, -m gpu): launches on minidl.fakecupy's meter, no sync, no float64.
"""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.nn.functional as F
from minidl import kernels
from minidl.kernels import activation as ka
from minidl.kernels import launch
from minidl.kernels import loss as kl
from kernel_harness import KernelFamily, reports, threaded_launch  # (tests/ is on sys.path)

on_fake_gpu = pytest.mark.skipif(os.environ.get("MINIDL_FAKE_CUDA") != "1", reason="counts launches on minidl.fakecupy")


# --------------------------------------------------------------------------- #
# The plain references: one row, one class at a time, in float64
# --------------------------------------------------------------------------- #
def reference_targets(y, num_classes, weight, ignore_index, eps):
    """q (M, C) written out: q_nc = (1 - eps) w_y [c = y] + eps / C w_c, 0 for an ignored row."""
    w = np.ones(num_classes) if weight is None else weight.astype(np.float64)
    q = np.zeros((len(y), num_classes))
    for n, target in enumerate(y):
        if target == ignore_index:
            continue
        for c in range(num_classes):
            q[n, c] = (1 - eps) * w[target] * (c == target) + eps / num_classes * w[c]
    return q


def reference_forward(z, y, weight, ignore_index, eps):
    """(loss, lse, target weight, sum of q) per row: loss_n = sum_c q_nc (lse_n - z_nc)."""
    z = z.astype(np.float64)
    q = reference_targets(y, z.shape[1], weight, ignore_index, eps)
    loss, lse, target_weight = [], [], []
    for n in range(z.shape[0]):
        m = max(z[n])
        lse.append(m + np.log(sum(np.exp(v - m) for v in z[n])))
        loss.append(sum(q[n, c] * (lse[n] - z[n, c]) for c in range(z.shape[1])))
        counts = y[n] != ignore_index
        target_weight.append(0.0 if not counts else 1.0 if weight is None else float(weight[y[n]]))
    return np.array(loss), np.array(lse), np.array(target_weight), q.sum(axis=1)


def reference_backward(z, y, g, weight, ignore_index, eps):
    """gz_nc = g_n (softmax(z_n)_c sum(q_n) - q_nc)."""
    z = z.astype(np.float64)
    q = reference_targets(y, z.shape[1], weight, ignore_index, eps)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return g[:, None] * (p * q.sum(axis=1, keepdims=True) - q)


@st.composite
def loss_cases(draw):
    rows, classes = draw(st.integers(1, 6)), draw(st.integers(1, 7))
    ignore_index = draw(st.sampled_from([-100, 0, 2]))
    y = np.array(draw(st.lists(st.one_of(st.integers(0, classes - 1), st.just(ignore_index)),
                               min_size=rows, max_size=rows)), dtype=np.int64)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    z = (rng.standard_normal((rows, classes)) * 3).astype(np.float32)
    weight = rng.uniform(0.1, 2.0, classes).astype(np.float32) if draw(st.booleans()) else None
    eps = draw(st.sampled_from([0.0, 0.1, 0.2, 1.0]))
    g = rng.standard_normal(rows).astype(np.float32)
    return z, y, weight, ignore_index, eps, g


@given(loss_cases())
def test_cross_entropy_twins_equal_the_math_written_out(case):
    z, y, weight, ignore_index, eps, g = case
    got = kl.NumpyLoss.cross_entropy_forward(z, y, weight, ignore_index, eps)
    for twin, reference in zip(got, reference_forward(z, y, weight, ignore_index, eps)):
        assert twin.dtype == np.float32 and twin.shape == (len(y),)
        np.testing.assert_allclose(twin, reference, rtol=1e-5, atol=1e-5)
    gz = kl.NumpyLoss.cross_entropy_backward(z, got[1], g, y, *got[2:], weight, ignore_index, eps)
    assert gz.dtype == np.float32
    np.testing.assert_allclose(gz, reference_backward(z, y, g, weight, ignore_index, eps), rtol=1e-4, atol=1e-5)


def test_huge_logits_stay_finite():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], np.float32)
    loss, lse, _, _ = kl.NumpyLoss.cross_entropy_forward(z, np.array([1, 0]), label_smoothing=0.1)
    np.testing.assert_allclose(loss, [2e4 * 0.9 + 0.1 / 3 * 3e4, np.log(3)], rtol=1e-5)
    np.testing.assert_allclose(lse, [1e4, -1e4 + np.log(3)], rtol=1e-6)


def test_out_of_range_target_raises_on_the_cpu():
    with pytest.raises(IndexError, match=r"cross_entropy: target -1 is out of bounds for 3 classes"):
        kl.NumpyLoss.cross_entropy_forward(np.zeros((2, 3), np.float32), np.array([0, -1]))


@given(st.integers(0, 3).flatmap(lambda ndim: st.tuples(*[st.integers(1, 4)] * ndim)), st.integers(0, 2**16))
def test_relu_backward_twin_is_a_mask(shape, seed):
    rng = np.random.default_rng(seed)
    x, gy = (rng.integers(-2, 3, shape).astype(np.float32) for _ in range(2))
    expected = np.array([g if v > 0 else 0.0 for g, v in zip(gy.ravel(), x.ravel())], np.float32).reshape(shape)
    gx = ka.NumpyActivation.relu_backward(gy, x)
    assert gx.dtype == np.float32 and np.array_equal(gx, expected)


def test_dense_order():
    a = np.zeros((2, 3, 4, 5))
    assert ka.dense_order(a) == (0, 1, 2, 3)
    assert ka.dense_order(np.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1)) == (1, 0, 2, 3)
    assert ka.dense_order(a[:, :, ::2]) is None
    assert ka.dense_order(np.broadcast_to(np.zeros(5), (3, 5))) is None


# --------------------------------------------------------------------------- #
# The CuPy glue, checked against the .cu files' C signatures (backend.cupy replaced by numpy)
# --------------------------------------------------------------------------- #
ACTIVATION_LOSS = KernelFamily({ka.FILE: ka.EMULATE, kl.FILE: kl.EMULATE},
                               ["float*", "long long*", "long long", "int", "float"])
SIGNATURES = ACTIVATION_LOSS.signatures
FAMILY = {"relu_backward_f32": ka, "cross_entropy_forward_f32": kl, "cross_entropy_backward_f32": kl}


def test_the_signatures_were_read():
    assert set(SIGNATURES) == set(FAMILY)
    assert SIGNATURES["cross_entropy_forward_f32"][:3] == ["float*", "long long*", "float*"]
    assert len(SIGNATURES["cross_entropy_backward_f32"]) == 14


kernel_launches = ACTIVATION_LOSS.launches_fixture()


def channel_major(a):
    """a (N, C, ...) held as (C, N, ...) memory: the layout of conv2d's outputs."""
    return np.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1)


LAYOUTS = ["contiguous", "channel-major", "x channel-major, gy not", "gy channel-major, x not", "0-d", "1-d", "3-d"]


def relu_arrays(rng, layout):
    shape = {"0-d": (), "1-d": (7,), "3-d": (3, 5, 2)}.get(layout, (3, 4, 5, 6))
    gy, x = (np.asarray(rng.integers(-2, 3, shape), np.float32) for _ in range(2))
    if layout.startswith(("channel-major", "x channel-major")):
        x = channel_major(x)
    if layout.startswith(("channel-major", "gy channel-major")):
        gy = channel_major(gy)
    if x.ndim:
        x.reshape(-1)[0] = np.nan
    return gy, x


@pytest.mark.parametrize("layout", LAYOUTS)
def test_relu_backward_glue(kernel_launches, layout):
    gy, x = relu_arrays(np.random.default_rng(1), layout)
    gx = kernels.CupyBackend.relu_backward(gy, x)
    assert kernel_launches == ["relu_backward_f32"]
    assert gx.strides == x.strides and np.array_equal(gx, ka.NumpyActivation.relu_backward(gy, x))


def test_relu_backward_falls_back_to_the_twin(kernel_launches):
    x = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    for gy, xs in [(x[:, ::2], x[:, ::2]), (np.broadcast_to(x[:1], x.shape), x), (x.astype(np.float64), x)]:
        np.testing.assert_array_equal(kernels.CupyBackend.relu_backward(gy, xs), np.where(xs > 0, gy, 0))
    assert kernel_launches == []


@given(loss_cases(), st.booleans())
@settings(max_examples=30)
def test_cross_entropy_glue_equals_the_twins(monkeypatch, case, broadcast):
    z, y, weight, ignore_index, eps, g = case
    with monkeypatch.context() as patched:
        launched = []
        patched.setattr(launch, "launch", lambda f, name, t, args, block=256: (
            launched.append(name), FAMILY[name].EMULATE[name](*[a if isinstance(a, np.ndarray) else a.item()
                                                                  for a in args])))
        patched.setattr(kl.backend, "cupy", np)
        got = kernels.CupyBackend.cross_entropy_forward(z, y, weight, ignore_index, eps)
        g = np.broadcast_to(g[:1], g.shape) if broadcast else g
        gz = kernels.CupyBackend.cross_entropy_backward(z, got[1], g, y, *got[2:], weight, ignore_index, eps)
    twin = kl.NumpyLoss.cross_entropy_forward(z, y, weight, ignore_index, eps)
    for a, b in zip(got, twin):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gz, kl.NumpyLoss.cross_entropy_backward(z, twin[1], g, y, *twin[2:], weight,
                                                                       ignore_index, eps), rtol=1e-6, atol=1e-6)
    assert launched == ["cross_entropy_forward_f32", "cross_entropy_backward_f32"]


def test_cross_entropy_glue_checks_its_arguments(kernel_launches):
    """int32 targets, a transposed z, weights, a broadcast gradient: every argument as the C signature says."""
    rng = np.random.default_rng(3)
    z = np.ascontiguousarray(rng.standard_normal((7, 5)).astype(np.float32).T).T
    y, weight = np.array([0, 4, -100, 2, 2, 1, 3], np.int32), rng.uniform(0.5, 2, 5).astype(np.float32)
    loss, lse, tw, ts = kernels.CupyBackend.cross_entropy_forward(z, y, weight, -100, 0.1)
    g = np.broadcast_to(np.float32(0.5), (7,))
    gz = kernels.CupyBackend.cross_entropy_backward(z, lse, g, y, tw, ts, weight, -100, 0.1)
    assert kernel_launches == ["cross_entropy_forward_f32", "cross_entropy_backward_f32"]
    np.testing.assert_allclose(loss, reference_forward(z, y, weight, -100, 0.1)[0], rtol=1e-5)
    np.testing.assert_allclose(gz, reference_backward(z, y, np.full(7, 0.5), weight, -100, 0.1), rtol=1e-4, atol=1e-6)
    loss, lse, tw, ts = kernels.CupyBackend.cross_entropy_forward(z, y, None, -100, 0.0)  # (z stands in for w)
    gz = kernels.CupyBackend.cross_entropy_backward(z, lse, np.ones(7, np.float32), y, tw, ts, None, -100, 0.0)
    np.testing.assert_allclose(gz, reference_backward(z, y, np.ones(7), None, -100, 0.0), rtol=1e-4, atol=1e-6)


def test_out_of_range_target_is_nan_on_the_gpu(kernel_launches):
    z = np.zeros((3, 4), np.float32)
    loss, lse, tw, ts = kernels.CupyBackend.cross_entropy_forward(z, np.array([0, 4, -100]))
    assert np.isnan(loss).tolist() == np.isnan(tw).tolist() == [False, True, False]
    gz = kernels.CupyBackend.cross_entropy_backward(z, lse, np.ones(3, np.float32), np.array([0, 4, -100]), tw, ts)
    assert np.isnan(gz).any(axis=1).tolist() == [False, True, False]


def test_other_dtypes_fall_back_to_the_twins(kernel_launches):
    z = np.random.default_rng(4).standard_normal((3, 4))
    loss, lse, tw, ts = kernels.CupyBackend.cross_entropy_forward(z, np.array([0, 1, 2]))
    gz = kernels.CupyBackend.cross_entropy_backward(z, lse, np.ones(3), np.array([0, 1, 2]), tw, ts)
    assert loss.dtype == gz.dtype == np.float64 and kernel_launches == []


# --------------------------------------------------------------------------- #
# The CUDA source itself, compiled as C++ and run on CPU threads (needs g++ with C++20)
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def cuda_source_on_threads(tmp_path_factory):
    """A launch() that runs the kernels compiled by g++ (small grids, so every loop strides)."""
    return threaded_launch(tmp_path_factory, ["activation.cu", "loss.cu"], {"cross_entropy_forward_f32": (2, 32)},
                           default_grid=(3, 32))  # every grid-stride loop turns


@pytest.mark.parametrize("rows, classes", [(1, 1), (5, 3), (3, 33), (4, 100), (7, 10)])
@pytest.mark.parametrize("weighted, eps, ignore_index", [(False, 0.0, -100), (True, 0.2, 1), (False, 0.1, 0)])
def test_cuda_source_agrees_with_the_twins(monkeypatch, cuda_source_on_threads, rows, classes, weighted, eps,
                                           ignore_index):
    monkeypatch.setattr(launch, "launch", cuda_source_on_threads)
    monkeypatch.setattr(kl.backend, "cupy", np)
    rng = np.random.default_rng(rows * classes)
    z = (rng.standard_normal((rows, classes)) * 4).astype(np.float32)
    y = rng.integers(0, classes, rows)
    y[rng.random(rows) < 0.3] = ignore_index
    if rows > 3:
        y[3] = classes  # out of range: a NaN row on the GPU
        z[2, 0] = 1e4
    weight = rng.uniform(0.5, 2, classes).astype(np.float32) if weighted else None
    g = rng.standard_normal(rows).astype(np.float32)
    got = kernels.CupyBackend.cross_entropy_forward(z, y, weight, ignore_index, eps)
    expected = kl._forward_on_gpu(z, y, weight, ignore_index, eps)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for gradient in (g, np.broadcast_to(g[:1], g.shape)):
        gz = kernels.CupyBackend.cross_entropy_backward(z, got[1], gradient, y, *got[2:], weight, ignore_index, eps)
        twin = kl.NumpyLoss.cross_entropy_backward(z, expected[1], gradient, y, *expected[2:], weight,
                                                   ignore_index, np.float32(eps))
        np.testing.assert_allclose(gz, twin, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_relu_cuda_source_agrees_with_the_twin(monkeypatch, cuda_source_on_threads, layout):
    monkeypatch.setattr(launch, "launch", cuda_source_on_threads)
    monkeypatch.setattr(ka.backend, "cupy", np)
    gy, x = relu_arrays(np.random.default_rng(6), layout)
    gx = kernels.CupyBackend.relu_backward(gy, x)
    assert gx.strides == x.strides and np.array_equal(gx, ka.NumpyActivation.relu_backward(gy, x))


# --------------------------------------------------------------------------- #
# Gradients through the ops (float64: the twins), and the gpu_check cases
# --------------------------------------------------------------------------- #
def test_relu_first_and_second_derivatives():
    x = minidl.tensor(np.array([[-1.5, 0.3, 2.0], [0.7, -0.2, 1.1]]), requires_grad=True)
    assert minidl.gradcheck(lambda t: F.relu(t) * t, x)
    assert minidl.gradgradcheck(lambda t: F.relu(t) * t, x)
    (gx,) = minidl.grad(F.relu(x).sum(), x, create_graph=True)
    assert np.array_equal(gx.numpy(), (x.numpy() > 0).astype(float))


@pytest.mark.parametrize("shape", [(4, 5), (3, 4, 2, 2), (6,)])
def test_cross_entropy_gradients_nd(shape):
    rng = np.random.default_rng(7)
    z = minidl.tensor(rng.standard_normal(shape), requires_grad=True)
    target_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    y = minidl.tensor(rng.integers(0, shape[1] if len(shape) > 1 else shape[0], target_shape))
    weight = minidl.tensor(np.linspace(0.5, 2, shape[1] if len(shape) > 1 else shape[0]))
    for reduction in ("mean", "sum", "none"):
        def loss(t):
            return F.cross_entropy(t, y, weight, reduction=reduction, label_smoothing=0.1)
        assert minidl.gradcheck(loss, z)
        assert minidl.gradgradcheck(loss, z)


def test_every_fused_entry_has_a_gpu_check_case():
    from minidl.gpu_check import twins

    entries = {case.entry for case in twins.cases()}
    assert {"relu_backward", "cross_entropy_forward", "cross_entropy_backward"} <= entries
    assert not {"relu_backward", "cross_entropy_forward", "cross_entropy_backward"} & set(twins.uncovered())


# --------------------------------------------------------------------------- #
# The ops on the fake GPU: launches, syncs, float64 arrays
# --------------------------------------------------------------------------- #
@pytest.mark.gpu
@on_fake_gpu
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_is_six_launches(label_smoothing, weighted):
    """mean: the kernel, sum(loss), sum(target_weight), divide; backward: the divide's gradient, the kernel
    (was 16 + 7 launches composed of array ops, 23 + 11 with label smoothing)."""
    logits = minidl.randn(64, 10, device="cuda", requires_grad=True)
    target = minidl.tensor(np.random.default_rng(0).integers(0, 10, 64), device="cuda")
    weight = minidl.rand(10, device="cuda") if weighted else None
    forward, backward, sites = reports(
        lambda: F.cross_entropy(logits, target, weight, label_smoothing=label_smoothing), logits)
    assert forward["launches"] <= 4 and backward["launches"] <= 2, sites
    assert forward["kernels"] == backward["kernels"] == 1, sites
    for report in (forward, backward):
        assert report["syncs"] == report["float64_arrays"] == report["h2d_bytes"] == 0, report


@pytest.mark.gpu
@on_fake_gpu
@pytest.mark.parametrize("layout", ["linear", "conv2d output"])
def test_relu_backward_is_one_launch(layout):
    x = minidl.randn(8, 16, device="cuda", requires_grad=True)
    if layout == "conv2d output":
        conv = minidl.nn.Conv2d(3, 8, 3, padding=1).to("cuda")
        with minidl.no_grad():
            x = conv(minidl.randn(4, 3, 6, 6, device="cuda")).requires_grad_()
        assert not x.data.flags.c_contiguous
    forward, backward, sites = reports(lambda: F.relu(x), x)  # (the gradient ones(...) is C-contiguous)
    assert forward["launches"] == 1 and backward["kernels"] == 1, sites
    relu_sites = [count for site, count in sites[1] if "relu_backward" in site]
    assert relu_sites == [1], sites  # (a channel-major leaf's .grad is then copied to C order by autograd)
    assert backward["launches"] == (1 if layout == "linear" else 2), sites


@pytest.mark.gpu
@pytest.mark.parametrize("label_smoothing, ignore_index", [(0.0, -100), (0.2, 2)])
def test_cross_entropy_on_the_gpu_equals_the_cpu(device, label_smoothing, ignore_index):
    rng = np.random.default_rng(8)
    z, y = rng.standard_normal((6, 4, 3)).astype(np.float32), rng.integers(0, 4, (6, 3))
    weight = rng.uniform(0.5, 2, 4).astype(np.float32)
    results = []
    for where in ("cpu", device):
        logits = minidl.tensor(z, device=where, requires_grad=True)
        loss = F.cross_entropy(logits, minidl.tensor(y, device=where), minidl.tensor(weight, device=where),
                               ignore_index=ignore_index, label_smoothing=label_smoothing)
        loss.backward()
        results.append((loss.numpy(), logits.grad.numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
