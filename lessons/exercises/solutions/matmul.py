"""Solution: the backward of a batched matrix product, with broadcasting.

For one pair, Y[i, j] = sum_k A[i, k] B[k, j], so dY[i, j]/dA[i, k] = B[k, j] and

    dL/dA[i, k] = sum_j dL/dY[i, j] B[k, j] = (dL/dY @ B^T)[i, k]
    dL/dB[k, j] = sum_i A[i, k] dL/dY[i, j] = (A^T @ dL/dY)[k, j]

Batched, those products carry the broadcast batch axes; an input broadcast along an
axis was used once per position on it, so its gradient sums over that axis (sum_to).
"""

from minidl import Function, sum_to
from minidl.backend import get_array_module


class MatMul(Function):
    def forward(self, a, b):
        return get_array_module(a, b).matmul(a, b)

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(gy @ b.mT, a.shape)
        gb = sum_to(a.mT @ gy, b.shape)
        return ga, gb


def matmul(a, b):
    """A (..., n, k) @ B (..., k, m); both need at least 2 dimensions here."""
    return MatMul()(a, b)
