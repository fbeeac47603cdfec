"""Solution: a 2-D convolution through im2col, forward and backward.

y = cols @ Wm^T + bias with Wm = weight.reshape(F, C*KH*KW) is a matrix product, so its
backward is the matmul rule: dWm = g^T @ cols (summed over every output position),
dcols = g @ Wm, dbias = sum of g. cols came from x by copying, so dx is dcols sent back
to where each copy came from, adding up where windows overlap: that is col2im.
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
    """cols (N, OH, OW, C*KH*KW) -> (N, C, H, W): the adjoint of im2col (overlaps add up)."""
    xp = get_array_module(cols)
    n, c, h, w = x_shape
    oh, ow = cols.shape[1], cols.shape[2]
    cols = cols.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    xpad = xp.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for p in range(kh):
        for q in range(kw):
            xpad[:, :, p : p + stride * oh : stride, q : q + stride * ow : stride] += cols[:, :, p, q]
    return xpad[:, :, padding : padding + h, padding : padding + w]


class Conv2d(Function):
    def __init__(self, stride=1, padding=0):
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias):
        f, _, kh, kw = weight.shape
        self.cols = im2col(x, kh, kw, self.stride, self.padding)
        y = self.cols @ weight.reshape(f, -1).T + bias
        return y.transpose(0, 3, 1, 2)

    def backward(self, gy):
        x, weight, _ = self.inputs
        f, _, kh, kw = weight.shape
        g = gy.data.transpose(0, 2, 3, 1)  # (N, OH, OW, F)
        g_rows = g.reshape(-1, f)
        dweight = (g_rows.T @ self.cols.reshape(g_rows.shape[0], -1)).reshape(weight.shape)
        dbias = gy.data.sum(axis=(0, 2, 3))
        dx = col2im(g @ weight.data.reshape(f, -1), x.shape, kh, kw, self.stride, self.padding)
        return Tensor(dx), Tensor(dweight), Tensor(dbias)


def conv2d(x, weight, bias, stride=1, padding=0):
    return Conv2d(stride, padding)(x, weight, bias)
