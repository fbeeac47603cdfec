"""Exercise: the backward of layer normalisation over the last dimension.

The forward is written for you (PyTorch's F.layer_norm(x, (D,), gamma, beta)): every
row (the last dim, size D) is normalised on its own:

    mu   = mean of x over the last dim            (..., 1)
    var  = mean of (x - mu)**2 over the last dim  (..., 1)   (biased: divided by D)
    xhat = (x - mu) / sqrt(var + eps)
    y    = gamma * xhat + beta                    gamma, beta (D,) shared by every row

forward keeps xhat on ``self.xhat`` (..., D) and 1 / sqrt(var + eps) on ``self.r`` (..., 1).

Derive dL/dx, dL/dgamma and dL/dbeta from gy = dL/dy (if you did batch_norm: which axes
changed roles?), then write ``LayerNorm.backward``: it returns (dx, dgamma, dbeta),
Tensors shaped like x, gamma and beta.

Shapes: x, xhat, y, gy (..., D) with any number of leading axes; gamma, beta (D,).
``self.inputs`` is (x, gamma, beta) as Tensors (``.data`` is the array).

Check it:  python -m minidl.exercises check layer_norm
"""

from minidl import Function, Tensor  # noqa: F401  (Tensor: to wrap the gradients you compute)
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
        raise NotImplementedError(
            "LayerNorm.backward: return (dx, dgamma, dbeta), Tensors shaped like x, (D,) and (D,); "
            "x reaches y directly and through its row's mu and var: derive all three paths"
        )


def layer_norm(x, gamma, beta, eps=1e-5):
    return LayerNorm(eps)(x, gamma, beta)
