"""Batch normalisation as one fused op (optionally with the ReLU and residual add that follow), with
the standard hand-written backward.

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

A ReLU and a residual add often follow (a ResNet block: y = relu(bn(x)) + r), so the op takes
them too: with activation='relu', gy is first masked where z = gamma * x_hat + beta <= 0
(the ReLU's derivative) and the lines above use the masked gradient; the residual's gradient
is gy. On a GPU the whole of it is then 2 launches forward and 2 backward (minidl/kernels/norm.py).
"""

from __future__ import annotations

from minidl import kernels
from minidl.autograd import Function
from minidl.grad_mode import is_grad_enabled
from minidl.ops.activation import relu
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
    """y = act(gamma * x_hat + beta) [+ residual],  x_hat = (x - mu) / sqrt(var + eps), with the
    batch's own mean and (biased) variance per channel, act = relu or identity;
    sums over the M values of a channel, g = gy masked by the ReLU (gy where z = gamma * x_hat + beta > 0):
    d_beta = sum(g),  d_gamma = sum(g * x_hat),
    d_x = gamma / sqrt(var + eps) * (g - d_beta / M - x_hat * d_gamma / M),  d_residual = gy
    (derived in the module docstring; the ReLU only masks the gradient, the add passes it on)

    A fused op: forward and backward are two entries of the backend table (minidl/kernels/norm.py:
    the NumPy twin on a CPU, two CUDA kernels each on a GPU); ``composed`` is the same forward in
    Tensor ops, which the engine differentiates for gradients of gradients (create_graph=True).
    Given running_mean/running_var (arrays), forward also updates them in place with ``momentum``.
    After the call, ``batch_mean`` and ``batch_var`` hold the statistics it used.
    """

    def __init__(self, eps, activation=None, running_mean=None, running_var=None, momentum=0.0):
        if activation not in (None, "relu"):
            raise ValueError(f"BatchNorm: activation must be None or 'relu', got {activation!r}")
        self.eps, self.relu = eps, activation == "relu"
        self.running_mean, self.running_var, self.momentum = running_mean, running_var, momentum

    def forward(self, x, gamma, beta, *residual):
        if residual and residual[0].shape != x.shape:
            raise ValueError(f"the residual must have the input's shape {x.shape}, got {residual[0].shape}")
        y, self.batch_mean, self.batch_var = kernels.backend_for(x).batch_norm_forward(
            x, gamma, beta, self.eps, self.relu, residual[0] if residual else None,
            self.running_mean, self.running_var, self.momentum)
        self.running_mean = self.running_var = None  # updated: backward needs them no more
        return y

    def backward(self, gy):
        x, gamma, beta = self.inputs[:3]
        gx, g_gamma, g_beta = kernels.backend_for(gy.data).batch_norm_backward(
            gy.data, x.data, self.batch_mean, self.batch_var, gamma.data, beta.data, self.eps, self.relu)
        grads = (Tensor.wrap(gx), Tensor.wrap(g_gamma) if gamma.requires_grad else None,
                 Tensor.wrap(g_beta) if beta.requires_grad else None)
        return grads + tuple(gy for _ in self.inputs[3:])  # the residual's gradient: gy itself

    def composed(self, x, gamma, beta, *residual):
        """The same forward in Tensor ops: act((x - mu) * (var + eps)**-0.5 * gamma + beta) [+ residual]."""
        axes, shape = channel_axes(x.ndim), channel_shape(x.ndim, x.shape[1])
        centered = x - mean(x, axes, keepdims=True)
        inv_std = (mean(centered * centered, axes, keepdims=True) + self.eps) ** -0.5
        y = centered * inv_std * reshape(gamma, shape) + reshape(beta, shape)
        y = relu(y) if self.relu else y
        return y + residual[0] if residual else y


def batch_norm_train(x, gamma, beta, eps, activation=None, residual=None, running_mean=None, running_var=None,
                     momentum=0.0):
    """Normalise x with its own batch statistics, then act (None or 'relu') and add ``residual``
    (a Tensor of x's shape) if given; returns (y, batch_mean, batch_var) with the statistics as
    arrays (biased variance). running_mean/running_var (arrays) are updated in place if given."""
    op = BatchNorm(eps, activation, running_mean, running_var, momentum)
    y = op(x, gamma, beta) if residual is None else op(x, gamma, beta, residual)
    return y, op.batch_mean, op.batch_var


class BatchNormInference(Function):
    """y = act(gamma * (x - rm) / sqrt(rv + eps) + beta) [+ residual] with fixed statistics (rm, rv):
    evaluation's batch norm in one pass (one launch on a GPU). It records no graph, so it has no
    gradient: ``batch_norm_eval`` uses it only when none is wanted, and composes ops otherwise."""

    differentiable = False

    def __init__(self, eps, activation=None):
        self.eps, self.relu = eps, activation == "relu"

    def forward(self, x, running_mean, running_var, gamma, beta, *residual):
        return kernels.backend_for(x).batch_norm_inference(
            x, running_mean, running_var, gamma, beta, self.eps, self.relu, residual[0] if residual else None)


def batch_norm_eval(x, running_mean, running_var, gamma, beta, eps, activation=None, residual=None):
    """Normalise x with fixed statistics: an affine map per channel, then act (None or 'relu') and
    add ``residual`` if given: y = act(x * (gamma / sqrt(rv + eps)) + (beta - rm * gamma / sqrt(rv + eps))) [+ r].
    When no gradient is wanted (no_grad, or nothing requires grad: evaluation) that is one pass,
    BatchNormInference; otherwise it is composed of ops, which autograd differentiates."""
    tensors = [x, running_mean, running_var, gamma, beta] + ([] if residual is None else [residual])
    if not (is_grad_enabled() and any(t.requires_grad for t in tensors)):
        return BatchNormInference(eps, activation)(*tensors)
    shape = channel_shape(x.ndim, x.shape[1])
    scale = gamma * (running_var + eps) ** -0.5
    shift = beta - running_mean * scale
    y = x * reshape(scale, shape) + reshape(shift, shape)
    y = relu(y) if activation == "relu" else y
    return y if residual is None else y + residual
