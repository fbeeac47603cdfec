"""Argument checks shared by layers, ops and optimizers, with one message style:

    f"{op}: expected {what}, got {value!r}"

so every error a user can cause names the op (or layer), what it wanted and what came,
and a layer's code reads math first: one line per checked argument. Each check returns
the value normalised (a Python int, a tuple of ints, a float), so callers store that.

Exception types follow Python and PyTorch: a value of the wrong kind for a float
argument or a tensor input is a ``TypeError``; a value out of range a ``ValueError``.
Integer sizes raise ``ValueError`` for both (as minidl's layers always have).

This module sits at the bottom of the layers (numpy only): anything may import it.
"""

from __future__ import annotations

import math

import numpy

_INTS = (int, numpy.integer)
_REALS = (int, float, numpy.integer, numpy.floating)


def plain(value):
    """``value`` with numpy scalars made Python ones, inside tuples and lists too, so that
    messages print ``(1, 2)`` rather than ``(np.int64(1), np.int64(2))``."""
    if isinstance(value, (tuple, list)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, (numpy.generic,)) and value.ndim == 0:
        return value.item()
    return value


def fail(op: str, what: str, value, error=ValueError):
    """Raise ``error`` in the one message style; ``value`` is shown with repr."""
    raise error(f"{op}: expected {what}, got {plain(value)!r}")


def is_real(value) -> bool:
    """An int or float (numpy ones too), not a bool."""
    return isinstance(value, _REALS) and not isinstance(value, bool)


def is_int(value) -> bool:
    """An int or a numpy int, not a bool."""
    return isinstance(value, _INTS) and not isinstance(value, bool)


# --------------------------------------------------------------------------- #
# Integers and tuples of integers
# --------------------------------------------------------------------------- #
def integer(value, op: str, name: str, minimum: int | None = None) -> int:
    """``value`` as an int (numpy ints accepted, bools not), at least ``minimum``."""
    if not is_int(value) or (minimum is not None and value < minimum):
        wanted = {None: "an int", 0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
        fail(op, f"{name} to be {wanted}", value)
    return int(value)


def positive_int(value, op: str, name: str) -> int:
    """An int >= 1 (a size, a count)."""
    return integer(value, op, name, minimum=1)


def non_negative_int(value, op: str, name: str) -> int:
    """An int >= 0."""
    return integer(value, op, name, minimum=0)


def int_tuple(value, n: int, op: str, name: str, minimum: int = 1) -> tuple:
    """An int or a sequence of ``n`` ints, each >= ``minimum``, as a tuple of ``n`` ints:
    ``int_tuple(3, 2, ...) == (3, 3)`` (PyTorch's kernel_size=3 meaning 3x3)."""
    values = (value,) * n if is_int(value) else value
    try:
        values = tuple(values)
    except TypeError:
        values = ()
    if len(values) != n or not all(is_int(v) and v >= minimum for v in values):
        fail(op, f"{name} to be an int >= {minimum} or a tuple of {n} such ints", value)
    return tuple(int(v) for v in values)


def dim(value, ndim: int, op: str, name: str = "dim") -> int:
    """An axis of a tensor with ``ndim`` axes (negative counts from the end), as 0..ndim-1.
    A 0-d tensor accepts dim 0 and -1, as in PyTorch."""
    size = max(ndim, 1)
    if not is_int(value) or not -size <= value < size:
        error = ValueError if is_int(value) else TypeError
        fail(op, f"{name} in [{-size}, {size - 1}] for a {ndim}-d input", value, error)
    return int(value) % size


# --------------------------------------------------------------------------- #
# Floats and choices
# --------------------------------------------------------------------------- #
def real(value, op: str, name: str, minimum: float | None = None, maximum: float | None = None) -> float:
    """A finite real number in [minimum, maximum] as a float: a str, a list or a bool is a
    TypeError; NaN, infinity or a value out of range a ValueError."""
    low = "-inf" if minimum is None else f"{minimum:g}"
    high = "inf" if maximum is None else f"{maximum:g}"
    what = f"{name} to be a finite number in [{low}, {high}]"
    if not isinstance(value, _REALS) or isinstance(value, bool):
        fail(op, what, value, TypeError)
    too_low, too_high = minimum is not None and value < minimum, maximum is not None and value > maximum
    if not math.isfinite(value) or too_low or too_high:
        fail(op, what, value)
    return float(value)


def non_negative_float(value, op: str, name: str) -> float:
    """A finite float >= 0 (a learning rate, a weight decay, an epsilon)."""
    return real(value, op, name, minimum=0.0)


def positive_float(value, op: str, name: str) -> float:
    """A finite float > 0."""
    value = real(value, op, name)
    if not value > 0:
        fail(op, f"{name} to be a finite number > 0", value)
    return value


def probability(value, op: str, name: str = "p") -> float:
    """A float in [0, 1]."""
    return real(value, op, name, minimum=0.0, maximum=1.0)


def choice(value, allowed, op: str, name: str):
    """One of the strings (or values) in ``allowed``."""
    if not any(type(value) is type(a) and value == a for a in allowed):
        fail(op, f"{name} to be one of {', '.join(repr(a) for a in allowed)}", value)
    return value


# --------------------------------------------------------------------------- #
# Tensors: kind and dtype
# --------------------------------------------------------------------------- #
def _hint(value) -> str:
    """What a tuple handed to a one-tensor layer most likely is, and what to do."""
    if len(value) == 2 and isinstance(value[1], (tuple, list)) and len(value[1]) == 2:
        return " (an LSTM returns (output, (h, c)): take output)"
    if len(value) == 2:
        return " (an RNN or GRU returns (output, h_n): take output)"
    return ""


def tensor_input(value, op: str, what: str = "a Tensor as input"):
    """Refuse a tuple, a list or a non-array as the one input of ``op``; return ``value``."""
    if isinstance(value, (tuple, list)):
        kind = type(value).__name__
        raise TypeError(f"{op}: expected {what}, got a {kind} of {len(value)}{_hint(value)}")
    if not (hasattr(value, "shape") and hasattr(value, "ndim") and hasattr(value, "dtype")):
        raise TypeError(f"{op}: expected {what}, got {type(value).__name__} {plain(value)!r}")
    return value


def floating(x, op: str, what: str = "a floating-point input"):
    """Refuse integer or boolean data where only floats make sense (a TypeError)."""
    if numpy.dtype(x.dtype).kind != "f":
        raise TypeError(f"{op}: expected {what}, got dtype {x.dtype}")
    return x


def same_dtype(x, other, op: str, name: str) -> None:
    """The input ``x`` and a parameter ``other`` (called ``name``) share a dtype, as PyTorch
    requires for matmul and conv (no silent promotion of float32 weights to float64)."""
    if other is not None and other.dtype != x.dtype:
        raise TypeError(
            f"{op}: expected an input of dtype {other.dtype} like the {name}, got dtype {x.dtype}; "
            f"convert one of them (e.g. x.float() or model.double())"
        )
