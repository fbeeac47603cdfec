"""minidl.checks: each check returns the normalised value or raises in the one style
"{op}: expected {what}, got {value!r}"."""

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import checks, nn


@given(st.integers(1, 10**6))
def test_positive_int_returns_a_python_int(n):
    for value in (n, np.int64(n), np.int32(min(n, 2**31 - 1))):
        out = checks.positive_int(value, "Op", "size")
        assert type(out) is int and out == int(value)


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "3", None])
def test_positive_int_refuses_with_op_what_and_value(bad):
    with pytest.raises(ValueError, match=rf"^Op: expected size to be a positive int, got {re.escape(repr(bad))}$"):
        checks.positive_int(bad, "Op", "size")


def test_non_negative_int_and_minimum():
    assert checks.non_negative_int(0, "Op", "n") == 0
    with pytest.raises(ValueError, match="Op: expected n to be a non-negative int, got -1"):
        checks.non_negative_int(-1, "Op", "n")
    with pytest.raises(ValueError, match="Op: expected n to be an int >= 3, got 2"):
        checks.integer(2, "Op", "n", minimum=3)


@given(st.integers(1, 9), st.integers(1, 9))
def test_int_tuple_expands_an_int_and_keeps_a_pair(a, b):
    assert checks.int_tuple(a, 2, "conv", "kernel_size") == (a, a)
    assert checks.int_tuple([np.int64(a), b], 2, "conv", "kernel_size") == (a, b)
    assert checks.int_tuple(a, 1, "conv", "kernel_size") == (a,)


@pytest.mark.parametrize("bad", [0, (3,), (3, 3, 3), (3, 0), (3, 1.0), "33", None])
def test_int_tuple_refuses(bad):
    with pytest.raises(ValueError, match=r"conv: expected kernel_size to be an int >= 1 or a tuple of 2 such ints"):
        checks.int_tuple(bad, 2, "conv", "kernel_size")


def test_plain_makes_numpy_scalars_python_ones_for_messages():
    assert repr(checks.plain((np.int64(1), np.int32(2)))) == "(1, 2)"
    assert repr(checks.plain([np.float64(0.5)])) == "[0.5]"
    with pytest.raises(ValueError, match=r"got \(1, 0\)$"):
        checks.int_tuple((np.int64(1), np.int64(0)), 2, "conv", "stride")


def test_dim_normalises_and_refuses():
    assert checks.dim(-1, 3, "softmax") == 2 and checks.dim(np.int64(1), 3, "softmax") == 1
    assert checks.dim(0, 0, "softmax") == 0 and checks.dim(-1, 0, "softmax") == 0  # a 0-d tensor, as PyTorch
    with pytest.raises(ValueError, match=r"softmax: expected dim in \[-3, 2\] for a 3-d input, got 3"):
        checks.dim(3, 3, "softmax")
    with pytest.raises(TypeError, match="softmax: expected dim .*, got 'x'"):
        checks.dim("x", 3, "softmax")


@given(st.floats(0, 1))
def test_probability_accepts_the_closed_interval(p):
    assert checks.probability(p, "Dropout") == p


@pytest.mark.parametrize("bad, error", [(1.5, ValueError), (-0.1, ValueError), (math.nan, ValueError),
                                        ("0.5", TypeError), ([0.5], TypeError), (True, TypeError)])
def test_probability_refuses(bad, error):
    with pytest.raises(error, match=r"Dropout: expected p to be a finite number in \[0, 1\], got"):
        checks.probability(bad, "Dropout")


def test_floats():
    assert checks.non_negative_float(np.float32(0.5), "SGD", "lr") == 0.5
    assert type(checks.non_negative_float(1, "SGD", "lr")) is float
    with pytest.raises(ValueError, match=r"SGD: expected lr to be a finite number in \[0, inf\], got inf"):
        checks.non_negative_float(math.inf, "SGD", "lr")
    with pytest.raises(ValueError, match="Op: expected eps to be a finite number > 0, got 0.0"):
        checks.positive_float(0.0, "Op", "eps")
    with pytest.raises(TypeError, match="Op: expected eps to be a finite number .*, got '1e-8'"):
        checks.positive_float("1e-8", "Op", "eps")


def test_choice():
    assert checks.choice("sum", ("none", "mean", "sum"), "mse_loss", "reduction") == "sum"
    with pytest.raises(ValueError, match="mse_loss: expected reduction to be one of 'none', 'mean', 'sum', got 'av"):
        checks.choice("avg", ("none", "mean", "sum"), "mse_loss", "reduction")
    with pytest.raises(ValueError, match="got 1"):
        checks.choice(1, ("1",), "op", "x")  # the string '1' only, not the int


def test_tensor_input_names_what_came_and_hints_at_the_recurrent_tuple():
    x = minidl.zeros(2, 3)
    assert checks.tensor_input(x, "Linear") is x
    with pytest.raises(TypeError, match=r"^Linear: expected a Tensor as input, got a tuple of 2 \(an LSTM returns "
                                        r"\(output, \(h, c\)\): take output\)$"):
        checks.tensor_input((x, (x, x)), "Linear")
    with pytest.raises(TypeError, match=r"an RNN or GRU returns \(output, h_n\): take output"):
        checks.tensor_input((x, x), "Linear")
    with pytest.raises(TypeError, match=r"^Linear: expected a Tensor as input, got a list of 3$"):
        checks.tensor_input([x, x, x], "Linear")
    with pytest.raises(TypeError, match=r"^Linear: expected a Tensor as input, got float 1.0$"):
        checks.tensor_input(1.0, "Linear")


def test_floating_and_same_dtype():
    with pytest.raises(TypeError, match="max_pool2d: expected a floating-point input, got dtype int64"):
        checks.floating(minidl.tensor([1, 2]), "max_pool2d")
    w = minidl.zeros(2, dtype=np.float32)
    checks.same_dtype(minidl.zeros(2, dtype=np.float32), w, "linear", "weight")
    checks.same_dtype(minidl.zeros(2, dtype=np.float64), None, "linear", "bias")  # no bias: nothing to compare
    with pytest.raises(TypeError, match="linear: expected an input of dtype float32 like the weight, got dtype float6"):
        checks.same_dtype(minidl.zeros(2, dtype=np.float64), w, "linear", "weight")


# --------------------------------------------------------------------------- #
# Layers refuse a tuple (e.g. an LSTM's whole output) with their own name
# --------------------------------------------------------------------------- #
LSTM_OUTPUT = "a tuple of 2 \\(an LSTM returns \\(output, \\(h, c\\)\\): take output\\)"


@pytest.mark.parametrize(
    "layer",
    [nn.Linear(4, 2), nn.Flatten(), nn.Conv1d(4, 2, 1), nn.Conv2d(4, 2, 1), nn.MaxPool1d(2), nn.MaxPool2d(2),
     nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.ReLU(), nn.Tanh(),
     nn.Softmax(dim=-1), nn.Embedding(4, 2), nn.RNN(4, 2), nn.LSTM(4, 2), nn.GRU(4, 2), nn.LSTMCell(4, 2)],
    ids=lambda m: type(m).__name__,
)
def test_one_tensor_layers_refuse_an_lstm_output(layer):
    x = minidl.randn(3, 5, 4)
    state = nn.LSTM(4, 4)(x)
    with pytest.raises(TypeError, match=rf"^{type(layer).__name__}: expected a Tensor.*, got {LSTM_OUTPUT}$"):
        layer(state)


def test_losses_refuse_tuples_too():
    out = nn.GRU(4, 3)(minidl.randn(3, 5, 4))
    with pytest.raises(TypeError, match=r"^CrossEntropyLoss: expected a Tensor as input, got a tuple of 2 \(an RNN"):
        nn.CrossEntropyLoss()(out, minidl.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match=r"^MSELoss: expected a Tensor as target, got a list of 1$"):
        nn.MSELoss()(minidl.zeros(2), [minidl.zeros(2)])
