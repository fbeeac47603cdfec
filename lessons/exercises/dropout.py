"""Exercise: the backward of (inverted) dropout, with a given mask.

The forward is written for you (PyTorch's F.dropout in training mode, with the random
mask passed in so the checker can repeat it):

    y = x * mask / (1 - p)

mask holds True for the elements kept, False for those dropped (each dropped with
probability p); dividing by 1 - p keeps the expected value of y equal to x, so nothing
needs rescaling at test time ("inverted" dropout).

Derive dL/dx from gy = dL/dy, then write ``Dropout.backward``. It returns one gradient
per input: a Tensor for x and None for the mask (a mask is not learnt).

Shapes: x, mask, y, gy and dL/dx all have the same shape (any shape).
``self.inputs`` is (x, mask) as Tensors (``.data`` is the array); ``self.p`` is p.

Check it:  python -m minidl.exercises check dropout
"""

from minidl import Function, Tensor  # noqa: F401  (Tensor: to wrap the gradient you compute)


class Dropout(Function):
    def __init__(self, p):
        self.p = p

    def forward(self, x, mask):
        return x * mask / (1 - self.p)

    def backward(self, gy):
        raise NotImplementedError(
            "Dropout.backward: return (dL/dx, None): dL/dx a Tensor shaped like x, None for the mask"
        )


def dropout(x, mask, p=0.5):
    return Dropout(p)(x, mask)
