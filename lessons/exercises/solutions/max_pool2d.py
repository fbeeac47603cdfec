"""Solution: the backward of 2-D max pooling.

dy[n, c, i, j] / dx = 1 at the window's winner and 0 elsewhere, so the gradient is
routed to the winners. For one offset (p, q) the windows touch distinct elements of x
(a strided slice), so ``+=`` on that slice is safe; across offsets the slices overlap
when stride < K and the contributions add, as they must.
"""

from minidl import Function, Tensor
from minidl.backend import get_array_module


class MaxPool2d(Function):
    def __init__(self, kernel_size, stride):
        self.k, self.stride = kernel_size, stride

    def forward(self, x):
        xp = get_array_module(x)
        k, s = self.k, self.stride
        oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
        windows = xp.stack(  # (N, C, OH, OW, K*K): window position p*K + q last
            [x[:, :, p : p + s * oh : s, q : q + s * ow : s] for p in range(k) for q in range(k)], axis=-1
        )
        self.argmax = windows.argmax(axis=-1)
        return windows.max(axis=-1)

    def backward(self, gy):
        x = self.inputs[0]
        k, s = self.k, self.stride
        oh, ow = gy.shape[2], gy.shape[3]
        dx = x.xp.zeros(x.shape, dtype=gy.dtype)
        for p in range(k):
            for q in range(k):
                won = self.argmax == p * k + q
                dx[:, :, p : p + s * oh : s, q : q + s * ow : s] += gy.data * won
        return Tensor(dx)


def max_pool2d(x, kernel_size, stride=None):
    return MaxPool2d(kernel_size, kernel_size if stride is None else stride)(x)
