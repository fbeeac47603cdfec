"""Activations: tanh, sigmoid, relu, leaky_relu, softmax, log_softmax.

softmax and log_softmax take PyTorch's ``dim`` (numpy's ``axis`` accepted too); ``minidl.nn.functional``
re-exports them (``F.softmax(x, dim=1)``).
"""

from __future__ import annotations

from minidl import amp, backend, checks, kernels
from minidl.autograd import Function
from minidl.ops.reduce import sum as sum_
from minidl.ops.shape import dim_aliases


class Tanh(Function):
    """y = tanh(x);  dy/dx = 1 - y**2"""

    keeps_outputs = True  # backward reads y

    def forward(self, x):
        return backend.get_array_module(x).tanh(x)

    def backward(self, gy):
        y = self.outputs[0]
        return gy * (1 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x));  dy/dx = y (1 - y)

    Computed as 1/(1+e) for x >= 0 and e/(1+e) for x < 0 with e = exp(-|x|),
    so exp never overflows, even for |x| > 100.
    """

    keeps_outputs = True  # backward reads y

    def forward(self, x):
        xp = backend.get_array_module(x)
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    def backward(self, gy):
        y = self.outputs[0]
        return gy * y * (1 - y)


class ReLU(Function):
    """y = max(x, 0);  dy/dx = 1 where x > 0, else 0"""

    def forward(self, x):
        return backend.get_array_module(x).maximum(x, 0)

    def backward(self, gy):
        return ReLUBackward(self.inputs[0].data)(gy)


class ReLUBackward(Function):
    """ReLU's backward as an op of gy:  gx = gy where x > 0, else 0   (x fixed);
    it is linear in gy, so its own backward is itself:  d/dgy = ggx where x > 0, else 0.

    One pass (the backend table's relu_backward: a kernel on a GPU) instead of a comparison
    and a multiply."""

    keeps_inputs = False  # backward needs only the mask's x

    def __init__(self, x):
        self.x = x

    def forward(self, gy):
        return kernels.backend_for(gy).relu_backward(gy, self.x)

    def backward(self, ggx):
        return ReLUBackward(self.x)(ggx)


class LeakyReLU(Function):
    """y = x if x > 0 else slope * x;  dy/dx = 1 where x > 0, else slope"""

    def __init__(self, slope):
        self.slope = slope

    def forward(self, x):
        return backend.get_array_module(x).where(x > 0, x, x * x.dtype.type(self.slope))

    def backward(self, gy):
        x = self.inputs[0]
        one, slope = gy.dtype.type(1), gy.dtype.type(self.slope)  # scalars of gy's dtype: no float64 array
        return gy * x.xp.where(x.data > 0, one, slope)


class Softmax(Function):
    """y_i = exp(x_i) / sum_j exp(x_j) along ``dim``;  gx = y * (gy - sum(gy * y))

    exp(x - max(x)) keeps the exponentials in range (the max cancels in the ratio).
    """

    keeps_outputs = True  # backward reads y

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        return e / e.sum(axis=self.axis, keepdims=True)

    def backward(self, gy):
        y = self.outputs[0]
        return y * (gy - sum_(gy * y, self.axis, keepdims=True))


class LogSoftmax(Function):
    """y_i = x_i - log sum_j exp(x_j) along ``dim``;  gx = gy - softmax(x) * sum(gy)

    log-sum-exp is computed as m + log sum exp(x - m) with m = max(x): no overflow for
    logits of +-1e4 and no log(0) for very negative ones.
    """

    keeps_outputs = True  # backward reads y

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))

    def backward(self, gy):
        y = self.outputs[0]
        return gy - y.exp() * sum_(gy, self.axis, keepdims=True)


def tanh(x):
    return Tanh()(x)


def sigmoid(x):
    return Sigmoid()(x)


def relu(x):
    return ReLU()(x)


def leaky_relu(x, negative_slope=0.01):
    return LeakyReLU(negative_slope)(x)


@dim_aliases
def softmax(x, dim=-1):
    """y_i = exp(x_i) / sum_j exp(x_j) along ``dim`` (the last one unless told)."""
    x = amp.autocast_inputs(x, to="float32")
    return Softmax(checks.dim(dim, x.ndim, "softmax"))(x)


@dim_aliases
def log_softmax(x, dim=-1):
    """y_i = x_i - log sum_j exp(x_j) along ``dim`` (the last one unless told)."""
    x = amp.autocast_inputs(x, to="float32")
    return LogSoftmax(checks.dim(dim, x.ndim, "log_softmax"))(x)
