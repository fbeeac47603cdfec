"""Solution: im2col and col2im, an adjoint pair.

im2col copies: every element of cols is one element of xpad (or a padding zero). A copy
is a linear map M, and <M x, y> = <x, M^T y> for all x, y defines its adjoint M^T. Write
out <im2col(x), y> = sum over n, i, j, (c, p, q) of xpad[n, c, i*s + p, j*s + q] y[n, i, j, (c, p, q)]
and collect the terms by the xpad element they multiply: each xpad element is multiplied
by the SUM of the y entries that were copied from it. So col2im sends every entry of y
back to where im2col took it from, ADDING where windows overlap, and drops the padding
(padding zeros came from nowhere). That is also the backward of im2col.
"""

from minidl import Function, Tensor
from minidl.backend import get_array_module


def output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, kh, kw, stride, padding):
    """x (N, C, H, W) -> cols (N, OH, OW, C*KH*KW)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = output_size(h, kh, stride, padding), output_size(w, kw, stride, padding)
    xpad = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for p in range(kh):
        for q in range(kw):
            cols[:, :, p, q] = xpad[:, :, p : p + stride * oh : stride, q : q + stride * ow : stride]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n, oh, ow, c * kh * kw)


def col2im(cols, x_shape, kh, kw, stride, padding):
    """cols (N, OH, OW, C*KH*KW) -> (N, C, H, W): the adjoint of im2col."""
    xp = get_array_module(cols)
    n, c, h, w = x_shape
    oh, ow = cols.shape[1], cols.shape[2]
    cols = cols.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    xpad = xp.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for p in range(kh):
        for q in range(kw):
            xpad[:, :, p : p + stride * oh : stride, q : q + stride * ow : stride] += cols[:, :, p, q]
    return xpad[:, :, padding : padding + h, padding : padding + w]


# ---- given: what the checker calls (the same in the exercise file) -------------------------
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
