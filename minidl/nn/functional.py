"""minidl.nn.functional (``import minidl.nn.functional as F``): the layers as plain functions.

Each function has PyTorch's name, argument order and defaults (``dim`` for the axis; numpy's
``axis`` accepted too) and is an op of ``minidl.ops`` or a thin wrapper over them: the math
and its derivative live in the ops.
Layers (``minidl.nn.Linear`` ...) hold the parameters and call these.
"""

from __future__ import annotations

import numpy

from minidl import amp, backend, checks, ops
from minidl.autograd import no_grad
from minidl.ops.activation import leaky_relu, log_softmax, relu, sigmoid, softmax, tanh  # noqa: F401
from minidl.ops.conv import conv1d, conv2d, fold, unfold  # noqa: F401
from minidl.ops.pool import (  # noqa: F401
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    avg_pool1d,
    avg_pool2d,
    max_pool1d,
    max_pool2d,
)
from minidl.ops.loss import (  # noqa: F401
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
)
from minidl.ops.norm import batch_norm_eval, batch_norm_train
from minidl.ops.shape import pad  # noqa: F401  (PyTorch's: last dim first)
from minidl.random import default_generator
from minidl.tensor import Tensor


# --------------------------------------------------------------------------- #
# Activations
# --------------------------------------------------------------------------- #
def silu(input):
    """x * sigmoid(x) (also called swish)."""
    return input * ops.sigmoid(input)


# --------------------------------------------------------------------------- #
# Linear
# --------------------------------------------------------------------------- #
def linear(input, weight, bias=None):
    """y = x W^T + b for x (*, in), W (out, in), b (out,)."""
    input, weight, bias = amp.autocast_inputs(input, weight, bias)  # float16 under autocast
    if weight.ndim != 2:
        raise ValueError(f"linear: expected a weight of shape (out_features, in_features), got shape {weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {input.shape} does not match weight of shape {weight.shape}: "
            f"expected input of shape (*, {weight.shape[1]}) (the last axis holds the in_features)"
        )
    checks.same_dtype(input, weight, "linear", "weight")
    checks.same_dtype(input, bias, "linear", "bias")
    y = ops.matmul(input, ops.transpose(weight, 0, 1))
    return y if bias is None else y + bias


# --------------------------------------------------------------------------- #
# Dropout, batch norm, embedding
# --------------------------------------------------------------------------- #
def dropout(input, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1 / (1 - p) ("inverted"
    dropout: the expected value stays x, so nothing changes at evaluation time);
    the identity when not training. gx = gy * mask / (1 - p)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    uniform = default_generator(input.device).random(input.shape, dtype=numpy.float32)
    kept = (uniform >= p).astype(input.dtype)
    return input * Tensor.wrap(kept * kept.dtype.type(1.0 / (1.0 - p)))


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Normalise every channel (axis 1) of ``input`` (N, C, *): with the batch's statistics when
    ``training`` (then, if given, running_mean/running_var are updated in place:
    r = (1 - momentum) r + momentum * batch_stat, with the UNBIASED batch variance, as PyTorch),
    otherwise with running_mean/running_var. weight and bias (C,) are the affine gamma and beta."""
    return _batch_norm("batch_norm", input, running_mean, running_var, weight, bias, training, momentum, eps)


def batch_norm_relu(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                    eps=1e-5, residual=None):
    """relu(batch_norm(input, ...)) (+ ``residual``, a tensor of input's shape, added after the ReLU),
    fused: one op whose forward and backward are two passes each on a GPU. The arguments are
    batch_norm's. PyTorch has no such function: write ``F.relu(F.batch_norm(...)) + residual`` there."""
    return _batch_norm("batch_norm_relu", input, running_mean, running_var, weight, bias, training, momentum, eps,
                       "relu", residual)


def _batch_norm(name, input, running_mean, running_var, weight, bias, training, momentum, eps, activation=None,
                residual=None):
    input = amp.autocast_inputs(input, to="float32")
    if input.ndim < 2:
        raise ValueError(f"{name}: expected input of shape (N, C, *), got shape {input.shape}")
    if residual is not None and residual.shape != input.shape:
        raise ValueError(f"{name}: residual must have the input's shape {input.shape}, got {residual.shape}")
    channels = input.shape[1]
    for arg, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (channels,):
            raise ValueError(f"{name}: {arg} must have shape ({channels},) for {channels} channels, got {t.shape}")
    weight = weight if weight is not None else Tensor.wrap(input.xp.ones(channels, dtype=input.dtype))
    bias = bias if bias is not None else Tensor.wrap(input.xp.zeros(channels, dtype=input.dtype))
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError(f"{name}: evaluation (training=False) needs running_mean and running_var")
        return batch_norm_eval(input, running_mean, running_var, weight, bias, eps, activation, residual)
    count = input.numel() // channels if channels else 0
    if count <= 1:
        raise ValueError(
            f"{name}: expected more than 1 value per channel when training, got input of shape {input.shape}"
        )
    if residual is not None:
        residual = amp.autocast_inputs(residual, to="float32")
    running = [None if t is None else t.data for t in (running_mean, running_var)]  # updated in place by the op
    return batch_norm_train(input, weight, bias, eps, activation, residual, *running, momentum)[0]


def embedding(input, weight, padding_idx=None):
    """Rows of ``weight`` (num_embeddings, dim) picked by integer ``input`` (any shape):
    y[...] = weight[input[...]]. The gradient of a row is the sum of gy over every place
    it was picked (repeats add up); the ``padding_idx`` row gets none. An index outside
    0..num_embeddings-1 raises IndexError on the CPU; on a GPU its row comes out NaN."""
    indices = input.data if isinstance(input, Tensor) else input
    if not hasattr(indices, "dtype"):
        indices = numpy.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: expected integer indices, got dtype {indices.dtype}")
    count = weight.shape[0]
    indices = backend.to_device(indices, weight.device)
    out_of_range = (indices < 0) | (indices >= count)
    if weight.xp is numpy and out_of_range.any():
        raise IndexError(f"embedding: index out of range: indices must lie in [0, {count - 1}] for {count} rows")
    # On a GPU, checking would make every call wait for the device: there a bad index gives a NaN row.
    y = ops.getitem(weight, weight.xp.where(out_of_range, 0, indices))
    y = ops.where(out_of_range[..., None], numpy.nan, y)
    if padding_idx is not None and weight.requires_grad:
        padding_idx = padding_idx % count
        at_padding = (indices == padding_idx)[..., None]
        y = ops.where(at_padding, y.detach(), y)  # same values; no gradient into the padding row
    return y
