"""Small synthetic data sets for the early lessons: made in microseconds, no files.

``spiral``: interleaved 2-D spiral arms, one per class (an MLP lesson's classic:
no straight line separates them). ``sine_waves``: sine sequences for the RNN lessons,
either predict the next value or tell the frequency apart. ``marked_sign``: a
long-range memory task on which a plain RNN fails and an LSTM succeeds.

All return numpy arrays and take a ``seed`` (or a numpy Generator) so a lesson is
repeatable.
"""

from __future__ import annotations

import math

import numpy


def spiral(n_per_class: int = 100, classes: int = 3, noise: float = 0.2, seed=None):
    """``(X, y)``: X float32 (N, 2), y int64 (N,), N = n_per_class * classes.

    Point i of class j lies at radius r = i / (n_per_class - 1) in [0, 1] and angle

        theta = 2 pi j / classes + 4 r + noise * e,   e ~ N(0, 1)

    i.e. ``(r sin theta, r cos theta)``: arms start at the centre, evenly rotated,
    each sweeping 4 radians (CS231n's spiral, arms spaced for any number of classes).
    """
    if n_per_class < 1 or classes < 1:
        raise ValueError(f"spiral: n_per_class and classes must be >= 1, got {n_per_class}, {classes}")
    if noise < 0:
        raise ValueError(f"spiral: noise must be >= 0, got {noise}")
    rng = numpy.random.default_rng(seed)
    label = numpy.repeat(numpy.arange(classes), n_per_class)
    radius = numpy.tile(numpy.linspace(0.0, 1.0, n_per_class), classes)
    theta = 2 * math.pi * label / classes + 4 * radius + noise * rng.standard_normal(label.size)
    points = numpy.stack([radius * numpy.sin(theta), radius * numpy.cos(theta)], axis=1)
    return points.astype(numpy.float32), label.astype(numpy.int64)


def sine_waves(n_sequences: int = 1000, length: int = 50, task: str = "next", classes: int = 2,
               noise: float = 0.0, seed=None):
    """Sine sequences x[t] = sin(2 pi f t + phase) + noise * e[t], e ~ N(0, 1), with a
    random phase per sequence; arrays are batch-first (N, length, 1) float32
    (use ``X.transpose(1, 0, 2)`` for a time-first RNN, PyTorch's default layout).

    task='next': each sequence has its own frequency f uniform in [0.02, 0.1] cycles
        per step (10 to 50 steps a period); returns ``(X, Y)`` with Y[:, t] = x[t+1],
        the next value, float32 (N, length, 1).
    task='classify': sequence n belongs to class c = n * classes // n_sequences, whose
        frequency is the c-th of ``classes`` values evenly spaced in [0.02, 0.1]; returns
        ``(X, y)`` with y int64 (N,).
    """
    if task not in ("next", "classify"):
        raise ValueError(f"sine_waves: task must be 'next' or 'classify', got {task!r}")
    if n_sequences < 1 or length < 1:
        raise ValueError(f"sine_waves: n_sequences and length must be >= 1, got {n_sequences}, {length}")
    if task == "classify" and not 2 <= classes <= n_sequences:
        raise ValueError(f"sine_waves: classify needs 2 <= classes <= n_sequences, got classes={classes}")
    rng = numpy.random.default_rng(seed)
    phase = rng.uniform(0, 2 * math.pi, size=(n_sequences, 1))
    if task == "next":
        frequency = rng.uniform(0.02, 0.1, size=(n_sequences, 1))
    else:
        label = numpy.arange(n_sequences) * classes // n_sequences
        frequency = numpy.linspace(0.02, 0.1, classes)[label][:, None]
    steps = numpy.arange(length + 1)[None, :]
    x = numpy.sin(2 * math.pi * frequency * steps + phase) + noise * rng.standard_normal((n_sequences, length + 1))
    x = x.astype(numpy.float32)[..., None]
    if task == "next":
        return x[:, :-1], x[:, 1:]
    return x[:, :-1], label.astype(numpy.int64)


def marked_sign(batch: int, length: int, window: int = 10, seed=None):
    """"Remember the marked sign": x (length, batch, 2) float32, time first (PyTorch's RNN
    layout). Channel 0 holds random values +1/-1; channel 1 is 1 at exactly one step,
    drawn among the first ``window`` steps, and 0 elsewhere. y (batch,) int64 is 1 when
    the marked value is +1, else 0.

    The answer depends on one early step only, so a model must carry it across
    ``length - window`` steps of distraction: easy for an LSTM, hard for a plain RNN
    once ``length`` reaches a few tens. ``seed`` is an int, None or a numpy Generator
    (pass one Generator to draw fresh batches in a loop).
    """
    if batch < 1 or length < 1 or window < 1:
        raise ValueError(f"marked_sign: batch, length and window must be >= 1, got {batch}, {length}, {window}")
    rng = seed if isinstance(seed, numpy.random.Generator) else numpy.random.default_rng(seed)
    values = rng.choice(numpy.array([-1.0, 1.0], dtype=numpy.float32), size=(length, batch))
    marked = rng.integers(0, min(window, length), size=batch)
    marks = numpy.zeros((length, batch), dtype=numpy.float32)
    marks[marked, numpy.arange(batch)] = 1
    labels = (values[marked, numpy.arange(batch)] > 0).astype(numpy.int64)
    return numpy.stack([values, marks], axis=-1), labels
