"""The exercises on layers (dropout, linear + ReLU, batch norm, layer norm) and on the autograd
engine itself: their numpy references, test inputs and hints. ``catalog.EXERCISES`` puts them
in order among the others.
"""

from __future__ import annotations

import math

import numpy as np

from minidl.exercises.catalog import Case, Exercise


# --------------------------------------------------------------------------- #
# Independent numpy references
# --------------------------------------------------------------------------- #
def dropout_reference(x, mask, p=0.5):
    return np.where(mask, x / (1 - p), 0.0)


def linear_relu_reference(x, weight, bias):
    return np.maximum(np.einsum("ni,oi->no", x, weight) + bias, 0.0)


def batch_norm_reference(x, gamma, beta, eps=1e-5):
    return gamma * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps) + beta


def layer_norm_reference(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(x.var(axis=-1, keepdims=True) + eps) + beta


def autograd_engine_reference(a, b):
    """out = t*a + t*t with t = tanh(a*b + b*b), and its gradient by the chain rule written out by hand."""
    t = math.tanh(a * b + b * b)
    dout_dt = a + 2 * t
    ds = dout_dt * (1 - t * t)  # d out / d s, s = a*b + b*b
    da = t + ds * b  # a is used twice: directly in t*a, and in s
    db = ds * (a + 2 * b)  # b is used three times, all inside s
    return np.asarray(t * a + t * t), np.array([da, db])


# --------------------------------------------------------------------------- #
# Test inputs
# --------------------------------------------------------------------------- #
def dropout_cases(rng):
    cases = []
    for shape, p in [((4, 5), 0.5), ((1, 7), 0.2), ((2, 3, 4), 0.75)]:
        cases.append(Case((rng.standard_normal(shape), rng.random(shape) >= p), {"p": p}))
    return cases


def linear_relu_cases(rng):
    cases = []
    for n, inputs, outputs in [(4, 3, 5), (1, 2, 1), (3, 1, 4)]:
        x, weight = rng.standard_normal((n, inputs)), rng.standard_normal((outputs, inputs))
        cases.append(Case((x, weight, rng.standard_normal(outputs))))
    return cases


def norm_cases(rng, shapes):
    return [
        Case((rng.standard_normal(s) * 2 + 1, rng.standard_normal(s[-1:]), rng.standard_normal(s[-1:])), {"eps": 1e-5})
        for s in shapes
    ]


def batch_norm_cases(rng):
    return norm_cases(rng, [(6, 4), (2, 3), (5, 1)])


def layer_norm_cases(rng):
    return norm_cases(rng, [(3, 5), (2, 3, 4), (4, 1)])


def autograd_engine_cases(rng):
    pairs = [(0.5, -1.2), (-0.3, 0.4), *np.round(rng.uniform(-1, 1, (2, 2)), 3)]  # the first: lesson 01's a and b
    return [Case((), {"a": float(a), "b": float(b)}) for a, b in pairs]


# --------------------------------------------------------------------------- #
# The exercises
# --------------------------------------------------------------------------- #
DROPOUT = Exercise(
    name="dropout",
    title="inverted dropout with a given mask: derive the backward",
    to_write="Dropout.backward",
    entry="dropout",
    inputs=("x", "mask"),
    outputs=("y",),
    cases=dropout_cases,
    reference=dropout_reference,
    hints={"x": "the gradient for x is off: check the dropped elements, and the scale of the kept ones."},
    graded_hints=(
        "For a fixed mask, y is x times a constant, elementwise. What is dy/dx where the mask is 1, and where it is 0?",
        "x, mask, y, gy and dL/dx all have one shape, nothing is summed; the mask is not learnt: its gradient is None.",
        "dL/dx = gy * mask / (1 - p), the same scale as the forward; return (that, None).",
    ),
)

LINEAR_RELU = Exercise(
    name="linear_relu",
    title="y = relu(x W^T + b): derive dx, dW and db",
    to_write="LinearReLU.backward",
    entry="linear_relu",
    inputs=("x", "weight", "bias"),
    outputs=("y",),
    cases=linear_relu_cases,
    reference=linear_relu_reference,
    hints={
        "x": "the gradient for x is off: check what the ReLU lets through, then the product with the weight.",
        "weight": "the gradient for weight is off: shape (O, I), and every sample used the same weight.",
        "bias": "the gradient for bias is off: shape (O,), and every sample used the same bias.",
    },
    graded_hints=(
        "Split it: a = x W^T + b, then y = relu(a). relu'(a) is 1 where a > 0 and 0 elsewhere; "
        "a[n, o] = sum_i x[n, i] W[o, i] + b[o]: what is da[n, o]/dx[n, i], /dW[o, i], /db[o]?",
        "g = dL/da is (N, O). dx (N, I) from g (N, O) and W (O, I); dW (O, I) from g and x (N, I) sums over "
        "the batch N; db (O,) sums g over the batch too.",
        "g = gy * (a > 0); dx = g @ W, dW = g^T @ x, db = g.sum(axis=0) (a is self.a).",
    ),
)

BATCH_NORM = Exercise(
    name="batch_norm",
    title="batch norm in training mode: derive dx, dgamma and dbeta",
    to_write="BatchNorm.backward",
    entry="batch_norm",
    inputs=("x", "gamma", "beta"),
    outputs=("y",),
    cases=batch_norm_cases,
    reference=batch_norm_reference,
    hints={
        "x": "the gradient for x is off: every x[n, d] also moves the batch mean and variance of feature d; "
        "did you follow all three paths?",
        "gamma": "the gradient for gamma is off: shape (D,), summed over the batch.",
        "beta": "the gradient for beta is off: shape (D,), summed over the batch.",
    },
    graded_hints=(
        "x[n, d] reaches xhat three ways: directly, through the mean mu[d] and through the variance var[d]. "
        "Differentiate mu = mean_n x and var = mean_n (x - mu)**2 first, then add the three paths.",
        "Each feature d is on its own; the sums run over the batch axis 0 (N rows). dx is (N, D), "
        "dgamma and dbeta are (D,). Call g = gy * gamma the gradient that reaches xhat.",
        "With r = 1 / sqrt(var + eps): dx = (r / N) * (N * g - sum_n g - xhat * sum_n (g * xhat)), "
        "dgamma = sum_n gy * xhat, dbeta = sum_n gy (self.xhat and self.r are kept by forward).",
    ),
)

LAYER_NORM = Exercise(
    name="layer_norm",
    title="layer norm over the last dim: derive dx, dgamma and dbeta",
    to_write="LayerNorm.backward",
    entry="layer_norm",
    inputs=("x", "gamma", "beta"),
    outputs=("y",),
    cases=layer_norm_cases,
    reference=layer_norm_reference,
    hints={
        "x": "the gradient for x is off: every element of a row also moves that row's mean and variance; "
        "did you follow all three paths, summing over the last dim?",
        "gamma": "the gradient for gamma is off: shape (D,), summed over every leading axis.",
        "beta": "the gradient for beta is off: shape (D,), summed over every leading axis.",
    },
    graded_hints=(
        "The same three paths as batch norm (directly, through the mean, through the variance), "
        "but the statistics belong to one row, not to one feature.",
        "The sums in dx run over the last dim (size D, keepdims=True); gamma and beta (D,) are shared by "
        "every row, so their gradients sum over all the leading axes. g = gy * gamma reaches xhat.",
        "With r = 1 / sqrt(var + eps): dx = (r / D) * (D * g - sum_d g - xhat * sum_d (g * xhat)), "
        "dgamma = gy * xhat and dbeta = gy, each summed over the leading axes.",
    ),
)

AUTOGRAD_ENGINE = Exercise(
    name="autograd_engine",
    title="a tiny scalar autograd: the topological order and the gradient accumulation",
    to_write="topological_order and backward",
    entry="autograd_engine",
    inputs=(),
    outputs=("out", "[d out/da, d out/db]"),
    cases=autograd_engine_cases,
    reference=autograd_engine_reference,
    hints={"forward": "out is fine but a gradient is not? A value used twice must get the SUM of both "
                      "contributions, and a node may pass its gradient on only once every user of it has."},
    graded_hints=(
        "The chain rule for a value used in several places: its derivative is the sum over the paths. "
        "So a node's grad is complete only after every node that used it has been processed.",
        "topological_order(root) returns a list of every node reachable from root, each after its parents "
        "(depth-first: visit the parents, then append the node; a set of seen ids stops repeats). "
        "backward walks that list in reverse, starting from root.grad = 1.",
        "for node in reversed(topological_order(root)): for parent, local in zip(node.parents, node.local_grads): "
        "parent.grad += local * node.grad",
    ),
)
