"""The Tensor's operators and methods: each one is the op of the same name in ``minidl.ops``.

``x + y`` is ``ops.add(x, y)``, ``x.sum(dim=1)`` is ``ops.sum(x, dim=1)``: the math and its
derivative live in the op's Function, never here. This file only attaches them to Tensor
(as DeZero's ``setup_variable`` does), so that tensor.py stays about the graph.
"""

from __future__ import annotations

import inspect

import numpy

from minidl import backend, ops
from minidl.backend import Device
from minidl.creation import is_dtype
from minidl.tensor import Tensor


def _method(op):
    """``tensor.name(*args)`` calls ``op(tensor, *args)``."""

    def method(self, *args, **kwargs):
        return op(self, *args, **kwargs)

    method.__name__, method.__qualname__, method.__doc__ = op.__name__, f"Tensor.{op.__name__}", op.__doc__
    method.__signature__ = inspect.signature(op)  # help(x.sum) shows (x, dim=None, keepdim=False)
    return method


def _reflected(op):
    """``other <op> tensor`` when ``other`` is not a Tensor: ``op(other, tensor)``."""
    return lambda self, other: op(other, self)


Tensor.__add__, Tensor.__radd__ = _method(ops.add), _reflected(ops.add)
Tensor.__sub__, Tensor.__rsub__ = _method(ops.sub), _reflected(ops.sub)
Tensor.__mul__, Tensor.__rmul__ = _method(ops.mul), _reflected(ops.mul)
Tensor.__truediv__, Tensor.__rtruediv__ = _method(ops.div), _reflected(ops.div)
Tensor.__pow__, Tensor.__rpow__ = _method(ops.pow), _reflected(ops.pow)
Tensor.__matmul__, Tensor.__rmatmul__ = _method(ops.matmul), _reflected(ops.matmul)
Tensor.__neg__, Tensor.__abs__, Tensor.__getitem__ = _method(ops.neg), _method(ops.abs), _method(ops.getitem)
Tensor.__pos__ = lambda self: self

for _name in ("exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "softmax", "log_softmax",
              "sum", "mean", "max", "min", "amax", "amin", "var", "std", "argmax", "argmin", "flatten",
              "squeeze", "unsqueeze", "broadcast_to", "sum_to", "matmul", "split", "chunk", "clamp", "clip",
              "transpose", "swapaxes"):
    setattr(Tensor, _name, _method(getattr(ops, _name)))


def _shape_args(shape):
    """``(2, 3)`` from ``f(2, 3)`` or ``f((2, 3))``, as PyTorch takes shapes."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def reshape(self, *shape):
    """``x.reshape(2, 3)`` or ``x.reshape((2, 3))``; ``view`` is the same (minidl has no strides to keep)."""
    return ops.reshape(self, _shape_args(shape))


def expand(self, *shape):
    """``x.expand(4, 3)`` or ``x.expand((4, 3))``: broadcast to that shape."""
    return ops.broadcast_to(self, _shape_args(shape))


def permute(self, *dims):
    """``x.permute(2, 0, 1)`` or ``x.permute((2, 0, 1))``: reorder all dims."""
    return ops.permute(self, _shape_args(dims))


def size(self, dim: int | None = None):
    """The shape (PyTorch spelling), or the length of one dimension."""
    return self.shape if dim is None else self.shape[dim]


Tensor.size = size
Tensor.reshape = Tensor.view = reshape
Tensor.expand, Tensor.permute = expand, permute
Tensor.T = property(lambda self: ops.permute(self, tuple(reversed(range(self.ndim)))), doc="all dims reversed")
Tensor.mT = property(lambda self: ops.transpose(self, -2, -1), doc="the last two dims swapped")


# --------------------------------------------------------------------------- #
# Moving and converting: differentiable (gradients flow back to the source)
# --------------------------------------------------------------------------- #
def to(self, device=None, dtype=None) -> Tensor:
    """Copy to another device and/or dtype. Like PyTorch, a dtype may also come first: ``t.to(minidl.float64)``."""
    if dtype is None and device is not None and is_dtype(device):
        device, dtype = None, device
    out = self
    if dtype is not None and numpy.dtype(dtype) != self.dtype:
        out = ops.cast(out, dtype)
    if device is not None and Device(device) != self.device:
        out = ops.to_device(out, Device(device))
    return out


Tensor.to = to
Tensor.cpu = lambda self: self.to("cpu")
Tensor.cuda = lambda self, index=0: self.to(f"cuda:{index}")
Tensor.astype = _method(ops.cast)
Tensor.float = lambda self: ops.cast(self, numpy.float32)
Tensor.double = lambda self: ops.cast(self, numpy.float64)
Tensor.long = lambda self: ops.cast(self, numpy.int64)


# --------------------------------------------------------------------------- #
# Showing: tensor([...], grad_fn=<Mul>), as PyTorch prints it
# --------------------------------------------------------------------------- #
def __repr__(self) -> str:
    body = numpy.array2string(backend.to_numpy(self.data), separator=", ", prefix="tensor(")
    extras = [f"device='{self.device}'"] if self.device.type != "cpu" else []
    if self.dtype not in (numpy.float32, numpy.int64, numpy.bool_):
        extras.append(f"dtype={self.dtype}")
    if self.grad_fn is not None:
        extras.append(f"grad_fn=<{self.grad_fn.name}>")
    elif self.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"


Tensor.__repr__ = __repr__


# --------------------------------------------------------------------------- #
# Comparisons: boolean tensors, no gradient
# --------------------------------------------------------------------------- #
def _comparison(compare):
    def method(self, other):
        if isinstance(other, Tensor) and other.device != self.device:
            raise RuntimeError(
                f"comparison: expected both tensors on one device, got '{self.device}' and '{other.device}'; "
                "move one with .to(device) first"
            )
        other = other.data if isinstance(other, Tensor) else other
        if isinstance(other, numpy.ndarray) or backend.is_cupy_array(other):  # a raw array goes to our device
            other = backend.to_device(other, self.device)
        return Tensor.wrap(compare(self.data, other))

    return method


Tensor.__eq__ = _comparison(lambda a, b: a == b)
Tensor.__ne__ = _comparison(lambda a, b: a != b)
Tensor.__lt__ = _comparison(lambda a, b: a < b)
Tensor.__le__ = _comparison(lambda a, b: a <= b)
Tensor.__gt__ = _comparison(lambda a, b: a > b)
Tensor.__ge__ = _comparison(lambda a, b: a >= b)
