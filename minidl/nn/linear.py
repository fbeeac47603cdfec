"""Identity, Linear and Flatten layers."""

from __future__ import annotations

import numpy

from minidl import amp, checks
from minidl.creation import zeros
from minidl.nn import init
from minidl.nn.module import Module, Parameter
from minidl.ops import linalg
from minidl.ops.shape import flatten


class Identity(Module):
    """y = x (a placeholder, e.g. where a block may or may not have a projection)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features) and b (out_features,),
    for x of shape (*, in_features).

    Initialised as PyTorch does: W and b ~ U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features = checks.non_negative_int(in_features, "Linear", "in_features")
        self.out_features = checks.non_negative_int(out_features, "Linear", "out_features")
        dtype = numpy.float32 if dtype is None else dtype
        self.weight = Parameter(zeros(self.out_features, self.in_features, dtype=dtype, device=device))
        bias = Parameter(zeros(self.out_features, dtype=dtype, device=device)) if bias else None
        self.register_parameter("bias", bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_linear_(self.weight, self.bias)

    def forward(self, input):
        checks.tensor_input(input, "Linear")
        if input.ndim == 0 or input.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear: expected input of shape (*, {self.in_features}) (in_features={self.in_features}), "
                f"got shape {input.shape}"
            )
        if not amp.is_autocast_enabled():  # under autocast linalg.linear casts both to float16
            checks.same_dtype(input, self.weight, "Linear", "weight")
        return linalg.linear(input, self.weight, self.bias)  # F.linear's math in one op (fewer launches)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Merge axes start_dim..end_dim into one; by default (N, *) -> (N, prod(*))."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        checks.tensor_input(input, "Flatten")
        if input.ndim and not (-input.ndim <= self.start_dim < input.ndim and -input.ndim <= self.end_dim < input.ndim):
            raise ValueError(
                f"Flatten: start_dim={self.start_dim}, end_dim={self.end_dim} are out of range for an input "
                f"of shape {input.shape}"
            )
        return flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
