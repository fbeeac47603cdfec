"""Case drawers for grading: the practice cases' kinds of input with their shapes drawn at random,
so that a backward tuned to the fixed practice shapes does not pass. Exercises whose shapes are
tied together (convolution, im2col, pooling, the LSTM cell, the engine) keep their practice
shapes and get fresh values only."""

from __future__ import annotations

from minidl.exercises.catalog import Case
from minidl.exercises.catalog_layers import norm_cases


def _shape(rng, ndim, low=1, high=6):
    return tuple(int(n) for n in rng.integers(low, high + 1, ndim))


def sigmoid(rng):
    return [Case((rng.standard_normal(_shape(rng, int(rng.integers(1, 4)))) * 3,)) for _ in range(3)]


def dropout(rng):
    cases = []
    for _ in range(3):
        shape, p = _shape(rng, int(rng.integers(1, 4))), float(rng.choice([0.2, 0.5, 0.75]))
        cases.append(Case((rng.standard_normal(shape), rng.random(shape) >= p), {"p": p}))
    return cases


def matmul(rng):
    cases = []
    for batch in ((), _shape(rng, 1), _shape(rng, 2)):
        m, k, n = _shape(rng, 3)
        cases.append(Case((rng.standard_normal(batch + (m, k)), rng.standard_normal((k, n)))))
    return cases


def linear_relu(rng):
    cases = []
    for _ in range(3):
        n, inputs, outputs = _shape(rng, 3)
        x, weight = rng.standard_normal((n, inputs)), rng.standard_normal((outputs, inputs))
        cases.append(Case((x, weight, rng.standard_normal(outputs))))
    return cases


def softmax_cross_entropy(rng):
    cases = []
    for _ in range(3):
        n, c = int(rng.integers(1, 7)), int(rng.integers(2, 7))
        cases.append(Case((rng.standard_normal((n, c)) * rng.uniform(0.5, 5), rng.integers(0, c, n))))
    return cases


def batch_norm(rng):
    return norm_cases(rng, [(int(rng.integers(2, 8)), int(rng.integers(1, 6))) for _ in range(3)])


def layer_norm(rng):
    return norm_cases(rng, [_shape(rng, int(rng.integers(2, 4))) for _ in range(3)])


DRAWERS = {f.__name__: f for f in (sigmoid, dropout, matmul, linear_relu, softmax_cross_entropy, batch_norm,
                                   layer_norm)}
