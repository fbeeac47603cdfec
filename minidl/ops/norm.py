"""Batch normalisation as one fused op, with the standard hand-written backward.

For x shaped (N, C) or (N, C, L) or (N, C, H, W), every channel c is normalised over
the M = N * L (or N * H * W) values it has in the batch:

    mu = mean(x),  var = mean((x - mu)**2)        (biased: divide by M)
    x_hat = (x - mu) / sqrt(var + eps),   y = gamma * x_hat + beta

Backward (all sums over the M values of a channel):

    d_beta  = sum(gy)
    d_gamma = sum(gy * x_hat)
    d_x     = gamma / sqrt(var + eps) * (gy - d_beta / M - x_hat * d_gamma / M)

The last line is what the chain rule gives through mu and var, simplified: the two
subtracted terms remove the parts of gy that the normalisation cancels (a shift of
every value, and a scaling of every value). Composing mean, var, sub, div, mul gives
the same numbers (tests/test_ops_norm.py checks it) with several more passes over x.
That composition is the op's ``composed`` twin: for gradients of gradients
(create_graph=True) the engine differentiates it instead of the array backward.
"""

from __future__ import annotations

from minidl import backend
from minidl.autograd import Function
from minidl.ops.reduce import mean
from minidl.ops.shape import reshape
from minidl.tensor import Tensor


def channel_axes(ndim: int) -> tuple:
    """The axes a per-channel statistic reduces over: all but axis 1."""
    return (0,) + tuple(range(2, ndim))


def channel_shape(ndim: int, channels: int) -> tuple:
    """(1, C, 1, ...): a per-channel vector shaped to broadcast against x."""
    return (1, channels) + (1,) * (ndim - 2)


class BatchNorm(Function):
    """y = gamma * x_hat + beta,  x_hat = (x - mu) / sqrt(var + eps), with the batch's own mean
    and (biased) variance per channel;  sums over the M values of a channel:
    d_beta = sum(gy),  d_gamma = sum(gy * x_hat),
    d_x = gamma / sqrt(var + eps) * (gy - d_beta / M - x_hat * d_gamma / M)  (derived in the module docstring)

    A fused op: backward works on the arrays forward saved (x_hat, 1 / sqrt(var + eps)) and
    on gamma's values; ``composed`` is the same forward in Tensor ops, which the engine
    differentiates for gradients of gradients (create_graph=True).
    After the call, ``batch_mean`` and ``batch_var`` hold the statistics it used
    (the caller updates running averages from them).
    """

    def __init__(self, eps):
        self.eps = eps

    def forward(self, x, gamma, beta):
        xp = backend.get_array_module(x)
        axes, shape = channel_axes(x.ndim), channel_shape(x.ndim, x.shape[1])
        self.batch_mean = x.mean(axis=axes)
        centered = x - self.batch_mean.reshape(shape)
        self.batch_var = (centered * centered).mean(axis=axes)
        self.inv_std = (1 / xp.sqrt(self.batch_var + self.eps)).astype(x.dtype, copy=False)
        self.x_hat = centered * self.inv_std.reshape(shape)
        return self.x_hat * gamma.reshape(shape) + beta.reshape(shape)

    def backward(self, gy):
        _, gamma, beta = self.inputs
        gy, x_hat = gy.data, self.x_hat
        axes, shape = channel_axes(gy.ndim), channel_shape(gy.ndim, gy.shape[1])
        count = gy.size // gy.shape[1]
        g_beta = gy.sum(axis=axes)
        g_gamma = (gy * x_hat).sum(axis=axes)
        scale = (gamma.data * self.inv_std).reshape(shape)
        gx = scale * (gy - g_beta.reshape(shape) / count - x_hat * g_gamma.reshape(shape) / count)
        return (Tensor.wrap(gx), Tensor.wrap(g_gamma) if gamma.requires_grad else None,
                Tensor.wrap(g_beta) if beta.requires_grad else None)

    def composed(self, x, gamma, beta):
        """The same forward in Tensor ops: (x - mu) * (var + eps)**-0.5 * gamma + beta."""
        axes, shape = channel_axes(x.ndim), channel_shape(x.ndim, x.shape[1])
        centered = x - mean(x, axes, keepdims=True)
        inv_std = (mean(centered * centered, axes, keepdims=True) + self.eps) ** -0.5
        return centered * inv_std * reshape(gamma, shape) + reshape(beta, shape)


def batch_norm_train(x, gamma, beta, eps):
    """Normalise x with its own batch statistics; returns (y, batch_mean, batch_var) with
    the statistics as arrays (biased variance)."""
    op = BatchNorm(eps)
    y = op(x, gamma, beta)
    return y, op.batch_mean, op.batch_var


def batch_norm_eval(x, running_mean, running_var, gamma, beta, eps):
    """Normalise x with fixed statistics: an affine map per channel,
    y = x * (gamma / sqrt(rv + eps)) + (beta - rm * gamma / sqrt(rv + eps)); composed of ops."""
    shape = channel_shape(x.ndim, x.shape[1])
    scale = gamma * (running_var + eps) ** -0.5
    shift = beta - running_mean * scale
    return x * reshape(scale, shape) + reshape(shift, shape)
