"""Exercise: a 2-D convolution through im2col, forward and backward.

PyTorch's layout, argument order and arithmetic (torch.nn.functional.conv2d):

    x      (N, C, H, W)       a batch of images
    weight (F, C, KH, KW)     F filters
    bias   (F,)
    y      (N, F, OH, OW)     OH = (H + 2*padding - KH) // stride + 1, likewise OW

    y[n, f, i, j] = bias[f] + sum_{c, p, q} weight[f, c, p, q] * xpad[n, c, i*stride + p, j*stride + q]

where xpad is x with ``padding`` zeros on every side of H and W.

im2col turns that sum into one matrix product. Cut the KH x KW window under every output
position out of xpad (all channels) and lay it out as one row, in (c, p, q) order:

    cols (N, OH, OW, C*KH*KW)     cols[n, i, j, (c, p, q)] = xpad[n, c, i*stride + p, j*stride + q]
    y = cols @ weight.reshape(F, C*KH*KW).T + bias     -> (N, OH, OW, F); then move F to axis 1

col2im is its adjoint: it ADDS every row of a cols-shaped array back into the window it
came from (windows overlap when stride < KH, and overlaps add up), then drops the padding:

    col2im(cols, x_shape, ...) -> (N, C, H, W)

Derive the backward, with gy (N, F, OH, OW) moved to rows g (N, OH, OW, F):

    d weight = sum over n, i, j of  g[n, i, j, :]^T cols[n, i, j, :]   -> reshape to (F, C, KH, KW)
    d bias   = gy summed over n, i, j                                   (F,)
    d x      = col2im(g @ weight.reshape(F, C*KH*KW))                   (N, C, H, W)

Write, in this order (the checker tests the forward first): ``im2col``, ``Conv2d.forward``,
``col2im``, ``Conv2d.backward``. im2col and col2im work on arrays (numpy or cupy: use
``xp = get_array_module(x)``); a Python loop over the KH*KW kernel offsets (p, q) is fine,
a loop over samples or pixels is not. Conv2d.backward may work on arrays too
(``gy.data``) and wrap its results with ``Tensor(array)``.

Check it:  python -m minidl.exercises check conv2d_im2col
"""

from minidl import Function, Tensor  # noqa: F401  (Tensor: to wrap the gradients you compute)
from minidl.backend import get_array_module  # noqa: F401


def output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, kh, kw, stride, padding):
    """x (N, C, H, W) -> cols (N, OH, OW, C*KH*KW)."""
    raise NotImplementedError(
        "im2col: pad x, then for each kernel offset (p, q) copy xpad[:, :, p : p + stride*OH : stride, "
        "q : q + stride*OW : stride] into an array of shape (N, C, KH, KW, OH, OW); "
        "return it transposed to (N, OH, OW, C, KH, KW) and reshaped to (N, OH, OW, C*KH*KW)"
    )


def col2im(cols, x_shape, kh, kw, stride, padding):
    """cols (N, OH, OW, C*KH*KW) -> (N, C, H, W): the adjoint of im2col (overlaps add up)."""
    raise NotImplementedError(
        "col2im: undo im2col's reshape and transpose to get (N, C, KH, KW, OH, OW), then for each "
        "kernel offset (p, q) ADD [:, :, p, q] into the same strided slice of a zero padded image; "
        "return the image without its padding, shape x_shape"
    )


class Conv2d(Function):
    def __init__(self, stride=1, padding=0):
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias):
        raise NotImplementedError(
            "Conv2d.forward: cols = im2col(x, KH, KW, stride, padding); "
            "y = cols @ weight.reshape(F, -1).T + bias, shape (N, OH, OW, F); return it transposed "
            "to (N, F, OH, OW) (keep cols on self for the backward)"
        )

    def backward(self, gy):
        raise NotImplementedError(
            "Conv2d.backward: return (dx, dweight, dbias) as Tensors shaped like x, weight, bias: "
            "with g = gy moved to (N, OH, OW, F): dweight = g^T @ cols summed over n, i, j, "
            "dbias = gy summed over (0, 2, 3), dx = col2im(g @ weight.reshape(F, -1), ...)"
        )


def conv2d(x, weight, bias, stride=1, padding=0):
    return Conv2d(stride, padding)(x, weight, bias)
