"""Exercise: the backward of a batched matrix product, with broadcasting.

The forward is written for you: Y = A @ B with numpy's (and PyTorch's) matmul rules,

    A (..., n, k)  @  B (..., k, m)  ->  Y (..., n, m)

where the leading "batch" axes broadcast against each other, for example

    A (2, 1, 3, 4)  @  B (5, 4, 2)  ->  Y (2, 5, 3, 2)

Derive, for one pair of matrices first (Y[i, j] = sum_k A[i, k] * B[k, j]), dL/dA
(shape (n, k)) and dL/dB (shape (k, m)) from dL/dY (shape (n, m)), each as one matrix
product.

Then think about the broadcasting. A slice of A that was reused along a broadcast batch
axis took part in several products: what does that make its gradient? Your products
come out with the broadcast batch shape (2, 5, ...); the gradients must have A's own
shape (2, 1, 3, 4) and B's own shape (5, 4, 2).

Write ``MatMul.backward``: it receives gy = dL/dY, shape (..., n, m) with the broadcast
batch axes, and returns (dL/dA shaped like A, dL/dB shaped like B).
Tools: ``minidl.matmul`` (or ``@``); ``t.mT`` swaps the last two axes;
``minidl.sum_to(t, shape)`` sums t down to ``shape``. ``self.inputs`` is (A, B).

Check it:  python -m minidl.exercises check matmul
"""

from minidl import Function
from minidl.backend import get_array_module


class MatMul(Function):
    def forward(self, a, b):
        return get_array_module(a, b).matmul(a, b)

    def backward(self, gy):
        raise NotImplementedError(
            "MatMul.backward: return (dL/dA, dL/dB), shaped like A and like B "
            "(A, B = self.inputs; t.mT swaps the last two axes; minidl.sum_to sums down to a shape)"
        )


def matmul(a, b):
    """A (..., n, k) @ B (..., k, m); both need at least 2 dimensions here."""
    return MatMul()(a, b)
