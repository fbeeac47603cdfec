"""Ops that move values around without changing them: reshape, permute/transpose,
concatenation, splitting, padding, broadcasting (indexing lives in ops/indexing.py).

Each backward moves the gradient back to where the value came from: the adjoint of
the forward's rearrangement (reshape back, permute back, slice back).

Names and arguments are PyTorch's: ``transpose(x, dim0, dim1)`` swaps two dims,
``permute(x, dims)`` reorders all of them, ``pad(x, pad)`` lists (before, after) pairs
from the last dim backwards; ``dim=`` everywhere, with numpy's ``axis=`` accepted too.
"""

from __future__ import annotations

import functools
import inspect
import math

import numpy

from minidl import backend, checks
from minidl.autograd import Function
from minidl.ops.indexing import getitem, index_to_arrays  # noqa: F401  (re-exported: ops.shape.getitem)


def normalize_axes(dim, ndim: int, op: str) -> tuple:
    """``dim`` (None for all, an int or a tuple of ints, negatives allowed) as a sorted
    tuple of non-negative ints."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if checks.is_int(dim) else tuple(dim)
    result = [checks.dim(d, ndim, op) for d in dims]
    if len(set(result)) != len(result):
        checks.fail(op, "each dim at most once", dim)
    return tuple(sorted(result))


def dim_aliases(op):
    """Let ``op`` take numpy's ``axis=`` and ``keepdims=`` as aliases of PyTorch's ``dim=``
    and ``keepdim=`` (PyTorch accepts them too). Giving both spellings is a TypeError."""
    positions = list(inspect.signature(op).parameters)

    @functools.wraps(op)
    def with_aliases(*args, **kwargs):
        for alias, name in (("axis", "dim"), ("keepdims", "keepdim")):
            if alias not in kwargs:
                continue
            if name in kwargs or (name in positions and positions.index(name) < len(args)):
                raise TypeError(f"{op.__name__}: expected {name}= or its numpy alias {alias}=, got both")
            kwargs[name] = kwargs.pop(alias)
        return op(*args, **kwargs)

    return with_aliases


# --------------------------------------------------------------------------- #
# Broadcasting and its adjoint
# --------------------------------------------------------------------------- #
class BroadcastTo(Function):
    """y = x repeated along new or size-1 axes to ``shape``;  gx = sum of gy over the repeats"""

    keeps_inputs = False  # backward reads only the input's shape

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        return backend.get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.inputs[0].shape)


class SumTo(Function):
    """y = x summed over the axes that broadcasting to x's shape would have added;
    gx = gy broadcast back to x's shape"""

    keeps_inputs = False  # backward reads only the input's shape

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        lead = x.ndim - len(self.shape)
        kept = tuple(lead + i for i, n in enumerate(self.shape) if n == 1 and x.shape[lead + i] != 1)
        if not kept:  # only new leading axes, e.g. a bias gradient (N, C) -> (C,): a fresh array, no view
            return x.sum(axis=tuple(range(lead)))
        y = x.sum(axis=tuple(range(lead)) + kept, keepdims=True)
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

    keeps_inputs = False  # backward reads only the input's shape

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.inputs[0].shape)


class Permute(Function):
    """y = x with its dims reordered, y.shape[i] = x.shape[dims[i]];
    gx = gy permuted by the inverse permutation"""

    keeps_inputs = False  # backward needs only the permutation

    def __init__(self, dims):
        self.dims = dims

    def forward(self, x):
        return x.transpose(self.dims)

    def backward(self, gy):
        return permute(gy, tuple(int(d) for d in numpy.argsort(self.dims)))


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


def permute(x, dims):
    """Reorder all dims: ``permute(x, (2, 0, 1))`` (numpy's ``transpose(x, axes)``)."""
    given = dims
    dims = tuple(dims)
    if not all(checks.is_int(d) for d in dims) or len(dims) != x.ndim:
        checks.fail("permute", f"dims to be a permutation of the {x.ndim} dims of a tensor of shape {x.shape}", given)
    dims = tuple(checks.dim(d, x.ndim, "permute") for d in dims)
    if sorted(dims) != list(range(x.ndim)):
        checks.fail("permute", f"dims to be a permutation of the {x.ndim} dims of a tensor of shape {x.shape}", given)
    return x if dims == tuple(range(x.ndim)) else Permute(dims)(x)


def transpose(x, dim0, dim1):
    """Swap two dims: y = x with dims ``dim0`` and ``dim1`` exchanged (PyTorch's transpose;
    for numpy's ``transpose(x, axes)`` use ``permute``)."""
    dim0, dim1 = (checks.dim(d, x.ndim, "transpose") for d in (dim0, dim1))
    dims = list(range(x.ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return permute(x, dims)


def swapaxes(x, axis0, axis1):
    """PyTorch's alias of ``transpose(x, dim0, dim1)``."""
    return transpose(x, axis0, axis1)


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dimensions start_dim..end_dim into one (PyTorch's flatten)."""
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = (checks.dim(d, x.ndim, "flatten", name) for d, name in ((start_dim, "start_dim"), (end_dim, "end_dim")))
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1 :])


@dim_aliases
def squeeze(x, dim=None):
    """Remove size-1 dims: all of them, or those among ``dim`` (an int or a tuple). As in
    PyTorch, a named dim whose size is not 1 is left as it is."""
    dims = range(x.ndim) if dim is None else normalize_axes(dim, x.ndim, "squeeze")
    dropped = {d for d in dims if x.shape[d] == 1}
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in dropped))


@dim_aliases
def unsqueeze(x, dim):
    """Insert a size-1 dim at position ``dim`` (in [-ndim-1, ndim])."""
    if not checks.is_int(dim) or not -(x.ndim + 1) <= dim <= x.ndim:
        checks.fail("unsqueeze", f"dim in [{-x.ndim - 1}, {x.ndim}] for a {x.ndim}-d input", dim)
    dim = int(dim) % (x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


# --------------------------------------------------------------------------- #
# Joining, splitting, padding
# --------------------------------------------------------------------------- #
class Cat(Function):
    """y = the inputs joined along ``axis``;  each gx = its own slab of gy"""

    keeps_inputs = False  # backward reads only the input's shape

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        return backend.get_array_module(*xs).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        boundaries = numpy.cumsum([x.shape[self.axis] for x in self.inputs])[:-1]
        return Split(tuple(int(b) for b in boundaries), self.axis)(gy)


class Split(Function):
    """ys = x cut along ``axis`` at the given boundaries;  gx = the gys joined back"""

    keeps_inputs = False  # backward reads only the input's shape

    def __init__(self, boundaries, axis):
        self.boundaries, self.axis = boundaries, axis

    def forward(self, x):
        return tuple(backend.get_array_module(x).split(x, self.boundaries, axis=self.axis))

    def backward(self, *gys):
        return Cat(self.axis)(*gys)


class Pad(Function):
    """y = x with ``value`` added around it, ``pad_width`` = ((before, after), ...) one pair per dim;
    gx = the middle of gy"""

    keeps_inputs = False  # backward reads only the input's shape

    def __init__(self, pad_width, value):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        return backend.get_array_module(x).pad(x, self.pad_width, constant_values=self.value)

    def backward(self, gy):
        middle = tuple(slice(before, n - after) for (before, after), n in zip(self.pad_width, gy.shape))
        return getitem(gy, middle)


@dim_aliases
def cat(tensors, dim=0):
    """Join tensors along ``dim``; their shapes must agree everywhere else."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors, got an empty one")
    first = tensors[0]
    dim = checks.dim(dim, first.ndim, "cat")
    for i, t in enumerate(tensors):
        if t.ndim != first.ndim or t.shape[:dim] + t.shape[dim + 1 :] != first.shape[:dim] + first.shape[dim + 1 :]:
            raise ValueError(
                f"cat: expected tensor {i} to match tensor 0's shape {first.shape} outside dim {dim}, "
                f"got shape {t.shape}"
            )
    return Cat(dim)(*tensors)


@dim_aliases
def stack(tensors, dim=0):
    """Join tensors of one shape along a new dim ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors, got an empty one")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: expected tensor {i} to have tensor 0's shape {tensors[0].shape}, got {t.shape}")
    return cat([unsqueeze(t, dim) for t in tensors], dim)


@dim_aliases
def split(x, split_size_or_sections, dim=0):
    """PyTorch's split: an int cuts pieces of that size along ``dim`` (the last may be
    smaller); a list gives each piece's size (they must add up to the dim's length)."""
    dim = checks.dim(dim, x.ndim, "split")
    n = x.shape[dim]
    if checks.is_int(split_size_or_sections):
        size = checks.positive_int(split_size_or_sections, "split", "split_size")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise ValueError(f"split: expected sizes that add up to {n} (the length of dim {dim}), got {sizes}")
    boundaries = tuple(int(b) for b in numpy.cumsum(sizes)[:-1])
    pieces = Split(boundaries, dim)(x)
    return pieces if isinstance(pieces, tuple) else (pieces,)


@dim_aliases
def chunk(x, chunks, dim=0):
    """PyTorch's chunk: ``chunks`` pieces of size ceil(n / chunks) (fewer if n is small)."""
    chunks = checks.positive_int(chunks, "chunk", "chunks")
    n = x.shape[checks.dim(dim, x.ndim, "chunk")]
    return split(x, max(1, -(-n // chunks)), dim)


def pad(input, pad, mode="constant", value=None):  # noqa: A002  (PyTorch's names)
    """PyTorch's pad: ``pad`` lists (before, after) pairs starting from the LAST dim, e.g.
    (left, right, top, bottom) pads the last two dims of an image batch with ``value`` (0)."""
    if mode != "constant":
        raise NotImplementedError(f"pad: only mode='constant' is implemented, got mode={mode!r}")
    pad = tuple(pad)
    if not all(checks.is_int(p) for p in pad) or len(pad) % 2 or len(pad) // 2 > input.ndim:
        checks.fail("pad", f"an even number of int widths, at most 2 per dim ({2 * input.ndim} for this "
                           f"{input.ndim}-d input)", pad)
    if any(p < 0 for p in pad):
        checks.fail("pad", "non-negative widths (cropping by negative widths is not supported)", pad)
    pairs = [(int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(len(pad) // 2)]  # last dim first
    return pad_per_dim(input, [(0, 0)] * (input.ndim - len(pairs)) + pairs[::-1], 0.0 if value is None else value)


def pad_per_dim(x, pad_width, value=0.0):
    """Constant padding with numpy's ``pad_width``, first dim first: one (before, after) pair
    per dim (or one pair, or one int, for all of them)."""
    try:
        widths = numpy.broadcast_to(numpy.asarray(pad_width, dtype=numpy.int64), (x.ndim, 2))
    except (ValueError, TypeError):
        checks.fail("pad_per_dim", f"pad_width as an int, a (before, after) pair or {x.ndim} such pairs "
                                   f"(one per dim) for a tensor of shape {x.shape}", pad_width)
    if (widths < 0).any():
        checks.fail("pad_per_dim", "non-negative widths", pad_width)
    return Pad(tuple((int(a), int(b)) for a, b in widths), value)(x)
