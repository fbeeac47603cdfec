"""Matrix products."""

from __future__ import annotations

import numpy

from minidl import amp, backend, kernels
from minidl.autograd import Function
from minidl.creation import as_tensor_like
from minidl.ops.shape import reshape, sum_to, swapaxes, transpose


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


class Linear(Function):
    """y = x W^T + b for x (N, in), W (out, in) and b (out,) (or no b);
    dx = dy W,  dW = dy^T x,  db = dy summed over the N rows

    The same math as ``matmul(x, transpose(W)) + b``, in fewer launches: the forward is one
    product (cuBLAS and BLAS read the transposed W as it is, no copy) and one in-place bias add;
    the backward is two products and one sum, each gradient already in its parameter's own
    layout (dW is a fresh (out, in) array, not a transposed view), so ``.grad`` stores it as it is.
    """

    def forward(self, x, w, b=None):
        y = kernels.backend_for(backend.get_array_module(x, w)).matmul(x, w.T)
        if b is not None:
            y += b  # into the fresh product: no second (N, out) array
        return y

    def backward(self, gy):
        x, w = self.inputs[:2]
        gx = matmul(gy, w) if x.requires_grad else None
        gw = matmul(transpose(gy, 0, 1), x) if w.requires_grad else None
        if len(self.inputs) == 2:
            return gx, gw
        gb = sum_to(gy, self.inputs[2].shape) if self.inputs[2].requires_grad else None
        return gx, gw, gb


def linear(x, weight, bias=None):
    """y = x W^T + b for x (*, in), W (out, in), b (out,) (PyTorch's F.linear), as one ``Linear``
    op on the rows of x (all leading axes flattened into one, a view of a contiguous x)."""
    x, weight, bias = amp.autocast_inputs(x, weight, bias)  # float16 under autocast
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape {weight.shape}: "
                         f"expected weight (out_features, in_features) and input (*, in_features)")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"linear: expected a bias of shape {weight.shape[:1]}, got shape {bias.shape}")
    rows = reshape(x, (-1, x.shape[-1])) if x.ndim != 2 else x
    y = Linear()(rows, weight) if bias is None else Linear()(rows, weight, bias)
    return y if x.ndim == 2 else reshape(y, x.shape[:-1] + weight.shape[:1])
