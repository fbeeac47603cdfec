"""The out-of-place ops behind in-place changes that have no op of their own.

``x[index] = value`` and ``x.copy_(src)`` change x in place (see tensor.py); while the graph
is recorded, x takes the result of one of these ops, and the old x stays in the graph.
"""

from __future__ import annotations

from minidl import backend
from minidl.autograd import Function
from minidl.ops.arithmetic import cast, to_device
from minidl.ops.shape import getitem, index_to_arrays, sum_to
from minidl.tensor import Tensor


class IndexPut(Function):
    """y = x with y[index] = value (value broadcast to the shape of x[index]);
    gx = gy with zeros at ``index`` (those values were overwritten),  gvalue = gy[index] summed to value's shape"""

    keeps_inputs = False

    def __init__(self, index):
        self.index = index

    def forward(self, x, value):
        y = x.copy()
        y[self.index] = value
        return y

    def backward(self, gy):
        x, value = self.inputs
        gx = index_put(gy, self.index, 0.0) if x.requires_grad else None
        gvalue = sum_to(getitem(gy, self.index), value.shape) if value.requires_grad else None
        return gx, (None if gvalue is None else cast(gvalue, value.dtype))


def index_put(x, index, value):
    """A copy of x with x[index] = value (``x[index] = value`` as an op)."""
    if isinstance(value, Tensor) and value.device != x.device:
        value = to_device(value, x.device)
    return IndexPut(index_to_arrays(index, x))(x, value)


class ReplaceValues(Function):
    """y = new, broadcast to old's shape and cast to old's dtype;  gold = 0,  gnew = gy summed to new's shape"""

    keeps_inputs = False

    def forward(self, old, new):
        xp = backend.get_array_module(old)
        return xp.broadcast_to(new, old.shape).astype(old.dtype, copy=True)

    def backward(self, gy):
        new = self.inputs[1]
        return None, (cast(sum_to(gy, new.shape), new.dtype) if new.requires_grad else None)


def replace_values(old, new):
    """``old.copy_(new)`` as an op: the values of ``new`` (a tensor on any device, or a number) in old's place."""
    if isinstance(new, Tensor) and new.device != old.device:
        new = to_device(new, old.device)
    return ReplaceValues()(old, new)
