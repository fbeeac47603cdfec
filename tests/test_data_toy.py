"""Toy sets: spiral points and sine-wave sequences."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidl import datasets


@given(n=st.integers(1, 30), classes=st.integers(1, 6), noise=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_spiral_shapes_labels_and_radius(n, classes, noise, seed):
    X, y = datasets.spiral(n, classes, noise, seed=seed)
    assert X.shape == (n * classes, 2) and X.dtype == np.float32
    assert y.dtype == np.int64 and np.bincount(y, minlength=classes).tolist() == [n] * classes
    assert (np.diff(y) >= 0).all()  # ordered by class
    radius = np.hypot(X[:, 0], X[:, 1])
    expected = np.tile(np.linspace(0, 1, n), classes)
    np.testing.assert_allclose(radius, expected, atol=1e-6)  # noise moves the angle only


def test_spiral_without_noise_follows_the_formula():
    X, y = datasets.spiral(5, 3, noise=0.0)
    r = np.tile(np.linspace(0, 1, 5), 3)
    theta = 2 * math.pi * y / 3 + 4 * r
    np.testing.assert_allclose(X, np.stack([r * np.sin(theta), r * np.cos(theta)], 1), atol=1e-6)


def test_spiral_seed_and_errors():
    a, b = datasets.spiral(10, seed=3), datasets.spiral(10, seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], datasets.spiral(10, seed=4)[0])
    with pytest.raises(ValueError, match="n_per_class and classes must be >= 1"):
        datasets.spiral(0)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        datasets.spiral(5, noise=-1)


@given(n=st.integers(1, 20), length=st.integers(1, 40), noise=st.floats(0, 0.5))
def test_sine_next_value_targets_are_the_inputs_shifted(n, length, noise):
    X, Y = datasets.sine_waves(n, length, task="next", noise=noise, seed=0)
    assert X.shape == Y.shape == (n, length, 1) and X.dtype == Y.dtype == np.float32
    np.testing.assert_array_equal(Y[:, :-1], X[:, 1:])


def test_sine_next_value_without_noise_is_a_sine():
    X, Y = datasets.sine_waves(50, 30, task="next", seed=1)
    assert np.abs(X).max() <= 1
    # a sine obeys x[t+1] + x[t-1] = 2 cos(2 pi f) x[t]: the ratio is one constant per sequence
    x = np.concatenate([X[..., 0], Y[:, -1:, 0]], axis=1).astype(np.float64)
    ratio = (x[:, 2:] + x[:, :-2]) / (2 * x[:, 1:-1])
    keep = np.abs(x[:, 1:-1]) > 0.2
    ratio = np.where(keep, ratio, np.nan)
    assert np.nanmax(np.nanstd(ratio, axis=1)) < 1e-5
    frequency = np.arccos(np.nanmedian(ratio, axis=1)) / (2 * math.pi)
    assert (frequency > 0.02 - 1e-3).all() and (frequency < 0.1 + 1e-3).all()


def test_sine_classify_labels_follow_frequency():
    X, y = datasets.sine_waves(90, 200, task="classify", classes=3, seed=2)
    assert X.shape == (90, 200, 1) and y.dtype == np.int64 and np.bincount(y).tolist() == [30, 30, 30]
    peak = np.abs(np.fft.rfft(X[..., 0], axis=1)).argmax(axis=1) / 200  # cycles per step
    for c, f in enumerate(np.linspace(0.02, 0.1, 3)):
        np.testing.assert_allclose(peak[y == c], f, atol=0.006)


def test_sine_errors():
    with pytest.raises(ValueError, match="task must be 'next' or 'classify', got 'sort'"):
        datasets.sine_waves(task="sort")
    with pytest.raises(ValueError, match="n_sequences and length must be >= 1"):
        datasets.sine_waves(0)
    with pytest.raises(ValueError, match="classify needs 2 <= classes <= n_sequences"):
        datasets.sine_waves(5, task="classify", classes=1)


def test_marked_sign_labels_follow_the_marked_value():
    x, y = datasets.marked_sign(batch=50, length=30, window=7, seed=3)
    assert x.shape == (30, 50, 2) and x.dtype == np.float32 and y.shape == (50,) and y.dtype == np.int64
    assert set(np.unique(x[..., 0])) <= {-1.0, 1.0}
    for b in range(50):  # the plain per-sequence reading of the task
        marked = np.flatnonzero(x[:, b, 1])
        assert len(marked) == 1 and marked[0] < 7
        assert y[b] == (x[marked[0], b, 0] > 0)
    x2, y2 = datasets.marked_sign(batch=50, length=30, window=7, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    with pytest.raises(ValueError, match="marked_sign: batch, length and window must be >= 1"):
        datasets.marked_sign(0, 10)
