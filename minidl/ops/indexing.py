"""Indexing: ``x[index]`` with slices, integers, integer arrays and boolean masks, and its
adjoint, adding values back at an index.

The gradient of picking elements is putting the gradient back where they were picked
from (repeated picks add up); that scatter is an op too, so second derivatives work.
"""

from __future__ import annotations

import numpy

from minidl import backend, kernels
from minidl.autograd import Function
from minidl.tensor import Tensor


# --------------------------------------------------------------------------- #
# Indexing
# --------------------------------------------------------------------------- #
class GetItem(Function):
    """y = x[index] (slices, integers, integer arrays, boolean masks);
    gx = zeros of x's shape with gy added at ``index`` (repeated indices accumulate)"""

    keeps_inputs = False  # backward reads only x's shape

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        return x[self.index]

    def backward(self, gy):
        x = self.inputs[0]
        return ScatterAdd(self.index, x.shape)(gy)


class ScatterAdd(Function):
    """y = zeros(shape) with y[index] += x (repeats add up);  gx = gy[index]

    The backward of GetItem, and an op in its own right so that second derivatives work.
    """

    keeps_inputs = False  # backward needs only the index

    def __init__(self, index, shape):
        self.index, self.shape = index, shape

    def forward(self, g):
        xp = backend.get_array_module(g)
        out = xp.zeros(self.shape, dtype=g.dtype)
        if _has_integer_array(self.index):
            kernels.backend_for(xp).scatter_add(out, self.index, g)
        else:  # slices, ints and boolean masks cannot repeat an element: plain assignment is enough
            out[self.index] = g
        return out

    def backward(self, gy):
        return getitem(gy, self.index)


def _has_integer_array(index) -> bool:
    """Whether ``index`` holds an integer array (or list), which may name one element twice."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, list) or (getattr(p, "ndim", 0) > 0 and p.dtype.kind in "iu") for p in parts)


def index_to_arrays(index, x):
    """Replace Tensors (and lists) inside an index with arrays on x's device."""
    def convert(part):
        if isinstance(part, Tensor):
            part = part.data
        if isinstance(part, list):
            part = numpy.asarray(part)
        if isinstance(part, numpy.ndarray) or backend.is_cupy_array(part):
            if part.dtype.kind not in "iub":
                raise IndexError(f"getitem: index arrays must be integer or boolean, got dtype {part.dtype}")
            part = backend.to_device(part, x.device)
        return part

    return tuple(convert(p) for p in index) if isinstance(index, tuple) else convert(index)


def getitem(x, index):
    return GetItem(index_to_arrays(index, x))(x)
