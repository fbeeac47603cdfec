"""The norm family of the backend table (minidl/kernels/norm.py): batch norm + ReLU + residual add.

* the NumPy twins against the math written out channel by channel (plain loops, float64);
* the CUDA kernels' glue (CupyNorm) run on the CPU: ``launch`` is replaced by a stand-in that checks
  every argument against the kernel's C signature in norm.cu (C-contiguous arrays of the pointer's
  dtype, numpy scalars of the exact type) and calls the kernel's EMULATE adapter, so the strides,
  the two layouts and the adapters are checked here without a GPU or minidl.fakecupy;
* the fused Function (values and gradients against its composed twin, gradcheck, gradgradcheck),
* nn.BatchNormReLU2d against BatchNorm2d + ReLU (+ add): training, running statistics, eval mode,
  state_dict keys both ways; and on the 'cuda' device (a GPU, or MINIDL_FAKE_CUDA=1).
"""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.nn as nn
import minidl.nn.functional as F
from minidl.kernels import launch
from minidl.kernels import norm as kn
from minidl.ops import norm as ops_norm
from kernel_harness import KernelFamily, threaded_launch  # (tests/ is on sys.path)

shapes = st.tuples(st.integers(2, 4), st.integers(1, 4), st.lists(st.integers(1, 4), max_size=2)).map(
    lambda t: (t[0], t[1], *t[2]))
seeds = st.integers(0, 2**32 - 1)


# --------------------------------------------------------------------------- #
# The math written out: one channel at a time, float64
# --------------------------------------------------------------------------- #
def reference_forward(x, gamma, beta, eps, relu, residual):
    x = x.astype(np.float64)
    y, means, variances = np.empty_like(x), [], []
    for c in range(x.shape[1]):
        values = x[:, c]
        mu = values.sum() / values.size
        var = ((values - mu) ** 2).sum() / values.size
        z = gamma[c] * (values - mu) / np.sqrt(var + eps) + beta[c]
        y[:, c] = np.maximum(z, 0) if relu else z
        means.append(mu)
        variances.append(var)
    return (y if residual is None else y + residual), np.array(means), np.array(variances)


def reference_backward(dy, x, gamma, beta, eps, relu):
    """Per channel: g = dy masked where z <= 0; dx from the simplified chain rule."""
    dy, x = dy.astype(np.float64), x.astype(np.float64)
    dx, g_gamma, g_beta = np.empty_like(x), [], []
    for c in range(x.shape[1]):
        values, m = x[:, c], x[:, c].size
        mu = values.mean()
        inv_std = 1 / np.sqrt(((values - mu) ** 2).mean() + eps)
        x_hat = (values - mu) * inv_std
        g = dy[:, c] * ((gamma[c] * x_hat + beta[c]) > 0) if relu else dy[:, c]
        g_beta.append(g.sum())
        g_gamma.append((g * x_hat).sum())
        dx[:, c] = gamma[c] * inv_std * (g - g.sum() / m - x_hat * (g * x_hat).sum() / m)
    return dx, np.array(g_gamma), np.array(g_beta)


def channel_major(a):
    """The same values as a, stored (C, N, ...) like a conv output: a view, not C-contiguous."""
    return np.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1)


def draw_case(data, dtype=np.float32):
    shape = data.draw(shapes, label="shape")
    rng = np.random.default_rng(data.draw(seeds, label="seed"))
    affine = data.draw(st.booleans(), label="affine")
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    gamma = rng.uniform(0.5, 2, shape[1]).astype(dtype) if affine else np.ones(shape[1], dtype)
    beta = rng.uniform(-1, 1, shape[1]).astype(dtype) if affine else np.zeros(shape[1], dtype)
    residual = rng.standard_normal(shape).astype(dtype) if data.draw(st.booleans(), label="residual") else None
    dy = rng.standard_normal(shape).astype(dtype)
    layouts = [data.draw(st.booleans(), label=f"channel-major {k}") for k in ("x", "residual", "dy")]
    x, dy = (channel_major(a) if cm else a for a, cm in ((x, layouts[0]), (dy, layouts[2])))
    if residual is not None and layouts[1]:
        residual = channel_major(residual)
    return x, gamma, beta, residual, dy, data.draw(st.booleans(), label="relu")


# --------------------------------------------------------------------------- #
# Running CupyNorm on the CPU: a launch that checks the C signature and calls the adapter
# --------------------------------------------------------------------------- #
NORM = KernelFamily({"norm.cu": kn.EMULATE}, ["float*", "long long", "int", "float"])
SIGNATURES = NORM.signatures


kernel_launches = NORM.launches_fixture()


def test_the_signatures_were_read():
    assert SIGNATURES["bn_stats"][:3] == ["float*", "long long", "long long"]
    assert SIGNATURES["bn_stats"][-2:] == ["float", "int"]
    assert set(SIGNATURES) == set(kn.EMULATE)


# --------------------------------------------------------------------------- #
# Forward and backward: twin and kernels against the math
# --------------------------------------------------------------------------- #
@settings(max_examples=40)
@given(data=st.data())
def test_forward_twin_and_kernels_match_the_math(kernel_launches, data):
    kernel_launches.clear()  # (one fixture for all of hypothesis' examples)
    x, gamma, beta, residual, _, relu = draw_case(data)
    expected, mean, var = reference_forward(x, gamma, beta, 1e-5, relu, residual)
    for table in (kn.NumpyNorm, kn.CupyNorm):
        y, m, v = table.batch_norm_forward(x, gamma, beta, 1e-5, relu, residual)
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(m, mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(v, var, rtol=1e-4, atol=1e-5)
        assert y.dtype == np.float32 and y.shape == x.shape
    assert kernel_launches == ["bn_stats", "bn_apply"]
    assert y.flags.c_contiguous == x.flags.c_contiguous  # the output keeps the input's layout


@settings(max_examples=40)
@given(data=st.data())
def test_backward_twin_and_kernels_match_the_math(kernel_launches, data):
    kernel_launches.clear()
    x, gamma, beta, _, dy, relu = draw_case(data)
    expected = reference_backward(dy, x, gamma, beta, 1e-5, relu)
    _, mean, var = kn.NumpyNorm.batch_norm_forward(x, gamma, beta, 1e-5)
    for table in (kn.NumpyNorm, kn.CupyNorm):
        for got, want in zip(table.batch_norm_backward(dy, x, mean, var, gamma, beta, 1e-5, relu), expected):
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    assert kernel_launches == ["bn_backward_sums", "bn_backward_dx"]


@settings(max_examples=20)
@given(data=st.data())
def test_inference_twin_and_kernel_match_the_math(kernel_launches, data):
    kernel_launches.clear()
    x, gamma, beta, residual, _, relu = draw_case(data)
    rng = np.random.default_rng(data.draw(seeds, label="seed of the statistics"))
    mean, var = rng.standard_normal(x.shape[1]).astype(np.float32), rng.uniform(0.5, 2, x.shape[1]).astype(np.float32)
    expected = np.empty(x.shape)
    for c in range(x.shape[1]):  # with the given statistics, not the batch's
        z = gamma[c] * (x[:, c].astype(np.float64) - mean[c]) / np.sqrt(var[c] + 1e-5) + beta[c]
        expected[:, c] = np.maximum(z, 0) if relu else z
    expected = expected if residual is None else expected + residual
    for table in (kn.NumpyNorm, kn.CupyNorm):
        y = table.batch_norm_inference(x, mean, var, gamma, beta, 1e-5, relu, residual)
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    assert kernel_launches == ["bn_apply"]


@pytest.mark.parametrize("momentum", [0.1, np.array(0.25)])  # a number: in the kernel; a 0-d array: array ops
def test_running_statistics_are_updated_in_place(kernel_launches, momentum):
    rng = np.random.default_rng(1)
    x = channel_major(rng.standard_normal((5, 3, 2, 2)).astype(np.float32) + 3)
    _, mean, var = reference_forward(x, np.ones(3), np.zeros(3), 1e-5, False, None)
    m = float(momentum)
    for table in (kn.NumpyNorm, kn.CupyNorm):
        rm, rv = np.full(3, 0.5, np.float32), np.full(3, 2.0, np.float32)
        table.batch_norm_forward(x, np.ones(3, np.float32), np.zeros(3, np.float32), 1e-5, False, None, rm, rv,
                                 momentum)
        np.testing.assert_allclose(rm, (1 - m) * 0.5 + m * mean, rtol=1e-5)
        np.testing.assert_allclose(rv, (1 - m) * 2.0 + m * var * 20 / 19, rtol=1e-5)
        assert rm.dtype == rv.dtype == np.float32
    assert kernel_launches == ["bn_stats", "bn_apply"]


def test_one_pass_statistics_stay_accurate_far_from_zero(kernel_launches):
    # The kernel adds x and x**2 in double: with |mean| / std = 1000 a float32 sum of squares would
    # lose every digit of the variance.
    rng = np.random.default_rng(2)
    x = (1000 + rng.standard_normal((64, 2, 4, 4))).astype(np.float32)
    _, _, var = kn.CupyNorm.batch_norm_forward(x, np.ones(2, np.float32), np.zeros(2, np.float32), 1e-5)
    np.testing.assert_allclose(var, x.astype(np.float64).var(axis=(0, 2, 3)), rtol=1e-4)


def test_other_layouts_and_dtypes(kernel_launches):
    x = np.random.default_rng(3).standard_normal((3, 4, 5, 2)).astype(np.float32)
    odd = x[:, :, ::-1]  # neither layout: copied once, then the kernels run
    g, b = np.full(4, 1.5, np.float32), np.full(4, 0.5, np.float32)
    y, _, _ = kn.CupyNorm.batch_norm_forward(odd, g, b, 1e-5, True)
    np.testing.assert_allclose(y, reference_forward(odd, g, b, 1e-5, True, None)[0], rtol=1e-4, atol=1e-5)
    assert kernel_launches == ["bn_stats", "bn_apply"]
    y64, _, _ = kn.CupyNorm.batch_norm_forward(x.astype(np.float64), g.astype(np.float64), b.astype(np.float64),
                                               1e-5, True)  # float64: the twin, no kernel
    assert y64.dtype == np.float64 and kernel_launches == ["bn_stats", "bn_apply"]


# --------------------------------------------------------------------------- #
# The fused Function: its composed twin, gradcheck, second derivatives
# --------------------------------------------------------------------------- #
def leaves(data, with_residual):
    shape = data.draw(shapes, label="shape")
    rng = np.random.default_rng(data.draw(seeds, label="seed"))
    arrays = [rng.standard_normal(shape), rng.uniform(0.5, 2, shape[1]), rng.uniform(-1, 1, shape[1])]
    arrays += [rng.standard_normal(shape)] if with_residual else []
    return [minidl.tensor(a, dtype=np.float64, requires_grad=True) for a in arrays]


def fused(activation, eps=1e-5):
    return lambda x, gamma, beta, *residual: ops_norm.batch_norm_train(
        x, gamma, beta, eps, activation, residual[0] if residual else None)[0]


@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("with_residual", [False, True])
@settings(max_examples=15)
@given(data=st.data())
def test_fused_function_equals_its_twin_and_passes_gradcheck(activation, with_residual, data):
    inputs = leaves(data, with_residual)
    gy = minidl.randn(*inputs[0].shape, dtype=np.float64)
    results = []
    for run in (fused(activation), ops_norm.BatchNorm(1e-5, activation).composed):
        for t in inputs:
            t.grad = None
        y = run(*inputs)
        y.backward(gy)
        results.append([y.numpy()] + [t.grad.numpy() for t in inputs])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    assert minidl.gradcheck(fused(activation), inputs)


@pytest.mark.parametrize("activation", [None, "relu"])
def test_second_derivatives_go_through_the_twin(activation):
    rng = np.random.default_rng(4)
    inputs = [minidl.tensor(a, dtype=np.float64, requires_grad=True)
              for a in (rng.standard_normal((4, 2, 3)), rng.uniform(0.5, 2, 2), rng.uniform(-1, 1, 2),
                        rng.standard_normal((4, 2, 3)))]
    assert minidl.gradgradcheck(fused(activation, eps=0.1), inputs)


def test_bad_arguments_are_named():
    x = minidl.randn(2, 3, 4)
    with pytest.raises(ValueError, match="activation must be None or 'relu', got 'tanh'"):
        ops_norm.BatchNorm(1e-5, "tanh")
    with pytest.raises(ValueError, match=r"batch_norm_relu: residual must have the input's shape \(2, 3, 4\)"):
        F.batch_norm_relu(x, None, None, training=True, residual=minidl.randn(2, 3, 1))


def test_the_module_names_itself_on_bad_input():
    layer = nn.BatchNormReLU2d(4)
    with pytest.raises(ValueError, match=r"BatchNormReLU2d: expected 4 channels on axis 1 \(num_features\)"):
        layer(minidl.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"BatchNormReLU2d: expected a \(N, C, H, W\) input, got shape \(2, 4\)"):
        layer(minidl.randn(2, 4))
    with pytest.raises(ValueError, match=r"residual must have the input's shape \(2, 4, 5, 5\), got \(2, 4, 5, 4\)"):
        layer(minidl.randn(2, 4, 5, 5), residual=minidl.randn(2, 4, 5, 4))


# --------------------------------------------------------------------------- #
# nn.BatchNormReLU2d against BatchNorm2d + ReLU (+ residual)
# --------------------------------------------------------------------------- #
def pair(c, device="cpu", **kwargs):
    """A BatchNormReLU2d and a BatchNorm2d with the same (non-trivial) parameters."""
    fused_layer, plain = nn.BatchNormReLU2d(c, **kwargs).to(device), nn.BatchNorm2d(c, **kwargs).to(device)
    if fused_layer.affine:
        for layer in (fused_layer, plain):
            layer.weight.data[...] = minidl.backend.to_device(np.linspace(0.5, 2, c, dtype=np.float32), device)
            layer.bias.data[...] = minidl.backend.to_device(np.linspace(-1, 1, c, dtype=np.float32), device)
    return fused_layer, plain


def unfused(plain, x, residual=None):
    y = F.relu(plain(x))
    return y if residual is None else y + residual


@pytest.mark.parametrize("kwargs", [{}, {"affine": False}, {"momentum": None}, {"track_running_stats": False}])
@pytest.mark.parametrize("with_residual", [False, True])
def test_module_equals_batchnorm_then_relu(device, kwargs, with_residual):
    fused_layer, plain = pair(3, device, **kwargs)
    for step in range(3):
        x = minidl.randn(4, 3, 5, 5, device=device) * 2 + 1
        x_fused, x_plain = (minidl.Tensor(x.data, requires_grad=True) for _ in range(2))
        residual = minidl.randn(4, 3, 5, 5, device=device) if with_residual else None
        y_fused, y_plain = fused_layer(x_fused, residual), unfused(plain, x_plain, residual)
        np.testing.assert_allclose(y_fused.numpy(), y_plain.numpy(), rtol=1e-5, atol=1e-5)
        gy = minidl.randn(*x.shape, device=device)
        y_fused.backward(gy)
        y_plain.backward(gy)
        np.testing.assert_allclose(x_fused.grad.numpy(), x_plain.grad.numpy(), rtol=1e-4, atol=1e-5)
        for name, p in fused_layer.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), dict(plain.named_parameters())[name].grad.numpy(),
                                       rtol=1e-4, atol=1e-4)
    for name, buffer in fused_layer.named_buffers():
        np.testing.assert_allclose(buffer.numpy(), dict(plain.named_buffers())[name].numpy(), rtol=1e-5)
    fused_layer.eval(), plain.eval()
    x = minidl.randn(2, 3, 5, 5, device=device)
    residual = minidl.randn(2, 3, 5, 5, device=device) if with_residual else None
    y = fused_layer(x, residual)
    np.testing.assert_allclose(y.numpy(), unfused(plain, x, residual).numpy(), rtol=1e-5, atol=1e-6)
    if fused_layer.track_running_stats:  # evaluation: the running statistics, written out
        rm, rv = (minidl.backend.to_numpy(b.data).reshape(1, 3, 1, 1) for b in (plain.running_mean, plain.running_var))
        g, b = ((np.ones(3), np.zeros(3)) if not plain.affine else (plain.weight.numpy(), plain.bias.numpy()))
        z = g.reshape(1, 3, 1, 1) * (x.numpy() - rm) / np.sqrt(rv + plain.eps) + b.reshape(1, 3, 1, 1)
        expected = np.maximum(z, 0) + (0 if residual is None else residual.numpy())
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)
    x.requires_grad_()
    fused_layer(x, residual).sum().backward()  # with a gradient wanted, evaluation is composed of ops
    assert x.grad is not None and x.grad.shape == x.shape


def test_conv_output_layout_goes_through_without_a_copy(device):
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False).to(device)
    x = conv(minidl.randn(4, 2, 6, 6, device=device))
    fused_layer, plain = pair(3, device)
    y = fused_layer(x)
    np.testing.assert_allclose(y.numpy(), unfused(plain, x).numpy(), rtol=1e-5, atol=1e-5)
    assert y.data.flags.c_contiguous == x.data.flags.c_contiguous


def test_state_dicts_load_into_either_module():
    fused_layer, plain = pair(4)
    fused_layer(minidl.randn(3, 4, 2, 2))  # running statistics move
    assert list(fused_layer.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(fused_layer.state_dict())
    back = nn.BatchNormReLU2d(4)
    back.load_state_dict(plain.state_dict())
    for key, value in fused_layer.state_dict().items():
        np.testing.assert_array_equal(np.asarray(back.state_dict()[key].numpy()), np.asarray(value.numpy()))
    assert repr(back) == "BatchNormReLU2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"


def test_functional_form_matches_the_module():
    layer = nn.BatchNormReLU2d(3)
    x, residual = minidl.randn(2, 3, 4, 4), minidl.randn(2, 3, 4, 4)
    rm, rv = minidl.zeros(3), minidl.ones(3)
    y = F.batch_norm_relu(x, rm, rv, layer.weight, layer.bias, training=True, residual=residual)
    np.testing.assert_allclose(y.numpy(), layer(x, residual).numpy(), rtol=1e-6)
    np.testing.assert_allclose(rm.numpy(), layer.running_mean.numpy(), rtol=1e-6)


# --------------------------------------------------------------------------- #
# What it costs on a GPU, counted on the CPU stand-in (MINIDL_FAKE_CUDA=1)
# --------------------------------------------------------------------------- #
@pytest.mark.gpu
@pytest.mark.skipif(os.environ.get("MINIDL_FAKE_CUDA") != "1", reason="counts launches on minidl.fakecupy")
@pytest.mark.parametrize("with_residual", [False, True])
def test_launches_per_batchnorm_relu_add(with_residual):
    from minidl.fakecupy import meter

    layer = nn.BatchNormReLU2d(16).to("cuda")
    conv = nn.Conv2d(8, 16, 3, padding=1, bias=False).to("cuda")
    with minidl.no_grad():
        channel_major_x = conv(minidl.randn(8, 8, 8, 8, device="cuda"))
    x = minidl.randn(8, 16, 8, 8, device="cuda", requires_grad=True)
    residual = minidl.randn(8, 16, 8, 8, device="cuda") if with_residual else None
    gy = minidl.randn(8, 16, 8, 8, device="cuda")
    for _ in range(2):  # the second round is counted (no first-call set-up)
        x.grad = layer.weight.grad = layer.bias.grad = None
        with meter.measure() as forward:
            y = layer(x, residual)
        with meter.measure() as backward:
            y.backward(gy)
        with meter.measure() as conv_layout:
            layer(channel_major_x, residual)
    # forward: bn_stats (+ running statistics) and bn_apply, and num_batches_tracked += 1;
    # backward: bn_backward_sums and bn_backward_dx (the residual's gradient is gy: no launch)
    for region, launches in ((forward, 3), (backward, 2), (conv_layout, 3)):
        report = region.report()
        assert report["launches"] == launches, region.sites()
        assert report["syncs"] == report["float64_arrays"] == 0
    assert forward.report()["kernels"] == backward.report()["kernels"] == 2
    layer.eval()
    with minidl.no_grad(), meter.measure() as evaluation:
        layer(channel_major_x, residual)
    assert evaluation.report()["launches"] == evaluation.report()["kernels"] == 1  # bn_apply


# --------------------------------------------------------------------------- #
# The CUDA source itself, compiled as C++ and run on CPU threads (needs g++ with C++20)
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def cuda_source_on_threads(tmp_path_factory):
    """A launch() that runs norm.cu's kernels compiled by g++ (small grids, so every loop strides)."""
    reductions = {"bn_stats": (2, 64), "bn_backward_sums": (2, 64)}  # (any power of 2 threads per block)
    return threaded_launch(tmp_path_factory, ["norm.cu"], reductions, default_grid=(3, 32))


@pytest.mark.parametrize("shape", [(2, 3), (5, 4, 7), (3, 5, 4, 4), (1, 3, 2, 2), (4, 1, 3, 3), (2, 3, 9, 11)])
def test_cuda_source_agrees_with_the_twins(monkeypatch, cuda_source_on_threads, shape):
    monkeypatch.setattr(launch, "launch", cuda_source_on_threads)
    monkeypatch.setattr(kn.backend, "cupy", np)
    rng = np.random.default_rng(5)
    for x_cm, other_cm, relu, with_residual, running in [(0, 0, 0, 0, 0), (1, 0, 1, 1, 1), (0, 1, 1, 1, 0),
                                                       (1, 1, 0, 1, 1), (1, 0, 1, 0, 0)]:
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        dy, residual = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
        x = channel_major(x) if x_cm else x
        dy, residual = (channel_major(a) if other_cm else a for a in (dy, residual))
        gamma, beta = rng.uniform(0.5, 2, shape[1]).astype(np.float32), rng.uniform(-1, 1, shape[1]).astype(np.float32)
        results = []
        for table in (kn.NumpyNorm, kn.CupyNorm):
            rm, rv = np.zeros(shape[1], np.float32), np.ones(shape[1], np.float32)
            stats = (rm, rv, 0.1) if running else (None, None, 0.0)
            y, mean, var = table.batch_norm_forward(x, gamma, beta, 1e-5, bool(relu),
                                                    residual if with_residual else None, *stats)
            results.append([y, mean, var, rm, rv, *table.batch_norm_backward(dy, x, mean, var, gamma, beta, 1e-5,
                                                                             bool(relu))])
        for twin, kernel in zip(*results):
            np.testing.assert_allclose(kernel, twin, rtol=1e-4, atol=1e-4)
