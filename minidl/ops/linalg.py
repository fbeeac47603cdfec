"""Matrix products."""

from __future__ import annotations

import numpy

from minidl import amp, backend, kernels
from minidl.autograd import Function
from minidl.creation import as_tensor_like
from minidl.ops.shape import reshape, sum_to, swapaxes


class MatMul(Function):
    """Y = A @ B (batched over leading axes, which broadcast);
    dA = dY @ B^T,  dB = A^T @ dY  (each summed back over broadcast batch axes)"""

    def forward(self, a, b):
        return kernels.backend_for(backend.get_array_module(a, b)).matmul(a, b)

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(matmul(gy, swapaxes(b, -1, -2)), a.shape) if a.requires_grad else None
        gb = sum_to(matmul(swapaxes(a, -1, -2), gy), b.shape) if b.requires_grad else None
        return ga, gb


def matmul(a, b):
    """numpy's matmul rules: a 1-D operand is a row (left) or column (right) vector
    that is dropped from the result again."""
    a, b = as_tensor_like(a, (a, b)), as_tensor_like(b, (a, b))
    a, b = amp.autocast_inputs(a, b)  # float16 under autocast
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} do not match: "
            f"{a.shape[-1]} columns on the left, {b.shape[-2 if b.ndim > 1 else 0]} rows on the right"
        )
    try:
        numpy.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(
            f"matmul: the batch dimensions of shapes {a.shape} and {b.shape} do not broadcast"
        ) from None
    vector_a, vector_b = a.ndim == 1, b.ndim == 1
    if vector_a:
        a = reshape(a, (1, a.shape[0]))
    if vector_b:
        b = reshape(b, (b.shape[0], 1))
    y = MatMul()(a, b)
    if vector_a and vector_b:
        return reshape(y, y.shape[:-2])
    if vector_a:
        return reshape(y, y.shape[:-2] + y.shape[-1:])
    if vector_b:
        return reshape(y, y.shape[:-1])
    return y
