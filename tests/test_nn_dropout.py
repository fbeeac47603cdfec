"""Dropout: the fraction dropped, inverted scaling (mean preserved), identity in eval, seeding, gradients."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn as nn
import minidl.nn.functional as F


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_statistics(p):
    x = minidl.ones(200, 500)
    y = nn.Dropout(p)(x).numpy()
    kept = y != 0
    n = kept.size
    assert abs(kept.mean() - (1 - p)) < 4 * np.sqrt(p * (1 - p) / n)  # within 4 standard errors
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-6)  # survivors are scaled up
    assert abs(y.mean() - 1) < 4 * np.sqrt(p / (1 - p) / n)  # so the mean is preserved


def test_eval_and_p_zero_are_the_identity():
    x = minidl.randn(4, 5)
    layer = nn.Dropout(0.5).eval()
    assert layer(x) is x
    assert F.dropout(x, 0.0) is x and F.dropout(x, 0.9, training=False) is x


def test_p_one_drops_everything():
    x = minidl.randn(3, 3, requires_grad=True)
    y = F.dropout(x, 1.0)
    assert np.all(y.numpy() == 0)
    y.sum().backward()
    assert np.all(x.grad.numpy() == 0)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), p=st.sampled_from([0.2, 0.5]))
def test_gradient_is_the_same_mask(shape, p):
    x = minidl.randn(*shape, dtype=np.float64, requires_grad=True)
    y = F.dropout(x, p)
    y.backward(minidl.ones(*shape, dtype=np.float64))
    mask = y.numpy() / x.numpy()  # 0 or 1 / (1 - p) wherever x != 0
    np.testing.assert_allclose(x.grad.numpy(), mask, rtol=1e-12)
    assert set(np.round(np.unique(mask), 9)) <= {0.0, round(1 / (1 - p), 9)}


def test_gradcheck_with_a_fixed_seed():
    x = minidl.randn(3, 4, dtype=np.float64, requires_grad=True)

    def seeded_dropout(t):
        minidl.manual_seed(7)  # the same mask at every evaluation gradcheck makes
        return F.dropout(t, 0.3)

    assert minidl.gradcheck(seeded_dropout, x)


def test_manual_seed_repeats_the_mask():
    x = minidl.ones(10, 10)
    minidl.manual_seed(1)
    a = nn.Dropout()(x).numpy()
    b = nn.Dropout()(x).numpy()
    minidl.manual_seed(1)
    np.testing.assert_array_equal(nn.Dropout()(x).numpy(), a)
    assert not np.array_equal(a, b)


def test_on_device(device):
    x = minidl.ones(50, 50, device=device, requires_grad=True)
    y = nn.Dropout(0.25)(x)
    assert y.device == device and y.dtype == np.float32
    assert 0.6 < float((y.numpy() != 0).mean()) < 0.9
    y.sum().backward()
    assert x.grad.device == device


def test_bad_probability():
    with pytest.raises(ValueError, match=r"Dropout: expected p \(the probability of zeroing\) to be a finite number in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="dropout: probability"):
        F.dropout(minidl.ones(2), -0.1)
    assert repr(nn.Dropout(0.2)) == "Dropout(p=0.2, inplace=False)"
