"""Solution: the backward of (inverted) dropout with a given mask.

y = x * mask / (1 - p): for a fixed mask this is x times a constant, elementwise, so
dy/dx = mask / (1 - p) and

    dL/dx = gy * mask / (1 - p)

Dropped elements get no gradient; kept ones get gy scaled by the same 1 / (1 - p) as
in the forward. The mask is not a learnable input: its gradient is None.
"""

from minidl import Function, Tensor


class Dropout(Function):
    def __init__(self, p):
        self.p = p

    def forward(self, x, mask):
        return x * mask / (1 - self.p)

    def backward(self, gy):
        mask = self.inputs[1].data
        return Tensor(gy.data * mask / (1 - self.p)), None


def dropout(x, mask, p=0.5):
    return Dropout(p)(x, mask)
