"""Solution: the backward of a linear layer followed by a ReLU.

a = x W^T + b, y = relu(a). relu'(a) is 1 where a > 0 and 0 elsewhere, so the gradient
that reaches a is g = gy * (a > 0), elementwise. a[n, o] = sum_i x[n, i] W[o, i] + b[o], so

    dL/dx[n, i] = sum_o g[n, o] W[o, i]          dx = g @ W          (N, O) @ (O, I)
    dL/dW[o, i] = sum_n g[n, o] x[n, i]          dW = g^T @ x        (O, N) @ (N, I)
    dL/db[o]    = sum_n g[n, o]                  db = g summed over the batch axis

W and b are used once per sample, so their gradients sum over the batch.
"""

from minidl import Function, Tensor
from minidl.backend import get_array_module


class LinearReLU(Function):
    def forward(self, x, weight, bias):
        xp = get_array_module(x)
        self.a = x @ weight.T + bias
        return xp.maximum(self.a, 0)

    def backward(self, gy):
        x, weight, _ = self.inputs
        g = gy.data * (self.a > 0)
        return Tensor(g @ weight.data), Tensor(g.T @ x.data), Tensor(g.sum(axis=0))


def linear_relu(x, weight, bias):
    return LinearReLU()(x, weight, bias)
