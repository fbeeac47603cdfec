"""The gradient-check exercises: what each one asks for, its test inputs, and a numpy reference.

Each exercise lives in ``lessons/exercises/<name>.py`` (the stub a learner completes) and
``lessons/exercises/solutions/<name>.py`` (the reference solution). The checker calls the
file's ``entry`` function on the inputs of every case, compares the forward with
``reference`` (plain numpy, written independently of the exercise), and checks the
backward with ``minidl.gradcheck``.

Inputs are float64 (so central differences are accurate); integer inputs (class targets)
are passed through and get no gradient. Cases include size-1 axes on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.special import expit, logsumexp


@dataclass(frozen=True)
class Case:
    """One set of inputs: ``arrays`` in the entry function's argument order, ``options`` as keywords."""

    arrays: tuple
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Exercise:
    name: str
    title: str  # one line for --list
    to_write: str  # what the learner fills in
    entry: str  # the function the checker calls: entry(*arrays, **options)
    inputs: tuple  # the names of entry's array arguments
    outputs: tuple  # the names of what it returns
    cases: Callable  # rng -> list of Case
    reference: Callable  # (*arrays, **options) -> array or tuple of arrays
    hints: dict = field(default_factory=dict)  # input name (or 'forward') -> a hint when it is wrong


# --------------------------------------------------------------------------- #
# Independent numpy references
# --------------------------------------------------------------------------- #
def sigmoid_reference(x):
    return (1 + np.tanh(x / 2)) / 2  # the same function, written another way


def softmax_cross_entropy_reference(logits, target):
    losses = [logsumexp(row) - row[t] for row, t in zip(logits, target)]
    return np.asarray(np.mean(losses))


def matmul_reference(a, b):
    return np.einsum("...ik,...kj->...ij", a, b)


def conv2d_reference(x, weight, bias, stride=1, padding=0):
    """Straight from the definition: a loop over every output element."""
    n, c, h, w = x.shape
    f, _, kh, kw = weight.shape
    xpad = np.zeros((n, c, h + 2 * padding, w + 2 * padding))
    xpad[:, :, padding : padding + h, padding : padding + w] = x
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    y = np.zeros((n, f, oh, ow))
    for s in range(n):
        for k in range(f):
            for i in range(oh):
                for j in range(ow):
                    window = xpad[s, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                    y[s, k, i, j] = bias[k] + np.sum(window * weight[k])
    return y


def max_pool2d_reference(x, kernel_size, stride=None):
    stride = kernel_size if stride is None else stride
    n, c, h, w = x.shape
    oh, ow = (h - kernel_size) // stride + 1, (w - kernel_size) // stride + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = x[:, :, i * stride : i * stride + kernel_size, j * stride : j * stride + kernel_size]
            y[:, :, i, j] = window.max(axis=(2, 3))
    return y


def lstm_cell_reference(x, h, c, weight_ih, weight_hh, bias):
    hidden = h.shape[1]
    a = np.einsum("ni,gi->ng", x, weight_ih) + np.einsum("nh,gh->ng", h, weight_hh) + bias
    i = expit(a[:, :hidden])
    f = expit(a[:, hidden : 2 * hidden])
    g = np.tanh(a[:, 2 * hidden : 3 * hidden])
    o = expit(a[:, 3 * hidden :])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


# --------------------------------------------------------------------------- #
# Test inputs
# --------------------------------------------------------------------------- #
def distinct(rng, shape):
    """Values 0.1 apart in random order: no ties, so max has a derivative everywhere."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) * 0.1


def sigmoid_cases(rng):
    return [Case((rng.standard_normal((4, 5)) * 2,)), Case((rng.uniform(-8, 8, (1, 7)),))]


def softmax_cross_entropy_cases(rng):
    cases = []
    for n, c, scale in [(5, 4, 2.0), (1, 3, 1.0), (6, 2, 5.0)]:
        cases.append(Case((rng.standard_normal((n, c)) * scale, rng.integers(0, c, n))))
    return cases


def matmul_cases(rng):
    shapes = [((3, 4), (4, 2)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 1), (4, 1, 5))]
    return [Case((rng.standard_normal(a), rng.standard_normal(b))) for a, b in shapes]


def conv2d_cases(rng):
    configs = [  # x shape, weight shape, stride, padding
        ((2, 3, 5, 5), (4, 3, 3, 3), 1, 1),
        ((1, 2, 6, 5), (3, 2, 2, 3), 2, 0),
        ((2, 1, 4, 4), (1, 1, 4, 4), 1, 0),
        ((1, 2, 5, 5), (2, 2, 3, 3), 2, 1),
    ]
    return [
        Case(
            (rng.standard_normal(xs), rng.standard_normal(ws) * 0.5, rng.standard_normal(ws[0])),
            {"stride": stride, "padding": padding},
        )
        for xs, ws, stride, padding in configs
    ]


def max_pool2d_cases(rng):
    configs = [((2, 3, 4, 6), 2, 2), ((1, 2, 7, 5), 3, 2), ((2, 1, 3, 3), 2, 1)]
    return [Case((distinct(rng, shape),), {"kernel_size": k, "stride": s}) for shape, k, s in configs]


def lstm_cell_cases(rng):
    cases = []
    for n, inputs, hidden in [(3, 4, 5), (1, 1, 2)]:
        cases.append(
            Case(
                (
                    rng.standard_normal((n, inputs)),
                    rng.standard_normal((n, hidden)),
                    rng.standard_normal((n, hidden)),
                    rng.standard_normal((4 * hidden, inputs)) * 0.7,
                    rng.standard_normal((4 * hidden, hidden)) * 0.7,
                    rng.standard_normal(4 * hidden) * 0.5,
                )
            )
        )
    return cases


# --------------------------------------------------------------------------- #
# The exercises, in the order a learner should do them
# --------------------------------------------------------------------------- #
EXERCISES = {
    e.name: e
    for e in [
        Exercise(
            name="sigmoid",
            title="y = sigmoid(x): derive dy/dx through y",
            to_write="Sigmoid.backward",
            entry="sigmoid",
            inputs=("x",),
            outputs=("y",),
            cases=sigmoid_cases,
            reference=sigmoid_reference,
            hints={"x": "dL/dx = gy * y * (1 - y), with y = self.outputs[0] (not x)."},
        ),
        Exercise(
            name="softmax_cross_entropy",
            title="mean cross-entropy of softmax(logits): dL/dz = (p - onehot) / N",
            to_write="SoftmaxCrossEntropy.backward",
            entry="softmax_cross_entropy",
            inputs=("logits", "target"),
            outputs=("loss",),
            cases=softmax_cross_entropy_cases,
            reference=softmax_cross_entropy_reference,
            hints={"logits": "remember the 1/N of the mean and the factor gy; the one-hot goes at t[n] in row n."},
        ),
        Exercise(
            name="matmul",
            title="Y = A @ B with broadcast batch axes: sum the gradient back down",
            to_write="MatMul.backward",
            entry="matmul",
            inputs=("A", "B"),
            outputs=("Y",),
            cases=matmul_cases,
            reference=matmul_reference,
            hints={
                "A": "dA = gy @ B^T (swap B's last two axes with .mT), summed down to A's shape with sum_to.",
                "B": "dB = A^T @ gy (swap A's last two axes with .mT), summed down to B's shape with sum_to.",
            },
        ),
        Exercise(
            name="conv2d_im2col",
            title="conv2d through im2col: write the forward and the backward (col2im)",
            to_write="im2col, Conv2d.forward, col2im and Conv2d.backward",
            entry="conv2d",
            inputs=("x", "weight", "bias"),
            outputs=("y",),
            cases=conv2d_cases,
            reference=conv2d_reference,
            hints={
                "forward": "check im2col's (c, p, q) order against weight.reshape(F, -1), and the padding and stride.",
                "x": "dx = col2im(g @ weight.reshape(F, -1)); col2im must ADD overlapping windows, drop the padding.",
                "weight": "dweight = g^T @ cols with g = gy moved to (N*OH*OW, F) and cols to (N*OH*OW, C*KH*KW).",
                "bias": "dbias = gy summed over the batch and both spatial axes (0, 2, 3).",
            },
        ),
        Exercise(
            name="max_pool2d",
            title="max pooling: route each gradient to its window's winner",
            to_write="MaxPool2d.backward",
            entry="max_pool2d",
            inputs=("x",),
            outputs=("y",),
            cases=max_pool2d_cases,
            reference=max_pool2d_reference,
            hints={"x": "only winners get gradient; overlapping windows (stride < kernel) must ADD, not overwrite."},
        ),
        Exercise(
            name="lstm_cell",
            title="one LSTM cell step (gates i, f, g, o): backward through every gate",
            to_write="LSTMCell.backward",
            entry="lstm_cell",
            inputs=("x", "h", "c", "weight_ih", "weight_hh", "bias"),
            outputs=("h_new", "c_new"),
            cases=lstm_cell_cases,
            reference=lstm_cell_reference,
            hints={
                "c": "dc = dc_new * f, where dc_new = gc + gh * o * (1 - tanh(c_new)**2) collects BOTH paths.",
                "x": "dx = da @ weight_ih; check each gate's derivative and the order i, f, g, o in da.",
                "h": "dh = da @ weight_hh; check each gate's derivative and the order i, f, g, o in da.",
                "weight_ih": "dweight_ih = da.T @ x, shape (4H, I).",
                "weight_hh": "dweight_hh = da.T @ h, shape (4H, H).",
                "bias": "dbias = da summed over the batch axis, shape (4H,).",
            },
        ),
    ]
}
