"""Solution: the backward of layer normalisation over the last dimension.

The derivation is batch norm's (see batch_norm_walkthrough.md) with the roles of the
axes swapped: the mean and variance are taken over the last dim (size D) of each row, so
the two sums in dx run over that dim, while gamma and beta are shared by every row, so
their gradients sum over all the leading axes. With xhat = (x - mu) * r, r = 1 / sqrt(var + eps)
and g = gy * gamma:

    dx = (r / D) * (D * g - sum_d g - xhat * sum_d (g * xhat))
    dgamma = sum over leading axes of gy * xhat        dbeta = sum over leading axes of gy
"""

from minidl import Function, Tensor
from minidl.backend import get_array_module


class LayerNorm(Function):
    def __init__(self, eps=1e-5):
        self.eps = eps

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        self.r = 1 / xp.sqrt(var + self.eps)
        self.xhat = (x - mu) * self.r
        return gamma * self.xhat + beta

    def backward(self, gy):
        gamma = self.inputs[1].data
        gy, xhat, r = gy.data, self.xhat, self.r
        d = gy.shape[-1]
        g = gy * gamma
        dx = (r / d) * (d * g - g.sum(axis=-1, keepdims=True) - xhat * (g * xhat).sum(axis=-1, keepdims=True))
        leading = tuple(range(gy.ndim - 1))
        return Tensor(dx), Tensor((gy * xhat).sum(axis=leading)), Tensor(gy.sum(axis=leading))


def layer_norm(x, gamma, beta, eps=1e-5):
    return LayerNorm(eps)(x, gamma, beta)
