"""Exercise: a 2-D convolution through im2col, forward and backward.

Do ``im2col_col2im`` first: this file uses YOUR im2col and col2im (it loads them from
im2col_col2im.py beside it).

PyTorch's layout, argument order and arithmetic (torch.nn.functional.conv2d):

    x      (N, C, H, W)       a batch of images
    weight (F, C, KH, KW)     F filters
    bias   (F,)
    y      (N, F, OH, OW)     OH = (H + 2*padding - KH) // stride + 1, likewise OW

    y[n, f, i, j] = bias[f] + sum_{c, p, q} weight[f, c, p, q] * xpad[n, c, i*stride + p, j*stride + q]

where xpad is x with ``padding`` zeros on every side of H and W. With
cols = im2col(x, KH, KW, stride, padding), shape (N, OH, OW, C*KH*KW), that sum is one
matrix product: the row cols[n, i, j, :] against the flattened filter weight[f] (same
(c, p, q) order as weight.reshape(F, C*KH*KW)).

Write ``Conv2d.forward`` (return y as (N, F, OH, OW); keep what the backward needs on
``self``), then derive and write ``Conv2d.backward``: gy (N, F, OH, OW) in, and
(dx, dweight, dbias) out, shaped like x, weight and bias. You have met both halves
before: a matrix product (the matmul exercise) and the adjoint of im2col.
Conv2d.backward may work on arrays (``gy.data``) and wrap its results with ``Tensor(array)``.

Check it:  python -m minidl.exercises check conv2d_im2col
"""

from pathlib import Path

from minidl import Function, Tensor  # noqa: F401  (Tensor: to wrap the gradients you compute)


def _from_sibling(filename, *names):
    """Load names from another exercise file in this folder (your im2col_col2im.py)."""
    path = Path(__file__).with_name(filename)
    namespace = {"__file__": str(path), "__name__": path.stem}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return [namespace[name] for name in names]


im2col, col2im = _from_sibling("im2col_col2im.py", "im2col", "col2im")


class Conv2d(Function):
    def __init__(self, stride=1, padding=0):
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias):
        raise NotImplementedError(
            "Conv2d.forward: y (N, F, OH, OW) from cols = im2col(x, KH, KW, stride, padding) and "
            "weight.reshape(F, -1) in one matrix product, plus bias (keep cols on self for the backward)"
        )

    def backward(self, gy):
        raise NotImplementedError(
            "Conv2d.backward: return (dx, dweight, dbias) as Tensors shaped like x, weight and bias; "
            "derive them from the matrix product in forward and the adjoint of im2col"
        )


def conv2d(x, weight, bias, stride=1, padding=0):
    return Conv2d(stride, padding)(x, weight, bias)
