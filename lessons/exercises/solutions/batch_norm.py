"""Solution: the backward of batch normalisation (training mode). See batch_norm_walkthrough.md.

With m = N, xhat = (x - mu) * r where r = 1 / sqrt(var + eps), and g = gy * gamma (the
gradient that reaches xhat):

    dx = (r / m) * (m * g - sum_n g - xhat * sum_n (g * xhat))
    dgamma = sum_n gy * xhat        dbeta = sum_n gy
"""

from minidl import Function, Tensor
from minidl.backend import get_array_module


class BatchNorm(Function):
    def __init__(self, eps=1e-5):
        self.eps = eps

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        mu = x.mean(axis=0)
        var = ((x - mu) ** 2).mean(axis=0)  # biased: divide by N, as PyTorch does in training
        self.r = 1 / xp.sqrt(var + self.eps)
        self.xhat = (x - mu) * self.r
        return gamma * self.xhat + beta

    def backward(self, gy):
        gamma = self.inputs[1].data
        gy, xhat, r = gy.data, self.xhat, self.r
        m = gy.shape[0]
        g = gy * gamma
        dx = (r / m) * (m * g - g.sum(axis=0) - xhat * (g * xhat).sum(axis=0))
        return Tensor(dx), Tensor((gy * xhat).sum(axis=0)), Tensor(gy.sum(axis=0))


def batch_norm(x, gamma, beta, eps=1e-5):
    return BatchNorm(eps)(x, gamma, beta)
