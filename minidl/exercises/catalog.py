"""The gradient-check exercises: what each one asks for, its test inputs, and a numpy reference.

Each exercise lives in ``lessons/exercises/<name>.py`` (the stub a learner completes) and
``lessons/exercises/solutions/<name>.py`` (the reference solution). The checker calls the
file's ``entry`` function on the inputs of every case, compares the forward with
``reference`` (plain numpy, written independently of the exercise), and checks the
backward with ``minidl.gradcheck``.

Inputs are float64 (so central differences are accurate); integer and boolean inputs
(class targets, masks) are passed through and get no gradient. Cases include size-1 axes
on purpose.

Nothing a learner sees before asking gives the formula away: the stub states the forward,
the shapes and what to derive; ``title`` and ``hints`` (printed when a check fails) say
what is wrong and where. The formula is only in the third of ``graded_hints`` (the first
two point at the local derivative, then at the shapes and the axes that sum).

Layers (dropout, linear + ReLU, batch and layer norm) and the autograd engine are in ``catalog_layers``.
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
    hints: dict = field(default_factory=dict)  # input name (or 'forward') -> what is wrong and where (no formula)
    graded_hints: tuple = ()  # three, asked for one at a time: the local derivative, the shapes and sums, the formula


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


def im2col_reference(x, kh, kw, stride=1, padding=0):
    """cols[n, i, j, (c, p, q)] = xpad[n, c, i*stride + p, j*stride + q], one element at a time."""
    n, c, h, w = x.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    cols = np.zeros((n, oh, ow, c * kh * kw))
    for i in range(oh):
        for j in range(ow):
            for ch in range(c):
                for p in range(kh):
                    for q in range(kw):
                        cols[:, i, j, (ch * kh + p) * kw + q] = xpad[:, ch, i * stride + p, j * stride + q]
    return cols


def im2col_col2im_reference(x, y, kh, kw, stride=1, padding=0):
    """(im2col(x), <im2col(x), y>, <x, col2im(y)>) for a correct pair: the dot-product test says
    the last two are equal, so both are <im2col(x), y> with the loop above."""
    cols = im2col_reference(x, kh, kw, stride, padding)
    dot = np.asarray(np.sum(cols * y))
    return cols, dot, dot.copy()


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


def im2col_col2im_cases(rng):
    configs = [  # x shape, kh, kw, stride, padding: overlapping windows, strides, padding, a 1x1 kernel
        ((2, 3, 5, 5), 3, 3, 1, 1),
        ((1, 2, 6, 5), 2, 3, 2, 0),
        ((2, 1, 4, 4), 1, 1, 1, 0),
        ((1, 2, 5, 4), 3, 2, 2, 1),
    ]
    cases = []
    for shape, kh, kw, stride, padding in configs:
        oh = (shape[2] + 2 * padding - kh) // stride + 1
        ow = (shape[3] + 2 * padding - kw) // stride + 1
        y = rng.standard_normal((shape[0], oh, ow, shape[1] * kh * kw))
        cases.append(Case((rng.standard_normal(shape), y), {"kh": kh, "kw": kw, "stride": stride, "padding": padding}))
    return cases


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
# The exercises on ops, each with what is wrong where (hints) and three graded hints
# --------------------------------------------------------------------------- #
SIGMOID = Exercise(
    name="sigmoid",
    title="the sigmoid: derive dy/dx and write it through the output y",
    to_write="Sigmoid.backward",
    entry="sigmoid",
    inputs=("x",),
    outputs=("y",),
    cases=sigmoid_cases,
    reference=sigmoid_reference,
    hints={"x": "the gradient for x is off: is it gy times dy/dx, with dy/dx written through y = self.outputs[0]?"},
    graded_hints=(
        "Write sigmoid(x) = (1 + e)**-1 with e = exp(-x) and differentiate with the chain rule; "
        "then notice that e / (1 + e) is 1 - sigmoid(x).",
        "Elementwise: x, y, gy and dL/dx all have one shape and nothing is summed. "
        "y = self.outputs[0] is already computed: no exp is needed in the backward.",
        "dy/dx = y * (1 - y), so backward returns gy * y * (1 - y) with y = self.outputs[0].",
    ),
)

MATMUL = Exercise(
    name="matmul",
    title="Y = A @ B with broadcast batch axes: derive dA and dB",
    to_write="MatMul.backward",
    entry="matmul",
    inputs=("A", "B"),
    outputs=("Y",),
    cases=matmul_cases,
    reference=matmul_reference,
    hints={
        "A": "the gradient for A is off, or has the broadcast batch shape: an input reused along a batch axis "
        "needs its gradient summed back down to its own shape (minidl.sum_to).",
        "B": "the gradient for B is off, or has the broadcast batch shape: an input reused along a batch axis "
        "needs its gradient summed back down to its own shape (minidl.sum_to).",
    },
    graded_hints=(
        "For one pair of matrices Y[i, j] = sum_k A[i, k] B[k, j]: what is dY[i, j] / dA[i, k]? "
        "And dY[i, j] / dB[k, j]? Then sum over the Y elements each one reaches.",
        "dL/dA must be (n, k) from gy (n, m) and B (k, m): which product of those gives (n, k)? "
        "Batched, the result has the broadcast batch shape; sum the batch axes A was broadcast along (sum_to).",
        "dA = sum_to(gy @ B^T, A.shape) and dB = sum_to(A^T @ gy, B.shape), with t.mT for the transpose.",
    ),
)

SOFTMAX_CROSS_ENTROPY = Exercise(
    name="softmax_cross_entropy",
    title="mean cross-entropy of softmax(logits): derive the gradient for the logits",
    to_write="SoftmaxCrossEntropy.backward",
    entry="softmax_cross_entropy",
    inputs=("logits", "target"),
    outputs=("loss",),
    cases=softmax_cross_entropy_cases,
    reference=softmax_cross_entropy_reference,
    hints={"logits": "the gradient for the logits is off: check the factor of the mean over the batch, "
                     "the factor gy, and that row n treats class t[n] differently."},
    graded_hints=(
        "Write log p[n, t] = z[n, t] - log sum_k exp(z[n, k]) and differentiate each of the two terms by z[n, c].",
        "The gradient has the logits' shape (N, C); the loss is a mean, so every row carries a 1/N; "
        "the targets (integers) get None. An array with a 1 at class t[n] of row n: "
        "onehot = xp.zeros_like(p); onehot[xp.arange(N), t.data] = 1.",
        "dL/dz = gy * (p - onehot) / N, with onehot[n, c] = 1 when c == t[n] and p = self.p.",
    ),
)

MAX_POOL2D = Exercise(
    name="max_pool2d",
    title="2-D max pooling: which elements of x get gradient, and how much?",
    to_write="MaxPool2d.backward",
    entry="max_pool2d",
    inputs=("x",),
    outputs=("y",),
    cases=max_pool2d_cases,
    reference=max_pool2d_reference,
    hints={"x": "the gradient for x is off: check which element of each window receives gy, and what happens "
                "when windows overlap (stride < kernel)."},
    graded_hints=(
        "max(a, b, ...) is a switch: what is its derivative by the largest argument, and by the others?",
        "gy (N, C, OH, OW) -> dx (N, C, H, W). self.argmax holds each window's winner as p*K + q; "
        "an element that wins several overlapping windows collects several gradients.",
        "dx[n, c, i*stride + p, j*stride + q] += gy[n, c, i, j] for that window's winner (p, q), zero elsewhere; "
        "loop over (p, q) and add gy * (self.argmax == p*K + q) into the strided slice of dx.",
    ),
)

IM2COL_COL2IM = Exercise(
    name="im2col_col2im",
    title="im2col and col2im, an adjoint pair checked by the dot-product test",
    to_write="im2col and col2im",
    entry="im2col_col2im",
    inputs=("x", "y"),
    outputs=("cols", "<im2col(x), y>", "<x, col2im(y)>"),
    cases=im2col_col2im_cases,
    reference=im2col_col2im_reference,
    hints={
        "forward": "cols is im2col(x); the second and third outputs are the two sides of the dot-product test "
        "<im2col(x), y> = <x, col2im(y)>: if only the third is off, col2im is not im2col's adjoint "
        "(check its (c, p, q) order, that overlapping windows add, and the padding).",
        "x": "the gradient of im2col (your col2im) disagrees with im2col: col2im must be its adjoint.",
        "y": "the gradient of col2im (your im2col) disagrees with col2im: col2im must be im2col's adjoint.",
    },
    graded_hints=(
        "im2col only copies, so it is a linear map M. Its adjoint M^T is defined by <M x, y> = <x, M^T y> "
        "for every x, y: write out the left side as a sum and group its terms by the element of x they multiply.",
        "y is cols-shaped (N, OH, OW, C*KH*KW), col2im(y) is x-shaped (N, C, H, W). Each element of xpad "
        "was copied into every window that covers it; padding elements were copied from nowhere.",
        "col2im(y)[n, c, h, w] = sum of y[n, i, j, (c, p, q)] over all (i, j, p, q) with "
        "i*stride + p = h + padding and j*stride + q = w + padding: undo the reshape and transpose, "
        "then for each (p, q) do xpad[:, :, p : p + stride*OH : stride, q : q + stride*OW : stride] += the "
        "(p, q) slice, and cut the padding off.",
    ),
)

CONV2D_IM2COL = Exercise(
    name="conv2d_im2col",
    title="conv2d as one matrix product over im2col: write the forward, derive the backward",
    to_write="Conv2d.forward and Conv2d.backward",
    entry="conv2d",
    inputs=("x", "weight", "bias"),
    outputs=("y",),
    cases=conv2d_cases,
    reference=conv2d_reference,
    hints={
        "forward": "check the order of cols' last axis (c, p, q) against weight.reshape(F, -1), and where F ends up "
        "in y (N, F, OH, OW).",
        "x": "the gradient for x is off: it goes back through the matrix product and then through im2col.",
        "weight": "the gradient for weight is off: every output position used the same weight, so its "
        "contributions sum over n, i and j.",
        "bias": "the gradient for bias is off: which axes of gy did bias reach?",
    },
    graded_hints=(
        "y = cols @ Wm^T + bias with Wm = weight.reshape(F, C*KH*KW) is a matrix product plus a broadcast: "
        "use what you derived in the matmul exercise, then go back through im2col with its adjoint.",
        "Move gy (N, F, OH, OW) to rows g (N*OH*OW, F). dWm is (F, C*KH*KW), dcols is (N*OH*OW, C*KH*KW); "
        "bias (F,) was broadcast over n, i and j, so its gradient sums over axes (0, 2, 3) of gy.",
        "dweight = (g^T @ cols).reshape(F, C, KH, KW), dbias = gy.sum(axis=(0, 2, 3)), "
        "dx = col2im(g @ weight.reshape(F, -1), x.shape, KH, KW, stride, padding).",
    ),
)

LSTM_CELL = Exercise(
    name="lstm_cell",
    title="one LSTM cell step (gates i, f, g, o): backward through every gate",
    to_write="LSTMCell.backward",
    entry="lstm_cell",
    inputs=("x", "h", "c", "weight_ih", "weight_hh", "bias"),
    outputs=("h_new", "c_new"),
    cases=lstm_cell_cases,
    reference=lstm_cell_reference,
    hints={
        "c": "the gradient for the old cell state c is off: c_new reaches the loss along two paths; "
        "did you collect both before going back to c?",
        "x": "the gradient for x is off: check each gate's derivative and the order i, f, g, o of the blocks.",
        "h": "the gradient for h is off: check each gate's derivative and the order i, f, g, o of the blocks.",
        "weight_ih": "the gradient for weight_ih is off: shape (4H, I), summed over the batch.",
        "weight_hh": "the gradient for weight_hh is off: shape (4H, H), summed over the batch.",
        "bias": "the gradient for bias is off: shape (4H,), summed over the batch.",
    },
    graded_hints=(
        "c_new reaches the loss directly (gc) and through h_new = o * tanh(c_new) (gh): its gradient is the "
        "sum of both. From there each gate is a product rule, then a sigmoid' or tanh' of its preactivation.",
        "Every gate gradient is (N, H); joined in the order i, f, g, o they make da (N, 4H). "
        "The weights (4H, I) and (4H, H) and the bias (4H,) are shared by the batch: their gradients sum over N.",
        "dc_new = gc + gh * o * (1 - tanh(c_new)**2); do = gh * tanh(c_new); di = dc_new * g; df = dc_new * c; "
        "dg = dc_new * i; dc = dc_new * f; da = [di*i*(1-i), df*f*(1-f), dg*(1-g**2), do*o*(1-o)]; "
        "dx = da @ weight_ih, dh = da @ weight_hh, dweight_ih = da.T @ x, dweight_hh = da.T @ h, dbias = da.sum(0).",
    ),
)

from minidl.exercises import catalog_layers as _layers  # noqa: E402  (it uses Case and Exercise above)

# All the exercises, in the order of difficulty a learner should do them (--list and the READMEs agree)
EXERCISES = {
    e.name: e
    for e in [
        SIGMOID,
        _layers.DROPOUT,
        MATMUL,
        _layers.LINEAR_RELU,
        SOFTMAX_CROSS_ENTROPY,
        MAX_POOL2D,
        IM2COL_COL2IM,
        CONV2D_IM2COL,
        _layers.BATCH_NORM,
        _layers.LAYER_NORM,
        LSTM_CELL,
        _layers.AUTOGRAD_ENGINE,
    ]
}
