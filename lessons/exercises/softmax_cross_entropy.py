"""Exercise: the backward of softmax cross-entropy (PyTorch's F.cross_entropy, mean over the batch).

The forward is written for you. For logits z and integer class targets t:

    p[n, c] = exp(z[n, c]) / sum_k exp(z[n, k])          softmax along the classes
    L = -(1/N) * sum_n log p[n, t[n]]                     one number: the mean loss

Derive, on paper first, dL/dz[n, c] for every n and c, and write it through p (which
forward already computed) and the targets.

Then write ``SoftmaxCrossEntropy.backward``. It receives gy = dLoss/dL (a scalar Tensor,
usually 1) and returns one gradient per input: gy * dL/dz for the logits, and None for
the targets (integers have no gradient).

Shapes: z (N, C) float;  t (N,) integers in [0, C);  L and gy ();  dL/dz (N, C).
forward kept p for you in ``self.p`` (an array of shape (N, C)); ``self.inputs`` is (z, t).

Check it:  python -m minidl.exercises check softmax_cross_entropy
"""

from minidl import Function
from minidl.backend import get_array_module


class SoftmaxCrossEntropy(Function):
    def forward(self, logits, target):
        xp = get_array_module(logits)
        shifted = logits - logits.max(axis=1, keepdims=True)  # exp never overflows
        log_p = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        self.p = xp.exp(log_p)
        n = logits.shape[0]
        return xp.asarray(-log_p[xp.arange(n), target].sum() / n, dtype=logits.dtype)

    def backward(self, gy):
        raise NotImplementedError(
            "SoftmaxCrossEntropy.backward: return (gy * dL/dz, None): "
            "the gradient for the logits, shape (N, C), that you derived, and None for the targets"
        )


def softmax_cross_entropy(logits, target):
    return SoftmaxCrossEntropy()(logits, target)
