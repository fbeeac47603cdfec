"""Elementwise arithmetic: + - * / neg, pow, exp, log, sqrt, abs, where, clamp (clip), casts.

Binary ops broadcast like numpy; their backward sums each gradient back to the
shape of its input with ``sum_to`` (the adjoint of broadcasting).
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.autograd import Function
from minidl.ops.shape import sum_to
from minidl.tensor import Tensor


class Add(Function):
    """y = a + b;  dy/da = 1,  dy/db = 1"""

    keeps_inputs = False  # backward reads only the inputs' shapes

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        a, b = self.inputs
        return sum_to(gy, a.shape), sum_to(gy, b.shape)


class Sub(Function):
    """y = a - b;  dy/da = 1,  dy/db = -1"""

    keeps_inputs = False  # backward reads only the inputs' shapes

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        a, b = self.inputs
        gb = sum_to(-gy, b.shape) if b.requires_grad else None
        return sum_to(gy, a.shape), gb


class Mul(Function):
    """y = a * b;  dy/da = b,  dy/db = a"""

    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(gy * b, a.shape) if a.requires_grad else None
        gb = sum_to(gy * a, b.shape) if b.requires_grad else None
        return ga, gb


class Div(Function):
    """y = a / b;  dy/da = 1 / b,  dy/db = -a / b**2"""

    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(gy / b, a.shape) if a.requires_grad else None
        gb = sum_to(-gy * a / (b * b), b.shape) if b.requires_grad else None
        return ga, gb


class Neg(Function):
    """y = -x;  dy/dx = -1"""

    keeps_inputs = False  # backward needs nothing but gy

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class PowScalar(Function):
    """y = x ** c for a constant number c;  dy/dx = c * x ** (c - 1)"""

    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, x):
        return x ** x.dtype.type(self.exponent) if x.dtype.kind == "f" else x**self.exponent

    def backward(self, gy):
        (x,) = self.inputs
        c = self.exponent
        if c == 0:  # y = 1 is constant (and x ** -1 would be inf at x = 0)
            return gy * 0
        return gy * c * x ** (c - 1)


class Pow(Function):
    """y = a ** b;  dy/da = b * a ** (b - 1),  dy/db = y * log(a)"""

    keeps_outputs = True  # dy/db reads y

    def forward(self, a, b):
        return a**b

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(gy * b * a ** (b - 1), a.shape) if a.requires_grad else None
        gb = sum_to(gy * self.outputs[0] * log(a), b.shape) if b.requires_grad else None
        return ga, gb


class Exp(Function):
    """y = exp(x);  dy/dx = y"""

    keeps_outputs = True  # backward reads y

    def forward(self, x):
        return backend.get_array_module(x).exp(x)

    def backward(self, gy):
        return gy * self.outputs[0]


class Log(Function):
    """y = log(x) (natural);  dy/dx = 1 / x"""

    def forward(self, x):
        return backend.get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.inputs[0]


class Sqrt(Function):
    """y = sqrt(x);  dy/dx = 1 / (2 y)"""

    keeps_outputs = True  # backward reads y

    def forward(self, x):
        return backend.get_array_module(x).sqrt(x)

    def backward(self, gy):
        return gy / (2 * self.outputs[0])


class Abs(Function):
    """y = |x|;  dy/dx = sign(x)  (0 at x = 0, as PyTorch)"""

    def forward(self, x):
        return backend.get_array_module(x).abs(x)

    def backward(self, gy):
        x = self.inputs[0]
        return gy * x.xp.sign(x.data)


class Where(Function):
    """y = a where condition else b;  dy/da = [condition],  dy/db = [not condition]

    The condition is a constant boolean array: it gets no gradient.
    """

    keeps_inputs = False  # backward reads only the inputs' shapes

    def __init__(self, condition):
        self.condition = condition

    def forward(self, a, b):
        return backend.get_array_module(a, b).where(self.condition, a, b)

    def backward(self, gy):
        a, b = self.inputs
        zero = gy.xp.zeros((), dtype=gy.dtype)
        ga = sum_to(where(self.condition, gy, zero), a.shape) if a.requires_grad else None
        gb = sum_to(where(self.condition, zero, gy), b.shape) if b.requires_grad else None
        return ga, gb


class Clip(Function):
    """y = min(max(x, low), high);  dy/dx = 1 where low <= x <= high, else 0 (PyTorch's clamp)"""

    def __init__(self, low, high):
        self.low, self.high = low, high

    def forward(self, x):
        return backend.get_array_module(x).clip(x, self.low, self.high)

    def backward(self, gy):
        x = self.inputs[0].data
        if self.high is None:  # one comparison for a one-sided clamp, not two and an &
            inside = x >= self.low
        elif self.low is None:
            inside = x <= self.high
        else:
            inside = (x >= self.low) & (x <= self.high)
        return gy * inside.astype(gy.dtype)


class Cast(Function):
    """y = x converted to another dtype;  dy/dx = 1 (the gradient is cast back)"""

    keeps_inputs = False  # backward needs only the source dtype

    def __init__(self, dtype):
        self.dtype = numpy.dtype(dtype)

    def forward(self, x):
        self.source_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return cast(gy, self.source_dtype)


class ToDevice(Function):
    """y = x copied to another device;  dy/dx = 1 (the gradient is copied back)"""

    keeps_inputs = False  # backward needs only the source device

    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.source_device = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return to_device(gy, self.source_device)


# --------------------------------------------------------------------------- #
# Functional forms
# --------------------------------------------------------------------------- #
def add(a, b):
    return Add()(a, b)


def sub(a, b):
    return Sub()(a, b)


def mul(a, b):
    return Mul()(a, b)


def div(a, b):
    return Div()(a, b)


def neg(x):
    return Neg()(x)


def pow(base, exponent):  # noqa: A001  (mirrors Python's pow and torch.pow)
    """base ** exponent; a Python-number exponent uses the simpler PowScalar."""
    if isinstance(exponent, (int, float)) and not isinstance(exponent, bool):
        return PowScalar(exponent)(base)
    return Pow()(base, exponent)


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)


def abs(x):  # noqa: A001
    return Abs()(x)


def where(condition, a, b):
    """Elementwise choice: a where ``condition`` is true, else b (a boolean tensor or array)."""
    condition = condition.data if isinstance(condition, Tensor) else condition
    if getattr(condition, "dtype", None) != numpy.bool_:
        raise TypeError(f"where: expected a boolean tensor or array as condition, got {condition!r:.80}")
    like = a if isinstance(a, Tensor) else b
    if isinstance(like, Tensor):
        condition = backend.to_device(condition, like.device)
    return Where(condition)(a, b)


def clamp(x, min=None, max=None):  # noqa: A002  (PyTorch's names)
    """y = min(max(x, min), max): x limited to [min, max]; either bound may be None."""
    if min is None and max is None:
        raise ValueError("clamp: expected at least one of min= and max=, got neither")
    return Clip(min, max)(x)


clip = clamp  # PyTorch's alias


def cast(x, dtype):
    return Cast(dtype)(x)


def to_device(x, device):
    return ToDevice(backend.Device(device))(x)
