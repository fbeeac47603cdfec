"""Batch normalisation layers: BatchNorm1d for (N, C) or (N, C, L), BatchNorm2d for (N, C, H, W),
and BatchNormReLU2d: BatchNorm2d, then a ReLU, then an optional residual add, as one fused op.

In training mode each channel is normalised with the statistics of the current batch,
and running averages of those statistics are kept in buffers; in evaluation mode the
running averages are used instead, so one example's output no longer depends on the
others in its batch. The math and its backward are in minidl/ops/norm.py.
"""

from __future__ import annotations

import numpy

from minidl import checks
from minidl.creation import ones, tensor, zeros
from minidl.nn import functional as F
from minidl.nn import init
from minidl.nn.module import Module, Parameter


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d, which only differ in the input ranks they accept.

    Parameters (PyTorch's): num_features C; eps added to the variance; momentum of the
    running averages (None: a cumulative average over all batches seen); affine: learn a
    scale ``weight`` (gamma, starts at 1) and shift ``bias`` (beta, starts at 0);
    track_running_stats: keep ``running_mean`` (starts at 0), ``running_var`` (starts at 1)
    and ``num_batches_tracked`` buffers (without them, batch statistics are used always).
    """

    ranks: tuple = ()
    layout: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        self.num_features = checks.positive_int(num_features, name, "num_features")
        self.eps = checks.non_negative_float(eps, name, "eps")
        self.momentum = None if momentum is None else checks.probability(momentum, name, "momentum")
        self.affine, self.track_running_stats = affine, track_running_stats
        dtype = numpy.float32 if dtype is None else dtype
        if affine:
            self.weight = Parameter(ones(self.num_features, dtype=dtype, device=device))
            self.bias = Parameter(zeros(self.num_features, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(self.num_features, dtype=dtype, device=device))
            self.register_buffer("running_var", ones(self.num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=numpy.int64, device=device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input):
        return self._normalise(input, F.batch_norm)

    def _normalise(self, input, function, **extra):
        """``function`` (F.batch_norm or F.batch_norm_relu) applied with this layer's state."""
        name = type(self).__name__
        checks.tensor_input(input, name)
        if input.ndim not in self.ranks:
            raise ValueError(f"{name}: expected a {self.layout} input, got shape {input.shape}")
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{name}: expected {self.num_features} channels on axis 1 (num_features), "
                f"got input of shape {input.shape}"
            )
        use_batch_stats = self.training or not self.track_running_stats
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1  # in place (one launch on a GPU)
            if self.momentum is None:  # cumulative moving average: the mean over every batch so far
                momentum = 1.0 / self.num_batches_tracked.data  # a 0-d array: no wait for a GPU
        return function(input, self.running_mean, self.running_var, self.weight, self.bias, use_batch_stats, momentum,
                        self.eps, **extra)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs: per channel C, statistics over N (and L)."""

    ranks, layout = (2, 3), "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs: per channel C, statistics over N, H and W."""

    ranks, layout = (4,), "(N, C, H, W)"


class BatchNormReLU2d(BatchNorm2d):
    """``forward(x, residual=None)`` = relu(batch_norm(x)) (+ residual, added after the ReLU), fused.

    It computes exactly what ``BatchNorm2d`` followed by ``ReLU`` (and ``+ residual``) computes, with
    the same parameters, buffers and state_dict keys (a checkpoint of either loads into the other),
    training and evaluation modes. The difference is speed on a GPU: one op, whose forward is two
    passes over the activations and backward two more (evaluation: one), where the separate layers
    take 4 forward (batch norm 2, ReLU 1, add 1) and 4 backward (the ReLU's mask is 2), and the
    ReLU keeps its own output for backward (see minidl/kernels/norm.py).

    PyTorch has no such module: write ``nn.BatchNorm2d(c)`` then ``nn.ReLU()`` (and ``x + ...``) there.
    """

    def forward(self, input, residual=None):
        return self._normalise(input, F.batch_norm_relu, residual=residual)
