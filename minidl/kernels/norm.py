"""The norm family of the backend table: batch norm's training forward and backward, with the
ReLU and the residual add that may follow it, as NumPy twins beside CUDA kernels (norm.cu).

For x shaped (N, C, *spatial), per channel c over its M = N * prod(spatial) values:

    forward    mean, var = the batch's mean and biased variance           (kernel bn_stats)
               x_hat = (x - mean) / sqrt(var + eps),  z = gamma * x_hat + beta
               y = act(z) [+ residual],  act = relu or identity           (kernel bn_apply)
    backward   g = dy * (z > 0) with relu, else dy                        (the gradient at z)
               g_beta = sum(g),  g_gamma = sum(g * x_hat)                 (kernel bn_backward_sums)
               dx = gamma / sqrt(var + eps) * (g - g_beta / M - x_hat * g_gamma / M)
                                                                          (kernel bn_backward_dx)

and, when running statistics are given, bn_stats also updates them in place (PyTorch's rule,
unbiased variance): running = (1 - momentum) * running + momentum * (mean, var * M / (M - 1)).
The residual's gradient is dy itself: it needs no kernel. z is recomputed from x in backward
(two multiply-adds) rather than kept: nothing but x and two numbers per channel is saved.

So on a GPU a BatchNorm + ReLU + residual add is 2 launches forward and 2 backward (the same
layers as separate array ops, running statistics included: 23 forward and 13 backward), and in
evaluation, with the running statistics, bn_apply alone. The kernels read and write arrays through
strides, so both activation layouts work without a copy: C-contiguous (N, C, *spatial), and the
(N, C, H, W) view of (C, N, H, W) storage that conv2d returns (minidl/ops/conv.py).
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.kernels import launch

FILE = "norm.cu"
REDUCE_BLOCK = 512  # threads per channel in bn_stats and bn_backward_sums (a power of 2, <= norm.cu's MAX_BLOCK)


# --------------------------------------------------------------------------- #
# The NumPy twins: one function per kernel, then the two table entries that use them
# --------------------------------------------------------------------------- #
def per_channel(v, ndim):
    """A (C,) vector shaped (1, C, 1, ...) to broadcast against an ndim-dimensional x."""
    return v.reshape((1, v.shape[0]) + (1,) * (ndim - 2))


def reduced_axes(ndim):
    """Every axis but the channel axis 1."""
    return (0,) + tuple(range(2, ndim))


def statistics(x, running_mean=None, running_var=None, momentum=0.0):
    """(mean, biased var) per channel, two passes (mean, then the mean squared deviation); updates
    the running statistics in place when given (momentum a number or a 0-d array)."""
    axes = reduced_axes(x.ndim)
    mean = x.mean(axis=axes)
    centered = x - per_channel(mean, x.ndim)
    var = (centered * centered).mean(axis=axes)
    update_running(running_mean, running_var, mean, var, x.size // x.shape[1], momentum)
    return mean, var


def update_running(running_mean, running_var, mean, var, count, momentum):
    """running = (1 - momentum) * running + momentum * batch statistic, in place (each if given),
    with the unbiased variance var * M / (M - 1), M = count values per channel."""
    if running_mean is not None:
        running_mean[...] = (1 - momentum) * running_mean + momentum * mean
    if running_var is not None:
        running_var[...] = (1 - momentum) * running_var + momentum * (var * (count / (count - 1)))


def normalised(x, mean, var, eps):
    """x_hat = (x - mean) / sqrt(var + eps), per channel, in x's dtype."""
    inv_std = (1 / backend.get_array_module(x).sqrt(var + eps)).astype(x.dtype, copy=False)
    return (x - per_channel(mean, x.ndim)) * per_channel(inv_std, x.ndim)


def apply(x, mean, var, gamma, beta, eps, relu, residual=None):
    """y = act(gamma * x_hat + beta) [+ residual]."""
    y = normalised(x, mean, var, eps) * per_channel(gamma, x.ndim) + per_channel(beta, x.ndim)
    if relu:
        y = backend.get_array_module(x).maximum(y, 0)
    return y if residual is None else y + residual


def grad_at_z(dy, x_hat, gamma, beta, relu):
    """The gradient at z = gamma * x_hat + beta: dy, zeroed where the ReLU was off (z <= 0)."""
    if not relu:
        return dy
    return dy * (x_hat * per_channel(gamma, dy.ndim) + per_channel(beta, dy.ndim) > 0)


def backward_sums(g, x_hat):
    """(g_beta, g_gamma) = (sum(g), sum(g * x_hat)) per channel."""
    axes = reduced_axes(g.ndim)
    return g.sum(axis=axes), (g * x_hat).sum(axis=axes)


def backward_dx(g, x_hat, var, gamma, eps, g_beta, g_gamma):
    """dx = gamma / sqrt(var + eps) * (g - g_beta / M - x_hat * g_gamma / M)."""
    count = g.size // g.shape[1]
    xp = backend.get_array_module(g)
    scale = per_channel((gamma / xp.sqrt(var + eps)).astype(g.dtype, copy=False), g.ndim)
    return scale * (g - per_channel(g_beta, g.ndim) / count - x_hat * per_channel(g_gamma, g.ndim) / count)


class NumpyNorm:
    @staticmethod
    def batch_norm_forward(x, gamma, beta, eps, relu=False, residual=None, running_mean=None, running_var=None,
                           momentum=0.0):
        """(y, mean, var): y = act(gamma * x_hat + beta) [+ residual] with the batch's statistics
        (mean, biased var per channel), which update running_mean/running_var in place if given."""
        mean, var = statistics(x, running_mean, running_var, momentum)
        return apply(x, mean, var, gamma, beta, eps, relu, residual), mean, var

    @staticmethod
    def batch_norm_inference(x, running_mean, running_var, gamma, beta, eps, relu=False, residual=None):
        """y = act(gamma * (x - running_mean) / sqrt(running_var + eps) + beta) [+ residual]: evaluation."""
        return apply(x, running_mean, running_var, gamma, beta, eps, relu, residual)

    @staticmethod
    def batch_norm_backward(dy, x, mean, var, gamma, beta, eps, relu=False):
        """(dx, g_gamma, g_beta) for the forward above (the residual's gradient is dy)."""
        x_hat = normalised(x, mean, var, eps)
        g = grad_at_z(dy, x_hat, gamma, beta, relu)
        g_beta, g_gamma = backward_sums(g, x_hat)
        return backward_dx(g, x_hat, var, gamma, eps, g_beta, g_gamma), g_gamma, g_beta


# --------------------------------------------------------------------------- #
# The CUDA kernels' glue
# --------------------------------------------------------------------------- #
def channel_major(a):
    """True for an (N, C, ...) view of C-contiguous (C, N, ...) storage (what conv2d returns)."""
    return not a.flags.c_contiguous and a.swapaxes(0, 1).flags.c_contiguous


def storage(a):
    """(a C-contiguous array holding a's values, sn, sc): element (n, c, s) of a (N, C, *spatial)
    is at n * sn + c * sc + s of it. A C-contiguous a is its own storage, a channel-major one
    gives its (C, N, ...) storage (both views, no copy); any other layout is copied once."""
    n, c = a.shape[:2]
    size = a.size // (n * c)  # S: the spatial size
    if channel_major(a):
        return a.swapaxes(0, 1), numpy.int64(size), numpy.int64(n * size)
    return backend.get_array_module(a).ascontiguousarray(a), numpy.int64(c * size), numpy.int64(size)


def empty_like_layout(x):
    """An uninitialised float32 array of x's shape, channel-major if x is, else C-contiguous."""
    xp = backend.get_array_module(x)
    if channel_major(x):
        return xp.empty((x.shape[1], x.shape[0]) + x.shape[2:], numpy.float32).swapaxes(0, 1)
    return xp.empty(x.shape, numpy.float32)


def sizes(x):
    """(N, C, S) as the kernels take them."""
    n, c = x.shape[:2]
    return numpy.int64(n), numpy.int64(c), numpy.int64(x.size // (n * c))


def fused_kernels_apply(*arrays):
    """The kernels handle float32 arrays with at least one value per channel and sample."""
    return all(a is None or a.dtype == numpy.float32 for a in arrays) and arrays[0].size > 0


class CupyNorm(NumpyNorm):  # pragma: no cover - GPU (or fakecupy)
    @staticmethod
    def batch_norm_forward(x, gamma, beta, eps, relu=False, residual=None, running_mean=None, running_var=None,
                           momentum=0.0):
        """Two launches: bn_stats (and the running statistics' update), bn_apply."""
        if not fused_kernels_apply(x, gamma, beta, residual, running_mean, running_var):
            return NumpyNorm.batch_norm_forward(x, gamma, beta, eps, relu, residual, running_mean, running_var,
                                                momentum)
        cupy = backend.cupy
        (n, c, s), (xs, sn, sc) = sizes(x), storage(x)
        mean, var = cupy.empty(x.shape[1], numpy.float32), cupy.empty(x.shape[1], numpy.float32)
        number = isinstance(momentum, (int, float, numpy.floating))
        in_kernel = running_mean is not None and running_var is not None and number
        running = (running_mean, running_var) if in_kernel else (mean, var)  # (stand-ins when update = 0)
        launch.launch(FILE, "bn_stats", int(c) * REDUCE_BLOCK,
                      (xs, sn, sc, n, c, s, mean, var, *running, numpy.float32(momentum if in_kernel else 0),
                       numpy.int32(in_kernel)), block=REDUCE_BLOCK)
        if not in_kernel:  # momentum is a device scalar (a cumulative average), or one buffer is missing
            update_running(running_mean, running_var, mean, var, int(n * s), momentum)
        return CupyNorm.batch_norm_inference(x, mean, var, gamma, beta, eps, relu, residual), mean, var

    @staticmethod
    def batch_norm_inference(x, mean, var, gamma, beta, eps, relu=False, residual=None):
        """One launch: bn_apply, with the given (running or batch) statistics."""
        if not fused_kernels_apply(x, mean, var, gamma, beta, residual):
            return NumpyNorm.batch_norm_inference(x, mean, var, gamma, beta, eps, relu, residual)
        cupy = backend.cupy
        (n, c, s), (xs, sn, sc) = sizes(x), storage(x)
        rs, rn, rc = storage(residual) if residual is not None else (xs, sn, sc)
        y = empty_like_layout(x)
        launch.launch(FILE, "bn_apply", x.size,
                      (xs, sn, sc, rs, rn, rc, numpy.int32(residual is not None), cupy.ascontiguousarray(mean),
                       cupy.ascontiguousarray(var), cupy.ascontiguousarray(gamma), cupy.ascontiguousarray(beta),
                       numpy.float32(eps), numpy.int32(relu), storage(y)[0], n, c, s))
        return y

    @staticmethod
    def batch_norm_backward(dy, x, mean, var, gamma, beta, eps, relu=False):
        """Two launches: bn_backward_sums (g_beta, g_gamma), bn_backward_dx."""
        if not fused_kernels_apply(x, dy, gamma, beta, mean, var):
            return NumpyNorm.batch_norm_backward(dy, x, mean, var, gamma, beta, eps, relu)
        cupy = backend.cupy
        (n, c, s), (xs, sn, sc), (dys, dn, dc) = sizes(x), storage(x), storage(dy)
        gamma, beta = cupy.ascontiguousarray(gamma), cupy.ascontiguousarray(beta)
        g_beta, g_gamma = cupy.empty(x.shape[1], numpy.float32), cupy.empty(x.shape[1], numpy.float32)
        common = (dys, dn, dc, xs, sn, sc, mean, var, gamma, beta, numpy.float32(eps), numpy.int32(relu))
        launch.launch(FILE, "bn_backward_sums", int(c) * REDUCE_BLOCK, (*common, g_beta, g_gamma, n, c, s),
                      block=REDUCE_BLOCK)
        dx = empty_like_layout(x)
        launch.launch(FILE, "bn_backward_dx", x.size, (*common, g_beta, g_gamma, storage(dx)[0], n, c, s))
        return dx, g_gamma, g_beta


# --------------------------------------------------------------------------- #
# Running the kernels on the CPU stand-in: each adapter calls the twin of its kernel
# --------------------------------------------------------------------------- #
def view(flat, sn, sc, n, c, s):
    """The (N, C, S) view of a storage array whose element (n, c, s) is at n * sn + c * sc + s."""
    flat = flat.reshape(-1)
    size = flat.itemsize
    return numpy.lib.stride_tricks.as_strided(flat, (n, c, s), (sn * size, sc * size, size))


def _emulate_stats(x, sn, sc, n, c, s, mean, var, running_mean, running_var, momentum, update):
    x = view(x, sn, sc, n, c, s)
    if update:
        mean[...], var[...] = statistics(x, running_mean, running_var, numpy.float32(momentum))
    else:
        mean[...], var[...] = statistics(x)


def _emulate_apply(x, sn, sc, residual, rn, rc, has_residual, mean, var, gamma, beta, eps, relu, y, n, c, s):
    residual = view(residual, rn, rc, n, c, s) if has_residual else None
    view(y, sn, sc, n, c, s)[...] = apply(view(x, sn, sc, n, c, s), mean, var, gamma, beta, eps, relu, residual)


def _emulate_sums(dy, dn, dc, x, sn, sc, mean, var, gamma, beta, eps, relu, g_beta, g_gamma, n, c, s):
    x_hat = normalised(view(x, sn, sc, n, c, s), mean, var, eps)
    g = grad_at_z(view(dy, dn, dc, n, c, s), x_hat, gamma, beta, relu)
    g_beta[...], g_gamma[...] = backward_sums(g, x_hat)


def _emulate_dx(dy, dn, dc, x, sn, sc, mean, var, gamma, beta, eps, relu, g_beta, g_gamma, dx, n, c, s):
    x_hat = normalised(view(x, sn, sc, n, c, s), mean, var, eps)
    g = grad_at_z(view(dy, dn, dc, n, c, s), x_hat, gamma, beta, relu)
    view(dx, sn, sc, n, c, s)[...] = backward_dx(g, x_hat, var, gamma, eps, g_beta, g_gamma)


EMULATE = {"bn_stats": _emulate_stats, "bn_apply": _emulate_apply,
           "bn_backward_sums": _emulate_sums, "bn_backward_dx": _emulate_dx}


# --------------------------------------------------------------------------- #
# Cases for minidl.gpu_check: each kernel entry against its twin on one GPU (besides its own)
# --------------------------------------------------------------------------- #
def _channel_major(x):
    return numpy.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)


def _check_forward_2d_many_rows(rng):
    """(N, C) input, M = 1000 values per channel (each reduction thread adds several), no extras."""
    return (rng.standard_normal((1000, 5)).astype(numpy.float32), numpy.ones(5, numpy.float32),
            numpy.zeros(5, numpy.float32), 1e-5)


def _check_forward_far_from_zero(rng):
    """|mean| / std = 1000 (the one-pass double sums must hold), running statistics, C-contiguous x,
    a channel-major residual."""
    x = (1000 + rng.standard_normal((32, 3, 16, 16))).astype(numpy.float32)
    residual = _channel_major(rng.standard_normal((32, 3, 16, 16)).astype(numpy.float32))
    return ((x, numpy.full(3, 2, numpy.float32), numpy.zeros(3, numpy.float32), 1e-5),
            {"relu": True, "residual": residual, "running_mean": numpy.zeros(3, numpy.float32),
             "running_var": numpy.ones(3, numpy.float32), "momentum": 0.25})


def _check_backward_layouts(rng):
    """A channel-major x (a conv output) with a C-contiguous dy, M = 64 * 8 * 8 per channel."""
    x = _channel_major(rng.standard_normal((64, 7, 8, 8)).astype(numpy.float32))
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    gamma, beta = rng.uniform(0.5, 2, 7).astype(numpy.float32), rng.uniform(-1, 1, 7).astype(numpy.float32)
    return (rng.standard_normal(x.shape).astype(numpy.float32), x, mean, var, gamma, beta, 1e-5), {"relu": False}


def _check_inference_channel_major(rng):
    """Evaluation: running statistics, a channel-major x, a C-contiguous residual, ReLU."""
    x = _channel_major(rng.standard_normal((16, 5, 6, 6)).astype(numpy.float32))
    mean, var = rng.standard_normal(5).astype(numpy.float32), rng.uniform(0.5, 2, 5).astype(numpy.float32)
    gamma, beta = rng.uniform(0.5, 2, 5).astype(numpy.float32), rng.uniform(-1, 1, 5).astype(numpy.float32)
    residual = rng.standard_normal(x.shape).astype(numpy.float32)
    return (x, mean, var, gamma, beta, 1e-5), {"relu": True, "residual": residual}


CHECK_CASES = [
    ("batch_norm_inference", _check_inference_channel_major),
    ("batch_norm_forward", _check_forward_2d_many_rows),
    ("batch_norm_forward", _check_forward_far_from_zero, {"atol": 1e-3}),
    ("batch_norm_backward", _check_backward_layouts, {"atol": 1e-4}),
]
