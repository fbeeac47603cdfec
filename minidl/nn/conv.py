"""Conv1d and Conv2d layers: a weight of PyTorch's shape (out, in/groups, *kernel), a bias,
and F.conv1d / F.conv2d (im2col and one matmul, see minidl/ops/conv.py)."""

from __future__ import annotations

import numpy

from minidl import amp, checks
from minidl.creation import zeros
from minidl.nn import functional as F
from minidl.nn import init
from minidl.nn.module import Module, Parameter
from minidl.ops.conv import check_input


class _ConvNd(Module):
    """What Conv1d and Conv2d share: checked arguments, parameters, PyTorch's initialisation."""

    spatial_dims = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 device, dtype):
        super().__init__()
        name, n = type(self).__name__, self.spatial_dims
        in_channels = checks.positive_int(in_channels, name, "in_channels")
        out_channels = checks.positive_int(out_channels, name, "out_channels")
        groups = checks.positive_int(groups, name, "groups")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
                f"divisible by groups ({groups})"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = checks.int_tuple(kernel_size, n, name, "kernel_size")
        self.stride = checks.int_tuple(stride, n, name, "stride")
        self.dilation = checks.int_tuple(dilation, n, name, "dilation")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                checks.fail(name, "padding to be an int, a tuple, 'valid' or 'same'", padding)
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' needs stride 1 (as in PyTorch), got stride {self.stride}")
            self.padding = padding
        else:
            self.padding = checks.int_tuple(padding, n, name, "padding", minimum=0)

        dtype = numpy.float32 if dtype is None else dtype
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(zeros(*shape, dtype=dtype, device=device))
        bias = Parameter(zeros(self.out_channels, dtype=dtype, device=device)) if bias else None
        self.register_parameter("bias", bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: weight ~ kaiming_uniform_(a=sqrt(5)), which is U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        with fan_in = in_channels/groups * prod(kernel_size); bias ~ the same uniform."""
        init.default_linear_(self.weight, self.bias)

    def _check_input(self, input):
        name, n = type(self).__name__, self.spatial_dims
        check_input(input, n, name)
        channels = input.shape[-n - 1]
        if channels != self.in_channels:
            raise ValueError(
                f"{name}: expected an input with {self.in_channels} channels (in_channels={self.in_channels}), "
                f"got {channels} channels in shape {tuple(input.shape)}"
            )
        if not amp.is_autocast_enabled():  # under autocast the convolution casts both to float16
            checks.same_dtype(input, self.weight, name, "weight")

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self.spatial_dims:
            text += f", padding={self.padding!r}"
        if self.dilation != (1,) * self.spatial_dims:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv2d(_ConvNd):
    """y[n, o] = b[o] + sum over input channels c (of o's group) and kernel offsets (i, j) of
    W[o, c, i, j] * x_pad[n, c, p*s + i*d, q*s + j*d], for input (N, C_in, H, W) or (C_in, H, W).

    Weight (out_channels, in_channels/groups, KH, KW), bias (out_channels,); padding an int,
    a pair, 'valid' or 'same' (stride 1); initialised as in PyTorch.
    """

    spatial_dims = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         device, dtype)

    def forward(self, input):
        self._check_input(input)
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """y[n, o, t] = b[o] + sum over input channels c (of o's group) and kernel offsets i of
    W[o, c, i] * x_pad[n, c, t*s + i*d], for input (N, C_in, L) or (C_in, L).

    Weight (out_channels, in_channels/groups, K), bias (out_channels,); padding an int,
    'valid' or 'same' (stride 1); initialised as in PyTorch.
    """

    spatial_dims = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         device, dtype)

    def forward(self, input):
        self._check_input(input)
        return F.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
