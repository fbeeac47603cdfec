"""Solution: the backward of softmax cross-entropy.

log p[n, t] = z[n, t] - log sum_k exp(z[n, k]), so for one sample

    d(-log p[n, t]) / dz[n, c] = -[c == t] + exp(z[n, c]) / sum_k exp(z[n, k]) = p[n, c] - [c == t]

and the mean over N samples divides by N. The subtraction "prediction minus truth" is
why softmax and cross-entropy are fused into one op: the gradient is simple and exact.
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
        logits, target = self.inputs
        xp = logits.xp
        n = logits.shape[0]
        onehot = xp.zeros_like(self.p)
        onehot[xp.arange(n), target.data] = 1
        return gy * (self.p - onehot) / n, None


def softmax_cross_entropy(logits, target):
    return SoftmaxCrossEntropy()(logits, target)
