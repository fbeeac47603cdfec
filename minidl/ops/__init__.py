"""Every differentiable op, grouped by family. Each family's module holds the
Function classes (forward on arrays, backward in Tensor ops, the derivative in the
docstring) and the functional forms re-exported here.

Names, arguments and results are PyTorch's, here, in the Tensor methods that call these
(``x.sum(dim=1, keepdim=True)``) and in ``minidl.nn.functional``: ``dim`` and ``keepdim``
(numpy's ``axis`` and ``keepdims`` are accepted as aliases, as PyTorch accepts them; giving
both is a TypeError), ``transpose(x, dim0, dim1)`` swaps two dims and ``permute(x, dims)``
reorders all, ``pad(x, pad)`` takes pairs from the last dim backwards, ``max(x, dim)`` is a
``(values, indices)`` pair while ``amax(x, dim)`` is the values, ``clamp(x, min=, max=)``.
"""

from minidl.ops.activation import leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from minidl.ops.arithmetic import (
    abs,
    add,
    cast,
    clamp,
    clip,
    div,
    exp,
    log,
    mul,
    neg,
    pow,
    sqrt,
    sub,
    to_device,
    where,
)
from minidl.ops.conv import conv1d, conv2d, fold, unfold
from minidl.ops.linalg import matmul
from minidl.ops.pool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    avg_pool1d,
    avg_pool2d,
    max_pool1d,
    max_pool2d,
)
from minidl.ops.reduce import amax, amin, argmax, argmin, max, mean, min, std, sum, var
from minidl.ops.recurrent import gru_cell, lstm_cell, recurrence, rnn_relu_cell, rnn_tanh_cell
from minidl.ops.shape import (
    broadcast_to,
    cat,
    chunk,
    flatten,
    getitem,
    pad,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    sum_to,
    swapaxes,
    transpose,
    unsqueeze,
)

__all__ = [
    "abs", "add", "amax", "amin", "argmax", "argmin", "broadcast_to", "cast", "cat", "chunk", "clamp", "clip",
    "div", "exp", "flatten", "getitem", "leaky_relu", "log", "log_softmax", "matmul", "max", "mean", "min", "mul",
    "neg", "pad", "permute", "pow", "relu", "reshape", "sigmoid", "softmax", "split", "sqrt", "squeeze", "stack",
    "std", "sub", "sum", "sum_to", "swapaxes", "tanh", "to_device", "transpose", "unsqueeze", "var", "where",
]
__all__ += ["gru_cell", "lstm_cell", "rnn_relu_cell", "rnn_tanh_cell"]  # ops.recurrence stays in ops
__all__ += ["conv1d", "conv2d", "fold", "unfold", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
            "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d"]  # convolution and pooling

from minidl.ops.inplace import index_put, replace_values  # noqa: E402  (used by the in-place Tensor methods)
from minidl.ops import methods  # noqa: E402,F401  (attaches the operators and methods to Tensor)
