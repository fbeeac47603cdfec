"""Exercise: im2col and col2im, an adjoint pair.

A convolution becomes one matrix product once every window of the input is laid out as
a row. im2col does that; PyTorch's layout (torch.nn.functional.unfold, up to the order
of the axes):

    x    (N, C, H, W)                 xpad = x with ``padding`` zeros on every side of H and W
    cols (N, OH, OW, C*KH*KW)         OH = (H + 2*padding - KH) // stride + 1, likewise OW

    cols[n, i, j, (c, p, q)] = xpad[n, c, i*stride + p, j*stride + q]

where (c, p, q) is one axis in that order (index (c*KH + p)*KW + q).

col2im goes the other way, from a cols-shaped y (N, OH, OW, C*KH*KW) to an x-shaped
array (N, C, H, W), and must be the ADJOINT of im2col: for every x and y,

    <im2col(x), y> = <x, col2im(y)>          (<u, v> = sum of u * v over all elements)

That makes col2im the backward of im2col, and the convolution exercise uses both.
Derive what col2im must do from that equation (it is not "undo im2col": windows overlap
when stride < KH, and padding elements exist only in cols).

Write ``im2col``, then ``col2im``. Both work on arrays (numpy or cupy: use
``xp = get_array_module(x)``); a Python loop over the KH*KW kernel offsets (p, q) is
fine, a loop over samples or pixels is not. The checker compares im2col with a loop
over every element, then runs the dot-product test above on random x and y in float64
(and gradcheck on the two ops below, whose backwards are each other).

Check it:  python -m minidl.exercises check im2col_col2im
"""

from minidl import Function, Tensor
from minidl.backend import get_array_module


def output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, kh, kw, stride, padding):
    """x (N, C, H, W) -> cols (N, OH, OW, C*KH*KW)."""
    raise NotImplementedError(
        "im2col: return cols (N, OH, OW, C*KH*KW) with cols[n, i, j, (c, p, q)] = "
        "xpad[n, c, i*stride + p, j*stride + q] (xpad: x padded with zeros)"
    )


def col2im(cols, x_shape, kh, kw, stride, padding):
    """cols (N, OH, OW, C*KH*KW) -> (N, C, H, W): the adjoint of im2col."""
    raise NotImplementedError(
        "col2im: return an array shaped x_shape such that <im2col(x), cols> = <x, col2im(cols)> "
        "for every x: derive from that equation where each element of cols must go"
    )


# ---- given: what the checker calls ---------------------------------------------------------
class Im2col(Function):
    """im2col as an op: its backward is col2im."""

    def __init__(self, kh, kw, stride, padding):
        self.args = kh, kw, stride, padding

    def forward(self, x):
        self.x_shape = x.shape
        return im2col(x, *self.args)

    def backward(self, gy):
        return Tensor(col2im(gy.data, self.x_shape, *self.args))


class Col2im(Function):
    """col2im as an op: its backward is im2col."""

    def __init__(self, x_shape, kh, kw, stride, padding):
        self.x_shape, self.args = x_shape, (kh, kw, stride, padding)

    def forward(self, cols):
        return col2im(cols, self.x_shape, *self.args)

    def backward(self, gy):
        return Tensor(im2col(gy.data, *self.args))


class Dot(Function):
    """<u, v>: the sum of u * v over all elements (one number)."""

    def forward(self, u, v):
        return get_array_module(u).asarray((u * v).sum())

    def backward(self, gy):
        u, v = self.inputs
        return Tensor(gy.data * v.data), Tensor(gy.data * u.data)


def im2col_col2im(x, y, kh, kw, stride=1, padding=0):
    """Returns (cols, <im2col(x), y>, <x, col2im(y)>): im2col's forward and both sides of the dot-product test."""
    cols = Im2col(kh, kw, stride, padding)(x)
    return cols, Dot()(cols, y), Dot()(x, Col2im(x.shape, kh, kw, stride, padding)(y))
