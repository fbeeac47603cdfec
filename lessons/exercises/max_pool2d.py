"""Exercise: the backward of 2-D max pooling.

The forward is written for you (PyTorch's F.max_pool2d without padding):

    x (N, C, H, W)  ->  y (N, C, OH, OW),    OH = (H - K) // stride + 1, likewise OW
    y[n, c, i, j] = max of the K x K window  x[n, c, i*stride : i*stride + K, j*stride : j*stride + K]

forward also records which of the K*K window positions won, in ``self.argmax``
(N, C, OH, OW): the number p*K + q for the winner at offset (p, q) inside its window.

Derive the derivative of max(a, b, ...) by each of its arguments, and from it where
each gy[n, c, i, j] must go in dx. Think about windows that overlap (stride < K): one
element of x can then win several windows.

Write ``MaxPool2d.backward``: gy (N, C, OH, OW) -> dx (N, C, H, W), a Tensor.
Work on arrays (``gy.data``, ``xp = get_array_module(gy.data)``) and wrap the result
with ``Tensor(dx)``. A Python loop over the K*K offsets (p, q) is fine (forward has the
same loop); a loop over samples or pixels is not.

Check it:  python -m minidl.exercises check max_pool2d
"""

from minidl import Function, Tensor  # noqa: F401  (Tensor: to wrap the gradient you compute)
from minidl.backend import get_array_module


class MaxPool2d(Function):
    def __init__(self, kernel_size, stride):
        self.k, self.stride = kernel_size, stride

    def forward(self, x):
        xp = get_array_module(x)
        k, s = self.k, self.stride
        oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
        windows = xp.stack(  # (N, C, OH, OW, K*K): window position p*K + q last
            [x[:, :, p : p + s * oh : s, q : q + s * ow : s] for p in range(k) for q in range(k)], axis=-1
        )
        self.argmax = windows.argmax(axis=-1)
        return windows.max(axis=-1)

    def backward(self, gy):
        raise NotImplementedError(
            "MaxPool2d.backward: return Tensor(dx), dx shaped like x (N, C, H, W): "
            "send each gy[n, c, i, j] where your derivation says (self.argmax names each window's winner)"
        )


def max_pool2d(x, kernel_size, stride=None):
    return MaxPool2d(kernel_size, kernel_size if stride is None else stride)(x)
