"""Loss modules and F forms: CrossEntropyLoss (spatial, unbatched, probabilities, ignore_index),
NLLLoss, MSELoss, BCEWithLogitsLoss; reductions; gradcheck; errors that explain themselves."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn as nn
import minidl.nn.functional as F


def np_log_softmax(z, axis):
    m = z.max(axis=axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def rand(*shape):
    return minidl.tensor(np.random.default_rng(len(shape)).standard_normal(shape), requires_grad=True)


@given(n=st.integers(1, 3), c=st.integers(1, 4), d=st.lists(st.integers(1, 3), min_size=1, max_size=2))
def test_cross_entropy_over_extra_axes_matches_loops(n, c, d):
    z = rand(n, c, *d)
    y = np.random.default_rng(1).integers(0, c, size=(n, *d))
    loss = F.cross_entropy(z, minidl.tensor(y), reduction="none")
    assert loss.shape == (n, *d)
    logp = np_log_softmax(z.numpy(), 1)
    for index in np.ndindex(n, *d):
        expected = -logp[(index[0], y[index]) + index[1:]]
        assert loss.numpy()[index] == pytest.approx(expected, rel=1e-10)
    assert F.cross_entropy(z, minidl.tensor(y)).item() == pytest.approx(loss.numpy().mean(), rel=1e-10)
    assert minidl.gradcheck(lambda t: F.cross_entropy(t, minidl.tensor(y), label_smoothing=0.1), z)


def test_unbatched_input():
    z = rand(4)
    loss = F.cross_entropy(z, minidl.tensor(2))
    assert loss.shape == () and loss.item() == pytest.approx(-np_log_softmax(z.numpy(), 0)[2])
    assert F.cross_entropy(z, minidl.tensor(2), reduction="none").shape == ()


def test_probability_targets():
    z = rand(3, 4, 2)
    t = np.random.default_rng(2).dirichlet(np.ones(4), size=(3, 2)).transpose(0, 2, 1)  # sums to 1 over axis 1
    loss = F.cross_entropy(z, minidl.tensor(t), reduction="none")
    np.testing.assert_allclose(loss.numpy(), -(t * np_log_softmax(z.numpy(), 1)).sum(1), rtol=1e-10)
    smoothed = F.cross_entropy(z, minidl.tensor(t), label_smoothing=0.2).item()
    t_smooth = 0.8 * t + 0.2 / 4
    assert smoothed == pytest.approx(-(t_smooth * np_log_softmax(z.numpy(), 1)).sum(1).mean(), rel=1e-10)


def test_class_indices_equal_one_hot_probabilities():
    z, y = rand(5, 3), np.array([0, 2, 1, 1, 0])
    a = F.cross_entropy(z, minidl.tensor(y), label_smoothing=0.3).item()
    b = F.cross_entropy(z, minidl.tensor(np.eye(3)[y]), label_smoothing=0.3).item()
    assert a == pytest.approx(b, rel=1e-12)


def test_ignore_index():
    z, y = rand(4, 3), np.array([0, 7, 2, 7])
    loss = F.cross_entropy(z, minidl.tensor(y), ignore_index=7, reduction="none")
    assert loss.numpy()[1] == 0 and loss.numpy()[3] == 0
    mean = F.cross_entropy(z, minidl.tensor(y), ignore_index=7).item()
    assert mean == pytest.approx(loss.numpy().sum() / 2)  # the mean is over the kept rows only
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(F.cross_entropy(z, minidl.tensor([7, 7, 7, 7]), ignore_index=7).item())  # as PyTorch


def test_cross_entropy_equals_nll_of_log_softmax():
    z, y = rand(6, 4), minidl.tensor([3, 0, 1, 1, 2, 0])
    w = minidl.tensor([1.0, 2.0, 0.5, 1.5], dtype=np.float64)
    for reduction in ("mean", "sum", "none"):
        a = F.cross_entropy(z, y, w, reduction=reduction).numpy()
        b = F.nll_loss(F.log_softmax(z, dim=1), y, w, reduction=reduction).numpy()
        np.testing.assert_allclose(a, b, rtol=1e-12)


@given(n=st.integers(1, 4), c=st.integers(1, 4), weighted=st.booleans())
def test_nll_loss_against_loops_and_gradcheck(n, c, weighted):
    x = rand(n, c)
    y = np.arange(n) % c
    w = np.linspace(0.5, 1.5, c) if weighted else np.ones(c)
    weight = minidl.tensor(w) if weighted else None
    expected = [-w[y[i]] * x.numpy()[i, y[i]] for i in range(n)]
    np.testing.assert_allclose(F.nll_loss(x, minidl.tensor(y), weight, reduction="none").numpy(), expected)
    assert F.nll_loss(x, minidl.tensor(y), weight).item() == pytest.approx(sum(expected) / w[y].sum())
    assert minidl.gradcheck(lambda t: F.nll_loss(t, minidl.tensor(y), weight), x)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
def test_mse_loss(shape):
    a, b = rand(*shape), minidl.tensor(np.random.default_rng(5).standard_normal(shape), requires_grad=True)
    d = a.numpy() - b.numpy()
    assert nn.MSELoss()(a, b).item() == pytest.approx((d**2).mean())
    assert nn.MSELoss(reduction="sum")(a, b).item() == pytest.approx((d**2).sum())
    np.testing.assert_allclose(F.mse_loss(a, b, reduction="none").numpy(), d**2)
    assert minidl.gradcheck(lambda u, v: F.mse_loss(u, v), (a, b))


def test_bce_with_logits_module_weight_and_reduction():
    z, t = rand(3, 2), minidl.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    w = minidl.tensor([2.0, 0.5], dtype=np.float64)
    per_element = F.binary_cross_entropy_with_logits(z, t, reduction="none").numpy()
    got = nn.BCEWithLogitsLoss(weight=w)(z, t).item()
    assert got == pytest.approx((per_element * w.numpy()).mean())
    assert nn.BCEWithLogitsLoss(reduction="sum")(z, t).item() == pytest.approx(per_element.sum())
    int_target = F.binary_cross_entropy_with_logits(z, minidl.tensor([[1, 0], [0, 0], [1, 1]]))
    assert int_target.item() == pytest.approx(per_element.mean())


@given(reduction=st.sampled_from(["mean", "sum", "none"]), smoothing=st.sampled_from([0.0, 0.1]))
def test_modules_equal_functions(reduction, smoothing):
    z, y = rand(4, 3), minidl.tensor([0, 2, 2, 1])
    np.testing.assert_allclose(
        nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)(z, y).numpy(),
        F.cross_entropy(z, y, reduction=reduction, label_smoothing=smoothing).numpy(),
    )
    np.testing.assert_allclose(nn.NLLLoss(reduction=reduction)(z, y).numpy(), F.nll_loss(z, y, reduction=reduction).numpy())


def test_module_weight_is_a_buffer_that_moves(device):
    criterion = nn.CrossEntropyLoss(weight=minidl.tensor([1.0, 2.0, 3.0])).to(device)
    assert [n for n, _ in criterion.named_buffers()] == ["weight"] and criterion.weight.device == device
    z = minidl.randn(4, 3, device=device, requires_grad=True)
    loss = criterion(z, minidl.tensor([0, 1, 2, 2], device=device))
    loss.backward()
    assert loss.device == device and z.grad.device == device
    assert repr(nn.CrossEntropyLoss(reduction="sum")) == "CrossEntropyLoss(reduction='sum')"


def test_errors_name_the_loss_and_the_shapes():
    z = minidl.randn(4, 3)
    with pytest.raises(ValueError, match=r"cross_entropy: input of shape \(4, 3\) needs class indices of shape \(4,\), got target of shape \(4, 1\)"):
        F.cross_entropy(z, minidl.tensor([[0], [1], [2], [0]]))
    with pytest.raises(ValueError, match=r"class probabilities .* shape \(4, 3\)"):
        F.cross_entropy(z, minidl.rand(4, 2))
    with pytest.raises(IndexError, match="cross_entropy: target 3 is out of bounds for 3 classes"):
        F.cross_entropy(z, minidl.tensor([0, 1, 3, 0]))
    with pytest.raises(IndexError, match="nll_loss: target -1"):
        F.nll_loss(z, minidl.tensor([0, -1, 1, 0]))
    with pytest.raises(TypeError, match="cross_entropy: expected integer class indices or float"):
        F.cross_entropy(z, minidl.tensor([True, False, True, True]))
    with pytest.raises(TypeError, match="floating-point logits"):
        F.cross_entropy(minidl.tensor([[1, 2]]), minidl.tensor([0]))
    with pytest.raises(ValueError, match=r"expected reduction to be one of 'none', 'mean', 'sum', got 'avg'"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"expected reduction to be one of"):
        F.mse_loss(z, z, reduction="max")
    with pytest.raises(ValueError, match=r"cross_entropy: expected label_smoothing to be a finite number in \[0, 1\], got 1.5"):
        F.cross_entropy(z, minidl.tensor([0, 1, 2, 0]), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        F.cross_entropy(z, minidl.tensor([0, 1, 2, 0]), minidl.ones(2))
    with pytest.raises(ValueError, match=r"mse_loss: target of shape \(4,\) does not match input of shape \(4, 1\)"):
        F.mse_loss(minidl.randn(4, 1), minidl.randn(4))
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits: target size"):
        F.binary_cross_entropy_with_logits(z, minidl.rand(4))
    with pytest.raises(ValueError, match="0-d"):
        F.cross_entropy(minidl.tensor(1.0), minidl.tensor(0))
