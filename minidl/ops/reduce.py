"""Reductions: sum, mean, amax, amin, max, min, var, std, argmax, argmin (over all dims,
one, or a tuple; ``keepdim`` keeps each reduced dim as size 1).

Backward spreads the gradient back over the reduced dims: evenly for sum and mean,
to the winning element(s) for amax and amin.

Arguments are PyTorch's (``x.sum(dim=1, keepdim=True)``); numpy's ``axis=`` and
``keepdims=`` are accepted as aliases, as PyTorch does. As in PyTorch, ``max(x)`` is the
largest value, ``max(x, dim)`` a ``(values, indices)`` pair, and ``amax(x, dim)`` the
values only (over one dim or several).
"""

from __future__ import annotations

import math
from collections import namedtuple

from minidl import amp, backend, checks
from minidl.autograd import Function
from minidl.ops.indexing import getitem
from minidl.ops.shape import broadcast_to, dim_aliases, normalize_axes, reshape, squeeze
from minidl.tensor import Tensor

MaxResult = namedtuple("MaxResult", ["values", "indices"])
MaxResult.__doc__ = "What ``max(x, dim)`` returns (PyTorch's torch.return_types.max): unpack it or use .values, .indices"
MinResult = namedtuple("MinResult", ["values", "indices"])
MinResult.__doc__ = "What ``min(x, dim)`` returns (PyTorch's torch.return_types.min)"


def _keepdim_shape(shape, dims):
    """``shape`` with every reduced dim kept as size 1."""
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


class Sum(Function):
    """y = sum of x over ``dims``;  dy/dx = 1, so gx = gy broadcast back over those dims"""

    keeps_inputs = False  # backward reads only x's shape

    def __init__(self, dims, keepdim):
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        return x.sum(axis=self.dims, keepdims=self.keepdim)

    def backward(self, gy):
        x = self.inputs[0]
        return broadcast_to(reshape(gy, _keepdim_shape(x.shape, self.dims)), x.shape)


class Amax(Function):
    """y = max of x over ``dims``;  dy/dx = 1 at the maximum, 0 elsewhere
    (ties share the gradient equally, like torch.amax)"""

    reduce = "max"
    keeps_outputs = True  # backward compares x with y to find the winners

    def __init__(self, dims, keepdim):
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        return getattr(x, self.reduce)(axis=self.dims, keepdims=self.keepdim)

    def backward(self, gy):
        x = self.inputs[0]
        kept = _keepdim_shape(x.shape, self.dims)
        winners = (x.data == self.outputs[0].data.reshape(kept)).astype(x.dtype)  # 1 at a winner, else 0
        share = winners / winners.sum(axis=self.dims, keepdims=True)  # in x's dtype (a bool / count is float64)
        return reshape(gy, kept) * share  # gy broadcasts over the reduced dims


class Amin(Amax):
    """y = min of x over ``dims``;  dy/dx = 1 at the minimum, 0 elsewhere (ties share)"""

    reduce = "min"


def _reduce(cls, x, dim, keepdim, name):
    dims = normalize_axes(dim, x.ndim, name)
    if any(x.shape[d] == 0 for d in dims) and cls is not Sum:
        raise ValueError(f"{name}: expected no empty dim to reduce over, got a tensor of shape {x.shape}")
    return cls(dims, keepdim)(x)


@dim_aliases
def sum(x, dim=None, keepdim=False):  # noqa: A001
    """y = sum of x over ``dim`` (an int, a tuple, or None for all dims)."""
    x = amp.autocast_inputs(x, to="float32")
    return _reduce(Sum, x, dim, keepdim, "sum")


@dim_aliases
def mean(x, dim=None, keepdim=False):
    """y = sum(x) / (number of elements summed)"""
    x = amp.autocast_inputs(x, to="float32")
    dims = normalize_axes(dim, x.ndim, "mean")
    count = math.prod(x.shape[d] for d in dims)
    if count == 0:
        raise ValueError(f"mean: expected no empty dim to average over, got a tensor of shape {x.shape}")
    return sum(x, dims, keepdim) / count


@dim_aliases
def amax(x, dim=None, keepdim=False):
    """y = the largest value over ``dim`` (an int, a tuple, or None for all dims); ties share the gradient."""
    return _reduce(Amax, x, dim, keepdim, "amax")


@dim_aliases
def amin(x, dim=None, keepdim=False):
    """y = the smallest value over ``dim``; ties share the gradient."""
    return _reduce(Amin, x, dim, keepdim, "amin")


def _gather(x, indices, dim):
    """y = x[..., indices, ...]: along ``dim`` the element that ``indices`` (x's shape with
    ``dim`` of size 1) names, every other dim running over all its positions."""
    index = []
    for d, n in enumerate(x.shape):
        positions = [1] * x.ndim
        positions[d] = n
        index.append(indices.data if d == dim else x.xp.arange(n).reshape(positions))
    return getitem(x, tuple(index))


def _values_and_indices(name, x, dim, keepdim):
    """``max``/``min`` along one dim: the indices of the winners (the first, on ties) and the
    values found there; the gradient goes to those elements only (as PyTorch's)."""
    if isinstance(dim, Tensor):
        raise TypeError(f"{name}: expected an int dim, got a Tensor; PyTorch's elementwise {name}(a, b) is not "
                        f"in minidl: write minidl.where(a {'>=' if name == 'max' else '<='} b, a, b)")
    dim = checks.dim(dim, x.ndim, name)
    if x.ndim and x.shape[dim] == 0:
        raise ValueError(f"{name}: expected no empty dim to reduce over, got a tensor of shape {x.shape}")
    result = MaxResult if name == "max" else MinResult
    if x.ndim == 0:
        return result(x, argmax(x))
    indices = (argmax if name == "max" else argmin)(x, dim, keepdim=True)
    values = _gather(x, indices, dim)
    return result(values, indices) if keepdim else result(squeeze(values, dim), squeeze(indices, dim))


@dim_aliases
def max(x, dim=None, keepdim=False):  # noqa: A001
    """PyTorch's max: ``max(x)`` is the largest value (ties share the gradient, as amax);
    ``max(x, dim)`` is ``(values, indices)`` along that one dim (the gradient goes to the
    first maximum, at ``indices``)."""
    if dim is None:
        return amax(x)
    return _values_and_indices("max", x, dim, keepdim)


@dim_aliases
def min(x, dim=None, keepdim=False):  # noqa: A001
    """PyTorch's min: ``min(x)`` is the smallest value; ``min(x, dim)`` is ``(values, indices)``."""
    if dim is None:
        return amin(x)
    return _values_and_indices("min", x, dim, keepdim)


def _correction(name, unbiased, correction):
    """PyTorch's two spellings of the divisor n - correction: ``unbiased`` (True = 1, False = 0)
    or ``correction`` (default 1, the unbiased estimate)."""
    if unbiased is not None and correction is not None:
        raise TypeError(f"{name}: expected unbiased= or correction=, got both")
    if unbiased is not None:
        return 1 if unbiased else 0
    return 1 if correction is None else correction


@dim_aliases
def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """y = sum((x - mean(x))**2) / (n - correction); correction=1 (unbiased=True) is PyTorch's
    default, correction=0 (unbiased=False) the population variance (what batch norm uses)."""
    x = amp.autocast_inputs(x, to="float32")
    if isinstance(dim, bool):  # torch.var(x, False): the one positional argument is unbiased
        dim, unbiased = None, dim
    correction = _correction("var", unbiased, correction)
    dims = normalize_axes(dim, x.ndim, "var")
    count = math.prod(x.shape[d] for d in dims)
    if count - correction <= 0:
        checks.fail("var", f"more than {correction} element(s) per reduction for correction={correction}", count)
    centered = x - mean(x, dims, keepdim=True)
    return sum(centered * centered, dims, keepdim) / (count - correction)


@dim_aliases
def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """y = sqrt(var(x)), with var's arguments."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    return var(x, dim, unbiased, keepdim, correction=correction) ** 0.5


def _arg(name, x, dim, keepdim):
    if dim is not None and not checks.is_int(dim):
        checks.fail(name, "dim to be None or one int", dim, TypeError)
    xp = backend.get_array_module(x.data)
    if dim is None:
        index = xp.asarray(getattr(xp, name)(x.data))
        return Tensor.wrap(index.reshape((1,) * x.ndim) if keepdim else index)
    dim = checks.dim(dim, x.ndim, name)
    if x.ndim == 0:
        return Tensor.wrap(xp.zeros((), dtype=xp.int64))
    return Tensor.wrap(getattr(xp, name)(x.data, axis=dim, keepdims=keepdim))


@dim_aliases
def argmax(x, dim=None, keepdim=False):
    """Index of the largest value along ``dim`` (of the flattened x when dim is None);
    no gradient: indices are not differentiable."""
    return _arg("argmax", x, dim, keepdim)


@dim_aliases
def argmin(x, dim=None, keepdim=False):
    """Index of the smallest value (no gradient)."""
    return _arg("argmin", x, dim, keepdim)
