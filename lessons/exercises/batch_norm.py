"""Exercise: the backward of batch normalisation (training mode).

The forward is written for you (PyTorch's F.batch_norm with training=True on (N, D)
inputs, no running statistics):

    mu[d]  = mean over n of x[n, d]
    var[d] = mean over n of (x[n, d] - mu[d])**2          (biased: divided by N)
    xhat   = (x - mu) / sqrt(var + eps)
    y      = gamma * xhat + beta

forward keeps xhat on ``self.xhat`` (N, D) and 1 / sqrt(var + eps) on ``self.r`` (D,).

Derive dL/dx, dL/dgamma and dL/dbeta from gy = dL/dy. Mind that x[n, d] reaches y by more
than one path. Then write ``BatchNorm.backward``: it returns (dx, dgamma, dbeta), Tensors
shaped like x, gamma and beta.

Shapes: x, xhat, y, gy (N, D); gamma, beta, mu, var (D,). ``self.inputs`` is
(x, gamma, beta) as Tensors (``.data`` is the array).

Check it:  python -m minidl.exercises check batch_norm
Afterwards (not before!) read batch_norm_walkthrough.md: the derivation, step by step.
"""

from minidl import Function, Tensor  # noqa: F401  (Tensor: to wrap the gradients you compute)
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
        raise NotImplementedError(
            "BatchNorm.backward: return (dx, dgamma, dbeta), Tensors shaped (N, D), (D,) and (D,); "
            "x reaches y directly and through mu and var: derive all three paths"
        )


def batch_norm(x, gamma, beta, eps=1e-5):
    return BatchNorm(eps)(x, gamma, beta)
