"""Ops that move values around without changing them: reshape, transpose, indexing,
concatenation, splitting, padding, broadcasting.

Each backward moves the gradient back to where the value came from: the adjoint of
the forward's rearrangement (reshape back, transpose back, scatter back, slice back).
"""

from __future__ import annotations

import math

import numpy

from minidl import backend
from minidl.autograd import Function
from minidl.tensor import Tensor


def normalize_axes(axis, ndim: int, op: str) -> tuple:
    """``axis`` (None, int or tuple of ints, negatives allowed) as a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, numpy.integer)) else tuple(axis)
    result = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        result.append(int(a) % max(ndim, 1))
    if len(set(result)) != len(result):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(result))


# --------------------------------------------------------------------------- #
# Broadcasting and its adjoint
# --------------------------------------------------------------------------- #
class BroadcastTo(Function):
    """y = x repeated along new or size-1 axes to ``shape``;  gx = sum of gy over the repeats"""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        return backend.get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.inputs[0].shape)


class SumTo(Function):
    """y = x summed over the axes that broadcasting to x's shape would have added;
    gx = gy broadcast back to x's shape"""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        lead = x.ndim - len(self.shape)
        axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(self.shape) if n == 1 and x.shape[lead + i] != 1)
        y = x.sum(axis=axes, keepdims=True) if axes else x
        return y.reshape(self.shape) if lead else y

    def backward(self, gy):
        return broadcast_to(gy, self.inputs[0].shape)


def broadcast_to(x, shape):
    shape = tuple(shape)
    if x.shape == shape:
        return x
    try:
        broadcastable = numpy.broadcast_shapes(x.shape, shape) == shape
    except ValueError:
        broadcastable = False
    if not broadcastable:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return BroadcastTo(shape)(x)


def sum_to(x, shape):
    """Sum x down to ``shape`` (the shape x was broadcast from)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    try:
        summable = len(shape) <= x.ndim and numpy.broadcast_shapes(x.shape, shape) == x.shape
    except ValueError:
        summable = False
    if not summable:
        raise ValueError(f"sum_to: shape {x.shape} cannot be summed down to {shape}")
    return SumTo(shape)(x)


# --------------------------------------------------------------------------- #
# Reshaping and permuting
# --------------------------------------------------------------------------- #
class Reshape(Function):
    """y = x with a new shape (same elements, same order);  gx = gy reshaped back"""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.inputs[0].shape)


class Transpose(Function):
    """y = x with its axes permuted;  gx = gy permuted by the inverse permutation"""

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        return transpose(gy, tuple(numpy.argsort(self.axes)))


def reshape(x, shape):
    shape = (shape,) if isinstance(shape, (int, numpy.integer)) else tuple(int(n) for n in shape)
    if shape == x.shape:
        return x
    known = math.prod(n for n in shape if n != -1)
    if shape.count(-1) > 1 or (shape.count(-1) == 0 and known != x.numel()) or (
        shape.count(-1) == 1 and (known == 0 or x.numel() % known)
    ):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.numel()} elements) to {shape}")
    return Reshape(shape)(x)


def transpose(x, axes=None):
    """Permute the axes (reverse them when ``axes`` is None), like numpy.transpose."""
    given = axes
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(int(a) for a in axes)
    axes = tuple(a % x.ndim if -x.ndim <= a < x.ndim else a for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {given} are not a permutation of {x.ndim} dimensions")
    return x if axes == tuple(range(x.ndim)) else Transpose(axes)(x)


def swapaxes(x, axis1, axis2):
    """Exchange two axes (PyTorch's ``transpose(x, dim0, dim1)``)."""
    axis1, axis2 = (normalize_axes(a, x.ndim, "swapaxes")[0] for a in (axis1, axis2))
    axes = list(range(x.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(x, axes)


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dimensions start_dim..end_dim into one (PyTorch's flatten)."""
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = (normalize_axes(d, x.ndim, "flatten")[0] for d in (start_dim, end_dim))
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1 :])


def squeeze(x, axis=None):
    """Remove size-1 axes (all of them, or the given one(s))."""
    axes = [i for i, n in enumerate(x.shape) if n == 1] if axis is None else normalize_axes(axis, x.ndim, "squeeze")
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} has size {x.shape[a]}, not 1")
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


def unsqueeze(x, axis):
    """Insert a size-1 axis at position ``axis``."""
    if not -(x.ndim + 1) <= axis <= x.ndim:
        raise ValueError(f"unsqueeze: axis {axis} is out of range for a tensor with {x.ndim} dimensions")
    axis = axis % (x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


# --------------------------------------------------------------------------- #
# Indexing
# --------------------------------------------------------------------------- #
class GetItem(Function):
    """y = x[index] (slices, integers, integer arrays, boolean masks);
    gx = zeros of x's shape with gy added at ``index`` (repeated indices accumulate)"""

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

    def __init__(self, index, shape):
        self.index, self.shape = index, shape

    def forward(self, g):
        xp = backend.get_array_module(g)
        out = xp.zeros(self.shape, dtype=g.dtype)
        if _has_integer_array(self.index):
            backend.backend_for(xp).scatter_add(out, self.index, g)
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


# --------------------------------------------------------------------------- #
# Joining, splitting, padding
# --------------------------------------------------------------------------- #
class Cat(Function):
    """y = the inputs joined along ``axis``;  each gx = its own slab of gy"""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        return backend.get_array_module(*xs).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        boundaries = numpy.cumsum([x.shape[self.axis] for x in self.inputs])[:-1]
        return Split(tuple(int(b) for b in boundaries), self.axis)(gy)


class Split(Function):
    """ys = x cut along ``axis`` at the given boundaries;  gx = the gys joined back"""

    def __init__(self, boundaries, axis):
        self.boundaries, self.axis = boundaries, axis

    def forward(self, x):
        return tuple(backend.get_array_module(x).split(x, self.boundaries, axis=self.axis))

    def backward(self, *gys):
        return Cat(self.axis)(*gys)


class Pad(Function):
    """y = x with ``value`` added around it (numpy's pad_width: ((before, after), ...) per axis);
    gx = the middle of gy"""

    def __init__(self, pad_width, value):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        return backend.get_array_module(x).pad(x, self.pad_width, constant_values=self.value)

    def backward(self, gy):
        middle = tuple(slice(before, n - after) for (before, after), n in zip(self.pad_width, gy.shape))
        return getitem(gy, middle)


def cat(tensors, axis=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    first = tensors[0]
    axis = normalize_axes(axis, first.ndim, "cat")[0]
    for i, t in enumerate(tensors):
        if t.ndim != first.ndim or t.shape[:axis] + t.shape[axis + 1 :] != first.shape[:axis] + first.shape[axis + 1 :]:
            raise ValueError(
                f"cat: tensor {i} has shape {t.shape}, which does not match {first.shape} "
                f"outside axis {axis}"
            )
    return Cat(axis)(*tensors)


def stack(tensors, axis=0):
    """Join tensors of one shape along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, expected {tensors[0].shape} like tensor 0")
    return cat([unsqueeze(t, axis) for t in tensors], axis)


def split(x, split_size_or_sections, axis=0):
    """PyTorch's split: an int cuts pieces of that size (the last may be smaller);
    a list gives each piece's size (they must add up to the axis' length)."""
    axis = normalize_axes(axis, x.ndim, "split")[0]
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (int, numpy.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} add up to {sum(sizes)}, but axis {axis} has length {n}")
    boundaries = tuple(int(b) for b in numpy.cumsum(sizes)[:-1])
    pieces = Split(boundaries, axis)(x)
    return pieces if isinstance(pieces, tuple) else (pieces,)


def chunk(x, chunks, axis=0):
    """PyTorch's chunk: ``chunks`` pieces of size ceil(n / chunks) (fewer if n is small)."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = x.shape[normalize_axes(axis, x.ndim, "chunk")[0]]
    return split(x, max(1, -(-n // chunks)), axis)


def pad(x, pad_width, value=0.0):
    """Constant padding with numpy's pad_width: an int, a (before, after) pair, or one pair per axis."""
    try:
        widths = numpy.broadcast_to(numpy.asarray(pad_width, dtype=numpy.int64), (x.ndim, 2))
    except (ValueError, TypeError):
        raise ValueError(
            f"pad: expected pad_width as an int, a (before, after) pair or {x.ndim} such pairs (one per axis) "
            f"for a tensor of shape {x.shape}, got {pad_width!r}"
        ) from None
    if (widths < 0).any():
        raise ValueError(f"pad: widths must be non-negative, got {pad_width}")
    return Pad(tuple((int(a), int(b)) for a, b in widths), value)(x)
