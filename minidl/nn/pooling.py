"""Pooling layers: MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool1d/2d, AdaptiveMaxPool2d.

Each holds its arguments and calls the functional form (the math is in minidl/ops/pool.py).
Names, argument orders and defaults are PyTorch's; ``stride`` defaults to ``kernel_size``.
"""

from __future__ import annotations

from minidl import checks
from minidl.nn import functional as F
from minidl.nn.module import Module


class _MaxPoolNd(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class MaxPool2d(_MaxPoolNd):
    """y[n, c, p, q] = max over the window (i, j) of x_pad[n, c, p*s + i*d, q*s + j*d]
    (padding is -inf); the gradient goes to each window's first maximum."""

    def forward(self, input):
        checks.tensor_input(input, type(self).__name__)
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)


class MaxPool1d(_MaxPoolNd):
    """y[n, c, t] = max over the window i of x_pad[n, c, t*s + i*d]."""

    def forward(self, input):
        checks.tensor_input(input, type(self).__name__)
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)


class AvgPool2d(Module):
    """y[n, c, p, q] = mean over the window (i, j) of x_pad[n, c, p*s + i, q*s + j]
    (zero padding counted unless count_include_pad=False)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input):
        checks.tensor_input(input, type(self).__name__)
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(Module):
    """y[n, c, t] = mean over the window i of x_pad[n, c, t*s + i]."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.ceil_mode, self.count_include_pad = padding, ceil_mode, count_include_pad

    def forward(self, input):
        checks.tensor_input(input, type(self).__name__)
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _AdaptivePool(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(_AdaptivePool):
    """Average over PyTorch's adaptive bins so the output is (N, C, *output_size);
    AdaptiveAvgPool2d(1) is global average pooling."""

    def forward(self, input):
        checks.tensor_input(input, type(self).__name__)
        return F.adaptive_avg_pool2d(input, self.output_size)


class AdaptiveAvgPool1d(_AdaptivePool):
    """Average over PyTorch's adaptive bins so the output is (N, C, output_size)."""

    def forward(self, input):
        checks.tensor_input(input, type(self).__name__)
        return F.adaptive_avg_pool1d(input, self.output_size)


class AdaptiveMaxPool2d(_AdaptivePool):
    """Max over PyTorch's adaptive bins so the output is (N, C, *output_size);
    AdaptiveMaxPool2d(1) is global max pooling."""

    def forward(self, input):
        checks.tensor_input(input, type(self).__name__)
        return F.adaptive_max_pool2d(input, self.output_size)
