"""Activation layers: each calls its function in minidl.nn.functional (which holds no state)."""

from __future__ import annotations

from minidl import checks
from minidl.nn import functional as F
from minidl.nn.module import Module


class ReLU(Module):
    """y = max(x, 0). ``inplace`` is accepted for PyTorch compatibility; the result is always a new tensor."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        checks.tensor_input(input, type(self).__name__)
        return F.relu(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """y = x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = checks.real(negative_slope, "LeakyReLU", "negative_slope")
        self.inplace = inplace

    def forward(self, input):
        checks.tensor_input(input, type(self).__name__)
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Tanh(Module):
    """y = tanh(x)."""

    def forward(self, input):
        checks.tensor_input(input, type(self).__name__)
        return F.tanh(input)


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x))."""

    def forward(self, input):
        checks.tensor_input(input, type(self).__name__)
        return F.sigmoid(input)


class SiLU(Module):
    """y = x * sigmoid(x)."""

    def forward(self, input):
        checks.tensor_input(input, type(self).__name__)
        return F.silu(input)


class _AlongDim(Module):
    """A function applied along one axis ``dim``, which must be given (PyTorch would guess it, with a warning)."""

    def __init__(self, dim=None):
        super().__init__()
        if dim is None:
            raise ValueError(f"{type(self).__name__}: pass dim= explicitly (e.g. dim=1 for (N, C) logits)")
        self.dim = dim

    def _check(self, input):
        name = type(self).__name__
        checks.tensor_input(input, name)
        checks.dim(self.dim, input.ndim, name)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_AlongDim):
    """y = exp(x) / sum(exp(x)) along ``dim``."""

    def forward(self, input):
        self._check(input)
        return F.softmax(input, self.dim)


class LogSoftmax(_AlongDim):
    """y = log softmax(x) along ``dim``."""

    def forward(self, input):
        self._check(input)
        return F.log_softmax(input, self.dim)
