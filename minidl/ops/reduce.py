"""Reductions: sum, mean, max, min, var, std (over all axes, one, or a tuple; keepdims).

Backward spreads the gradient back over the reduced axes: evenly for sum and mean,
to the winning element(s) for max and min.

Arguments are numpy's (``axis``, ``keepdims``); where PyTorch writes ``x.sum(dim=1, keepdim=True)``
minidl writes ``x.sum(axis=1, keepdims=True)``. ``max`` and ``min`` with an axis return the
values only (like numpy and ``torch.amax``), not PyTorch's (values, indices) pair: use ``argmax``.
"""

from __future__ import annotations

import math

import numpy

from minidl import backend
from minidl.autograd import Function
from minidl.ops.shape import broadcast_to, normalize_axes, reshape
from minidl.tensor import Tensor


def _keepdims_shape(shape, axes):
    """``shape`` with every reduced axis kept as size 1."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    """y = sum of x over ``axes``;  dy/dx = 1, so gx = gy broadcast back over those axes"""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        x = self.inputs[0]
        return broadcast_to(reshape(gy, _keepdims_shape(x.shape, self.axes)), x.shape)


class Max(Function):
    """y = max of x over ``axes``;  dy/dx = 1 at the maximum, 0 elsewhere
    (ties share the gradient equally, like torch.amax)"""

    reduce = "max"

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        return getattr(x, self.reduce)(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        x = self.inputs[0]
        kept = _keepdims_shape(x.shape, self.axes)
        winners = x.data == self.outputs[0].data.reshape(kept)
        share = winners / winners.sum(axis=self.axes, keepdims=True)
        return broadcast_to(reshape(gy, kept), x.shape) * share.astype(x.dtype)


class Min(Max):
    """y = min of x over ``axes``;  dy/dx = 1 at the minimum, 0 elsewhere (ties share)"""

    reduce = "min"


def _reduce(cls, x, axis, keepdims, name):
    axes = normalize_axes(axis, x.ndim, name)
    if any(x.shape[a] == 0 for a in axes) and cls is not Sum:
        raise ValueError(f"{name}: cannot reduce over an empty axis of a tensor of shape {x.shape}")
    return cls(axes, keepdims)(x)


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return _reduce(Sum, x, axis, keepdims, "sum")


def mean(x, axis=None, keepdims=False):
    """sum(x) / (number of elements summed)"""
    axes = normalize_axes(axis, x.ndim, "mean")
    count = math.prod(x.shape[a] for a in axes)
    if count == 0:
        raise ValueError(f"mean: cannot average over an empty axis of a tensor of shape {x.shape}")
    return sum(x, axes, keepdims) / count


def max(x, axis=None, keepdims=False):  # noqa: A001
    return _reduce(Max, x, axis, keepdims, "max")


def min(x, axis=None, keepdims=False):  # noqa: A001
    return _reduce(Min, x, axis, keepdims, "min")


def var(x, axis=None, keepdims=False, correction=1):
    """sum((x - mean(x))**2) / (n - correction); correction=1 is PyTorch's unbiased default,
    correction=0 the population variance (what batch norm uses)."""
    axes = normalize_axes(axis, x.ndim, "var")
    count = math.prod(x.shape[a] for a in axes)
    if count - correction <= 0:
        raise ValueError(f"var: {count} element(s) per reduction is too few for correction={correction}")
    centered = x - mean(x, axes, keepdims=True)
    return sum(centered * centered, axes, keepdims) / (count - correction)


def std(x, axis=None, keepdims=False, correction=1):
    """sqrt(var(x))"""
    return var(x, axis, keepdims, correction) ** 0.5


def _arg(name, x, axis, keepdims):
    if axis is not None and not isinstance(axis, (int, numpy.integer)):
        raise TypeError(f"{name}: axis must be None or one int, got {axis!r}")
    if axis is not None:
        axis = normalize_axes(axis, x.ndim, name)[0]
    xp = backend.get_array_module(x.data)
    if axis is None:
        index = getattr(xp, name)(x.data)
        return Tensor(xp.asarray(index).reshape((1,) * x.ndim) if keepdims else xp.asarray(index))
    return Tensor(getattr(xp, name)(x.data, axis=axis, keepdims=keepdims))


def argmax(x, axis=None, keepdims=False):
    """Index of the largest value (no gradient: indices are not differentiable)."""
    return _arg("argmax", x, axis, keepdims)


def argmin(x, axis=None, keepdims=False):
    """Index of the smallest value (no gradient)."""
    return _arg("argmin", x, axis, keepdims)
