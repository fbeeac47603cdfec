"""The activation family of the backend table: ReLU's backward in one pass.

    relu_backward(gy, x):   gx = gy where x > 0, else 0

The twin is one ``where``; composed of array ops it would be a comparison and a multiply
(2 launches on a GPU, and a bool array in between). The kernel (activation.cu) is one walk over
x's memory: when gy and x are float32, at most 4-d, and each lies in a dense layout (C-contiguous,
or a permutation of it such as conv2d's channel-major outputs), gx gets x's layout and element i
of its memory is computed from element i of x's and gy's element at the same position, read
through gy's strides. Other dtypes or layouts (a broadcast gradient, a strided slice) run the twin.
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.kernels import launch

FILE = "activation.cu"


class NumpyActivation:
    @staticmethod
    def relu_backward(gy, x):
        """gx = gy where x > 0, else 0 (gy's dtype): gy times the mask x > 0 (a float times a bool stays
        that float; on the CPU this is 6x faster than ``where(x > 0, gy, 0)``)."""
        return gy * (x > 0)


def dense_order(a):
    """The axis order that makes ``a`` C-contiguous (``a.transpose(order)`` is), or None when no
    order does (a strided slice, a broadcast): the axes sorted by decreasing stride."""
    order = tuple(sorted(range(a.ndim), key=lambda axis: -a.strides[axis]))
    return order if a.transpose(order).flags.c_contiguous else None


class CupyActivation(NumpyActivation):  # pragma: no cover - GPU (or fakecupy)
    @staticmethod
    def relu_backward(gy, x):
        """One launch of ``relu_backward_f32``: one thread per element of x's memory, gx in x's layout,
        gy read through its strides (it may lie otherwise: max pooling's gradient is C-contiguous
        where the conv output it flows to is channel-major)."""
        x_order, gy_order = dense_order(x), dense_order(gy)
        if (gy.dtype != numpy.float32 or x.dtype != numpy.float32 or gy.shape != x.shape or x.ndim > 4
                or x.size == 0 or x_order is None or gy_order is None):
            return NumpyActivation.relu_backward(gy, x)
        held = backend.cupy.empty(tuple(x.shape[axis] for axis in x_order), dtype=numpy.float32)
        padding = 4 - x.ndim  # the kernel walks four axes: size-1 axes in front
        sizes = ((1,) * padding + held.shape)[1:]
        gy_strides = (0,) * padding + tuple(gy.strides[axis] // gy.itemsize for axis in x_order)
        launch.launch(FILE, "relu_backward_f32", x.size,
                      (gy.transpose(gy_order), x.transpose(x_order), held, numpy.int64(x.size),
                       *map(numpy.int64, sizes), *map(numpy.int64, gy_strides)))
        # back to x's axes: a view with x's strides
        return held.transpose(tuple(int(axis) for axis in numpy.argsort(x_order)))


# --------------------------------------------------------------------------- #
# The CPU stand-in runs the kernel through this adapter (numpy payloads in, output written in place)
# --------------------------------------------------------------------------- #
def _emulate_relu_backward(gy, x, gx, n, d1, d2, d3, g0, g1, g2, g3):
    shape = (n // (d1 * d2 * d3), d1, d2, d3)
    flat = gy.reshape(-1)
    gy = numpy.lib.stride_tricks.as_strided(flat, shape, tuple(s * flat.itemsize for s in (g0, g1, g2, g3)))
    gx.reshape(shape)[...] = NumpyActivation.relu_backward(gy, x.reshape(shape))


EMULATE = {"relu_backward_f32": _emulate_relu_backward}


# --------------------------------------------------------------------------- #
# Cases for minidl.gpu_check: the kernel against its twin
# --------------------------------------------------------------------------- #
def _check_channel_major(rng):
    """A conv2d output's layout ((N, C, H, W) over (C, N, H, W) memory), zeros and NaNs in x."""
    x = rng.standard_normal((16, 32, 8, 8)).astype(numpy.float32)
    x[rng.random(x.shape) < 0.05] = 0
    x[rng.random(x.shape) < 0.01] = numpy.nan
    gy = rng.standard_normal(x.shape).astype(numpy.float32)
    return tuple(numpy.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1) for a in (gy, x))


def _check_contiguous(rng):
    """A linear layer's output (N, F), C-contiguous, an odd size."""
    return tuple(rng.standard_normal((37, 129)).astype(numpy.float32) for _ in range(2))


def _check_gradient_from_max_pool(rng):
    """A conv2d output (channel-major) whose gradient comes C-contiguous (max pooling's backward)."""
    gy, x = (rng.standard_normal((8, 16, 10, 10)).astype(numpy.float32) for _ in range(2))
    return gy, numpy.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)


CHECK_CASES = [("relu_backward", _check_channel_major), ("relu_backward", _check_contiguous),
               ("relu_backward", _check_gradient_from_max_pool)]
