"""Weight initialisation, with PyTorch's names and formulas (``torch.nn.init``).

Every function fills a tensor (usually a Parameter) in place, records nothing for
autograd, and returns it. Random values come from ``generator`` when given (a
``minidl.Generator``, or a numpy or cupy generator; on any device, the values are moved
to the tensor's), else from the default generator of the tensor's device, so
``minidl.manual_seed`` makes them repeatable.

Why the scales? A layer y = W x with fan_in inputs of variance 1 gives outputs of
variance fan_in * Var(W). Keeping that near 1 from layer to layer needs
Var(W) = gain**2 / fan_in (Kaiming/He: forward signal) or
Var(W) = gain**2 * 2 / (fan_in + fan_out) (Xavier/Glorot: a compromise with the
backward signal), where the gain undoes the shrinking of the nonlinearity that
follows (sqrt(2) for ReLU, which zeroes half its inputs). A uniform U(-b, b) has
variance b**2 / 3, so b = sqrt(3) * std.
"""

from __future__ import annotations

import math

import numpy

from minidl import backend
from minidl.autograd import no_grad
from minidl.random import default_generator


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The factor that keeps the variance of activations steady through ``nonlinearity``.

    linear, conv*, sigmoid: 1;  tanh: 5/3;  relu: sqrt(2);
    leaky_relu: sqrt(2 / (1 + slope**2)) (slope ``param``, default 0.01);  selu: 3/4.
    """
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"calculate_gain: negative_slope {slope!r} is not a number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def calculate_fan_in_and_fan_out(tensor) -> tuple:
    """(fan_in, fan_out) of a weight shaped (out, in, *kernel), as PyTorch computes them:
    fan_in = in * prod(kernel), fan_out = out * prod(kernel)."""
    if tensor.ndim < 2:
        raise ValueError(
            f"init: fan in and fan out cannot be computed for a tensor with fewer than 2 dimensions "
            f"(got shape {tuple(tensor.shape)})"
        )
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


_calculate_fan_in_and_fan_out = calculate_fan_in_and_fan_out  # PyTorch's (private) spelling


def _fan(tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


# --------------------------------------------------------------------------- #
# Filling in place
# --------------------------------------------------------------------------- #
def _fill(tensor, values):
    """Write ``values`` (any array module, any float dtype) into ``tensor`` in place."""
    with no_grad():
        tensor.data[...] = backend.to_device(values, tensor.device).astype(tensor.dtype, copy=False)
    return tensor


def _generator(tensor, generator):
    return default_generator(tensor.device) if generator is None else generator


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    """Fill with samples of U(a, b)."""
    if not a <= b:
        raise ValueError(f"uniform_: expected a <= b, got a={a}, b={b}")
    u = _generator(tensor, generator).random(tuple(tensor.shape), dtype=numpy.float64)
    return _fill(tensor, a + (b - a) * u)


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    """Fill with samples of N(mean, std**2)."""
    if std < 0:
        raise ValueError(f"normal_: std must be non-negative, got {std}")
    z = _generator(tensor, generator).standard_normal(tuple(tensor.shape), dtype=numpy.float64)
    return _fill(tensor, mean + std * z)


def constant_(tensor, val: float):
    """Fill with ``val``."""
    with no_grad():
        tensor.data[...] = val
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))  (std = gain * sqrt(2 / (fan_in + fan_out)))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out)) if fan_in + fan_out else 0.0
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    """N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out)) if fan_in + fan_out else 0.0
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor, a, mode, nonlinearity) -> float:
    fan = _fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0


def kaiming_uniform_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """U(-b, b) with b = sqrt(3) * gain / sqrt(fan)  (``a``: the leaky_relu slope used by the gain).

    PyTorch's Linear and Conv defaults are kaiming_uniform_(w, a=sqrt(5)), which works out
    to b = 1 / sqrt(fan_in).
    """
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """N(0, std**2) with std = gain / sqrt(fan)."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)


# --------------------------------------------------------------------------- #
# PyTorch's per-layer defaults, shared by every layer that uses them
# --------------------------------------------------------------------------- #
def default_linear_(weight, bias=None, generator=None):
    """What PyTorch's Linear and Conv layers do in ``reset_parameters``:
    weight ~ kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (fan_in of the weight)."""
    kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    if bias is not None:
        fan_in, _ = calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound, generator)
    return weight
