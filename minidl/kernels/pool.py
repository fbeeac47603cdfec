"""The pool family of the backend table: max pooling forward and backward.

The geometry, the same for the NumPy twins and the CUDA kernels (pool.cu): x is (N, C, H, W);
window (p, q) at kernel offset (i, j) reads the pixel

    (p*sh + i*dh - ph,  q*sw + j*dw - pw)      (stride s, dilation d, padding p)

when it lies inside the image; the padding is never read (it counts as -inf). The output is
(N, C, OH, OW), OH and OW as PyTorch computes them (``pooled_size``, ceil_mode included).

* forward:  y[n, c, p, q] = the window's max, and ``indices[n, c, p, q]`` = its winner as a flat
  index h*W + w into the (H, W) plane (PyTorch's return_indices), int64. The winner is the
  window's first pixel, in kernel order (i, j) row by row, that is a NaN, or else equal to the
  max (PyTorch's first maximum). A window with no real pixel (dilation can make one) gets -inf
  and index -1.
* backward: gx[n, c, h, w] = the sum of gy[n, c, p, q] over the windows (p, q) whose winner is
  (h, w). On the GPU a gather: one thread per input pixel adds, in a fixed order, the gradients
  of the at most KH*KW windows that can reach it: deterministic, no atomics.

One launch each on a GPU (float32). The forward twin stacks the K = KH*KW pixels of every
window (one copy of x, like im2col) and finds each window's max and first maximum in whole-array
passes; the backward twin adds the gradients one kernel offset at a time (a loop over offsets,
never over pixels). A global window (one per plane) takes argmax and a one-hot instead.
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.kernels import launch


def pooled_size(size, kernel, stride, pad, dilation, ceil_mode):
    """PyTorch's output size; with ceil_mode a last, partial window is kept if it starts
    inside the input or its left padding."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _output_shape(x_shape, kernel, stride, padding, dilation, ceil_mode):
    n, c, h, w = x_shape
    return (n, c) + tuple(pooled_size(*axis, ceil_mode) for axis in zip((h, w), kernel, stride, padding, dilation))


def _reads(out, size, kernel_offset, stride, pad, dilation, xp):
    """Along one axis, at one kernel offset: the pixel each of the ``out`` windows reads, and
    whether it is a real pixel (not padding)."""
    at = xp.arange(out) * stride + kernel_offset * dilation - pad
    return at, (at >= 0) & (at < size)


def _window_slice(kernel_offset, out, stride, dilation):
    """The padded pixels the ``out`` windows read at one kernel offset: offset*d, then every s-th."""
    start = kernel_offset * dilation
    return slice(start, start + (out - 1) * stride + 1, stride)


def _padding(size, out, kernel, stride, pad, dilation):
    """(before, after) padding of one axis that holds every window (ceil_mode's last window may
    reach further after than ``pad``)."""
    reach = (out - 1) * stride + (kernel - 1) * dilation + 1
    return pad, max(0, reach - size - pad)


def _is_global(x_shape, out_shape, kernel, padding):
    """One window covering the whole plane (adaptive_max_pool2d(x, 1), a global max pool)."""
    return tuple(out_shape[2:]) == (1, 1) and tuple(kernel) == tuple(x_shape[2:]) and tuple(padding) == (0, 0)


class NumpyPool:
    @staticmethod
    def max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode):
        """(y, indices) of max pooling x (N, C, H, W): see the module docstring. The twin stacks
        the K = KH*KW pixels of every window (one copy of x, like im2col), takes their max, and
        finds the first offset holding it."""
        xp = backend.get_array_module(x)
        out_shape = _output_shape(x.shape, kernel, stride, padding, dilation, ceil_mode)
        (n, c, h, w), (oh, ow) = x.shape, out_shape[2:]
        if _is_global(x.shape, out_shape, kernel, padding):  # argmax finds the first max (or NaN)
            plane = x.reshape(n, c, h * w)
            winner = plane.argmax(axis=2)[:, :, None]
            best = xp.take_along_axis(plane, winner, axis=2)
            return best.reshape(out_shape), winner.astype(xp.int64, copy=False).reshape(out_shape)
        pads = [_padding(*axis) for axis in zip((h, w), (oh, ow), kernel, stride, padding, dilation)]
        padded = any(map(any, pads))
        x_pad = xp.pad(x, ((0, 0), (0, 0), *pads), constant_values=-xp.inf) if padded else x
        offsets = [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]
        # windows[k, n, c, p, q]: the pixel window (p, q) reads at the k-th kernel offset (i, j)
        windows = xp.stack([x_pad[:, :, _window_slice(i, oh, stride[0], dilation[0]),
                                  _window_slice(j, ow, stride[1], dilation[1])] for i, j in offsets])
        best = windows.max(axis=0)  # a NaN is the max of its window
        is_best = (windows == best) | xp.isnan(windows)
        flat = []  # flat[k][p, q]: the flat index h*W + w of the pixel window (p, q) reads at offset k
        for i, j in offsets:
            rows, real_rows = _reads(oh, h, i, stride[0], padding[0], dilation[0], xp)
            cols, real_cols = _reads(ow, w, j, stride[1], padding[1], dilation[1], xp)
            flat.append(xp.where(real_rows[:, None] & real_cols[None, :], rows[:, None] * w + cols[None, :], -1))
        flat.append(xp.full((oh, ow), -1, dtype=xp.int64))  # "offset K": no real pixel was best
        flat = xp.stack(flat)
        if padded:  # the padding never wins
            is_best &= (flat[:-1] >= 0)[:, None, None]
        # The first best offset: offset k ranks K - k (earlier is higher), the highest best rank wins.
        size = len(offsets)
        rank = xp.arange(size, 0, -1, dtype=numpy.min_scalar_type(size))[:, None, None, None, None]
        first = size - (is_best * rank).max(axis=0).astype(xp.int64)  # (N, C, OH, OW); K: no real pixel
        winner = flat.reshape(-1)[first * (oh * ow) + xp.arange(oh * ow).reshape(oh, ow)]  # flat[first, p, q]
        return best, winner

    @staticmethod
    def max_pool2d_backward(gy, indices, input_shape, kernel, stride, padding, dilation):
        """gx (``input_shape``): each window's gradient gy[n, c, p, q] added to its winner pixel.
        The twin gathers like the kernel: at each kernel offset, the windows whose winner is the
        pixel they read there pass their gradient on to it."""
        xp = backend.get_array_module(gy)
        n, c, h, w = input_shape
        oh, ow = gy.shape[2:]
        if _is_global(input_shape, gy.shape, kernel, padding):  # one window: a one-hot row per plane
            is_winner = xp.arange(h * w) == indices.reshape(n, c, 1)
            return xp.where(is_winner, gy.reshape(n, c, 1), 0).astype(gy.dtype, copy=False).reshape(input_shape)
        (top, bottom), (left, right) = pads = [
            _padding(*axis) for axis in zip((h, w), (oh, ow), kernel, stride, padding, dilation)
        ]
        gx = xp.zeros((n, c, h + top + bottom, w + left + right), dtype=gy.dtype)
        for i in range(kernel[0]):
            rows, real_rows = _reads(oh, h, i, stride[0], padding[0], dilation[0], xp)
            for j in range(kernel[1]):
                cols, real_cols = _reads(ow, w, j, stride[1], padding[1], dilation[1], xp)
                chose_it = indices == rows[:, None] * w + cols[None, :]  # (N, C, OH, OW)
                if any(map(any, pads)):  # a padding position's "index" may name a real pixel
                    chose_it &= real_rows[:, None] & real_cols[None, :]
                # At one offset different windows read different pixels, so += adds each once.
                gx[:, :, _window_slice(i, oh, stride[0], dilation[0]),
                   _window_slice(j, ow, stride[1], dilation[1])] += gy * chose_it
        return gx[:, :, top:top + h, left:left + w]


def _dense(a):
    """A C-contiguous array holding ``a``'s elements, and ``a``'s element strides: ``a`` itself,
    or the channel-major (C, N, H, W) array that a conv2d output is a transposed view of (no copy),
    or else a C-contiguous copy."""
    xp = backend.get_array_module(a)
    held = a if a.flags.c_contiguous else a.transpose(1, 0, 2, 3)
    if not held.flags.c_contiguous:
        a = held = xp.ascontiguousarray(a)
    return held, tuple(numpy.int64(s // a.itemsize) for s in a.strides)


def _geometry_args(kernel, stride, padding, dilation):
    return tuple(numpy.int32(v) for v in (*kernel, *stride, *padding, *dilation))


class CupyPool(NumpyPool):  # pragma: no cover - GPU (or fakecupy)
    @staticmethod
    def max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode):
        """One launch of ``max_pool2d_forward_f32``: one thread per output scans its window."""
        if x.dtype != numpy.float32:
            return NumpyPool.max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
        cupy = backend.cupy
        out_shape = _output_shape(x.shape, kernel, stride, padding, dilation, ceil_mode)
        y = cupy.empty(out_shape, dtype=numpy.float32)
        indices = cupy.empty(out_shape, dtype=numpy.int64)
        held, strides = _dense(x)
        sizes = tuple(numpy.int32(v) for v in (*x.shape, *out_shape[2:]))
        launch.launch("pool.cu", "max_pool2d_forward_f32", y.size,
               (held, y, indices, *sizes, *strides, *_geometry_args(kernel, stride, padding, dilation)))
        return y, indices

    @staticmethod
    def max_pool2d_backward(gy, indices, input_shape, kernel, stride, padding, dilation):
        """One launch of ``max_pool2d_backward_f32``: one thread per input pixel gathers its gradient."""
        if gy.dtype != numpy.float32:
            return NumpyPool.max_pool2d_backward(gy, indices, input_shape, kernel, stride, padding, dilation)
        cupy = backend.cupy
        gx = cupy.empty(input_shape, dtype=numpy.float32)
        held, strides = _dense(gy)
        indices = cupy.ascontiguousarray(indices)
        sizes = tuple(numpy.int32(v) for v in (*input_shape, *gy.shape[2:]))
        launch.launch("pool.cu", "max_pool2d_backward_f32", gx.size,
               (held, indices, gx, *sizes, *strides, *_geometry_args(kernel, stride, padding, dilation)))
        return gx


# --------------------------------------------------------------------------- #
# The CPU stand-in runs the kernels through these adapters (numpy payloads in, outputs written in place)
# --------------------------------------------------------------------------- #
def _strided(held, shape, strides):
    """The (N, C, H, W) array a kernel reads from ``held`` through element ``strides``."""
    flat = held.reshape(-1)
    return numpy.lib.stride_tricks.as_strided(flat, shape, tuple(s * flat.itemsize for s in strides))


def _emulate_forward(x, y, indices, n, c, h, w, oh, ow, sn, sc, sh, sw, kh, kw, st_h, st_w, ph, pw, dh, dw):
    xs = _strided(x, (n, c, h, w), (sn, sc, sh, sw))
    # ceil_mode only decides OH, OW, which the launch passes: find the mode that gives them
    mode = _output_shape(xs.shape, (kh, kw), (st_h, st_w), (ph, pw), (dh, dw), False)[2:] != (oh, ow)
    y[...], indices[...] = NumpyPool.max_pool2d_forward(xs, (kh, kw), (st_h, st_w), (ph, pw), (dh, dw), mode)


def _emulate_backward(gy, indices, gx, n, c, h, w, oh, ow, sn, sc, sh, sw, kh, kw, st_h, st_w, ph, pw, dh, dw):
    gys = _strided(gy, (n, c, oh, ow), (sn, sc, sh, sw))
    gx[...] = NumpyPool.max_pool2d_backward(gys, indices, (n, c, h, w), (kh, kw), (st_h, st_w), (ph, pw), (dh, dw))


EMULATE = {"max_pool2d_forward_f32": _emulate_forward, "max_pool2d_backward_f32": _emulate_backward}


# --------------------------------------------------------------------------- #
# Cases for the prepared GPU check (python -m minidl.gpu_check): kernel vs twin on the same inputs
# --------------------------------------------------------------------------- #
def _channel_major(x):
    """x (N, C, H, W) held as (C, N, H, W) memory: the layout conv2d's outputs have."""
    return numpy.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)


def _check_ties_nans_channel_major(rng):
    """A conv output (channel-major) with many ties and a few NaNs: 3x3 windows, stride 2, padding 1, ceil_mode."""
    x = rng.integers(0, 4, (8, 16, 15, 15)).astype(numpy.float32)
    x[rng.random(x.shape) < 0.01] = numpy.nan
    return _channel_major(x), (3, 3), (2, 2), (1, 1), (1, 1), True


def _check_global(rng):
    """adaptive_max_pool2d(x, 1) after a ResNet's last stage: one 4x4 window per plane."""
    return rng.standard_normal((64, 128, 4, 4)).astype(numpy.float32), (4, 4), (4, 4), (0, 0), (1, 1), False


def _check_dilated_windows_in_padding(rng):
    """Dilation 2 over a 1-pixel-high image with padding 1: some windows hold no real pixel (-inf, index -1)."""
    return rng.standard_normal((2, 3, 1, 6)).astype(numpy.float32), (2, 2), (1, 1), (1, 1), (2, 2), False


def _check_backward_overlapping(rng):
    """3x3 windows at stride 1 (each pixel in up to 9 windows), integer ties, a channel-major gradient."""
    x = rng.integers(0, 3, (8, 16, 12, 12)).astype(numpy.float32)
    geometry = ((3, 3), (1, 1), (1, 1), (1, 1))
    y, indices = NumpyPool.max_pool2d_forward(x, *geometry, False)
    return _channel_major(rng.standard_normal(y.shape).astype(numpy.float32)), indices, x.shape, *geometry


CHECK_CASES = [
    ("max_pool2d_forward", _check_ties_nans_channel_major),
    ("max_pool2d_forward", _check_global),
    ("max_pool2d_forward", _check_dilated_windows_in_padding),
    ("max_pool2d_backward", _check_backward_overlapping),
]
