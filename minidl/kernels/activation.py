"""The activation family of the backend table: ReLU's backward in one pass.

    relu_backward(gy, x):   gx = gy where x > 0, else 0

The twin is one ``where``; composed of array ops it would be a comparison and a multiply
(2 launches on a GPU, and a bool array in between). The kernel (activation.cu) is one flat
walk over memory: when gy and x are float32 and lie in the same dense layout (C-contiguous,
or a permutation of it such as conv2d's channel-major outputs), gx gets that layout too and
element i of its memory is computed from element i of theirs. Other dtypes or layouts run the twin.
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.kernels import launch

FILE = "activation.cu"


class NumpyActivation:
    @staticmethod
    def relu_backward(gy, x):
        """gx = gy where x > 0, else 0 (gy's dtype)."""
        xp = backend.get_array_module(gy)
        return xp.where(x > 0, gy, gy.dtype.type(0))


def dense_order(a):
    """The axis order that makes ``a`` C-contiguous (``a.transpose(order)`` is), or None when no
    order does (a strided slice, a broadcast): the axes sorted by decreasing stride."""
    order = tuple(sorted(range(a.ndim), key=lambda axis: -a.strides[axis]))
    return order if a.transpose(order).flags.c_contiguous else None


class CupyActivation(NumpyActivation):  # pragma: no cover - GPU (or fakecupy)
    @staticmethod
    def relu_backward(gy, x):
        """One launch of ``relu_backward_f32`` over the memory gy and x share; gx in the same layout."""
        order = dense_order(x) if gy.strides == x.strides and gy.shape == x.shape else None
        if gy.dtype != numpy.float32 or x.dtype != numpy.float32 or order is None or x.size == 0:
            return NumpyActivation.relu_backward(gy, x)
        held = backend.cupy.empty(tuple(x.shape[axis] for axis in order), dtype=numpy.float32)
        launch.launch(FILE, "relu_backward_f32", x.size,
                      (gy.transpose(order), x.transpose(order), held, numpy.int64(x.size)))
        # back to x's axes: a view with x's strides
        return held.transpose(tuple(int(axis) for axis in numpy.argsort(order)))


# --------------------------------------------------------------------------- #
# The CPU stand-in runs the kernel through this adapter (numpy payloads in, output written in place)
# --------------------------------------------------------------------------- #
def _emulate_relu_backward(gy, x, gx, n):
    gx.reshape(-1)[:n] = NumpyActivation.relu_backward(gy.reshape(-1)[:n], x.reshape(-1)[:n])


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


CHECK_CASES = [("relu_backward", _check_channel_major), ("relu_backward", _check_contiguous)]
