"""The fused loss ops: softmax cross-entropy and binary cross-entropy with logits, against float64
numpy references written out term by term, gradcheck (logits and soft targets), stability."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl.ops import loss as L


def np_log_softmax(z):
    z = z.astype(np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def pytorch_cross_entropy(z, y, weight=None, ignore_index=-100, reduction="mean", eps=0.0):
    """PyTorch's definition for class-index targets, term by term as in its source:
    (1 - eps) * nll_loss(log_softmax(z), y, weight) + eps / C * smooth_loss, where
    smooth_loss_n = -sum_c w_c log p_nc, and 'mean' divides both by the sum of w_{y_n} over kept rows."""
    n, c = z.shape
    logp = np_log_softmax(z)
    w = np.ones(c) if weight is None else np.asarray(weight, dtype=np.float64)
    nll, smooth, divisor = np.zeros(n), np.zeros(n), 0.0
    for i in range(n):
        if y[i] == ignore_index:
            continue
        nll[i] = -w[y[i]] * logp[i, y[i]]
        smooth[i] = -sum(w[k] * logp[i, k] for k in range(c))
        divisor += w[y[i]]
    losses = (1 - eps) * nll + eps / c * smooth
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.sum() / divisor


batches = st.tuples(st.integers(1, 5), st.integers(1, 5))


@given(shape=batches, data=st.data(), reduction=st.sampled_from(["mean", "sum", "none"]),
       eps=st.sampled_from([0.0, 0.1, 0.45]), weighted=st.booleans())
def test_cross_entropy_matches_pytorch_definition(shape, data, reduction, eps, weighted):
    n, c = shape
    y = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    if n > 1 and data.draw(st.booleans()):
        y[0] = -100  # an ignored row
    z = np.random.default_rng(n * 10 + c).standard_normal((n, c)) * 3
    weight = np.linspace(0.5, 2.0, c) if weighted else None
    got = L.cross_entropy(minidl.tensor(z), minidl.tensor(y), None if weight is None else minidl.tensor(weight),
                          reduction=reduction, label_smoothing=eps)
    np.testing.assert_allclose(got.numpy(), pytorch_cross_entropy(z, y, weight, -100, reduction, eps), rtol=1e-10)


@given(shape=batches, eps=st.sampled_from([0.0, 0.2]), weighted=st.booleans())
def test_cross_entropy_gradcheck(shape, eps, weighted):
    n, c = shape
    z = minidl.randn(n, c, dtype=np.float64, requires_grad=True)
    y = minidl.tensor(np.arange(n) % c)
    weight = minidl.tensor(np.linspace(0.5, 2.0, c)) if weighted else None
    assert minidl.gradcheck(lambda t: L.cross_entropy(t, y, weight, label_smoothing=eps), z)
    assert minidl.gradcheck(lambda t: L.cross_entropy(t, y, reduction="none", label_smoothing=eps), z)


def test_fused_op_gradient_is_softmax_minus_target():
    z = minidl.randn(4, 3, dtype=np.float64, requires_grad=True)
    y = np.array([0, 2, 1, 2])
    L.cross_entropy(z, minidl.tensor(y)).backward()
    p = np.exp(np_log_softmax(z.numpy()))
    np.testing.assert_allclose(z.grad.numpy(), (p - np.eye(3)[y]) / 4, rtol=1e-12)


def test_fused_op_gradients_for_soft_targets_and_second_order():
    z = minidl.randn(3, 4, dtype=np.float64, requires_grad=True)
    q = minidl.tensor(np.random.default_rng(1).dirichlet(np.ones(4), size=3), requires_grad=True)
    assert minidl.gradcheck(lambda a, b: L.SoftmaxCrossEntropy()(a, b), (z, q))
    assert minidl.gradgradcheck(lambda a, b: L.SoftmaxCrossEntropy()(a, b), (z, q))
    assert minidl.gradcheck(lambda a, b: L.cross_entropy(a, b, label_smoothing=0.1), (z, q))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_for_huge_logits(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]])
    y = np.array([1, 2, 0])
    logits = minidl.tensor(z, dtype=dtype, requires_grad=True)
    loss = L.cross_entropy(logits, minidl.tensor(y), reduction="none")
    np.testing.assert_allclose(loss.numpy(), pytorch_cross_entropy(z, y, reduction="none"), rtol=1e-6)
    np.testing.assert_allclose(loss.numpy(), [2e4, 0.0, np.log(2)], rtol=1e-6, atol=1e-6)
    loss.sum().backward()
    assert np.all(np.isfinite(logits.grad.numpy()))
    smoothed = L.cross_entropy(logits, minidl.tensor(y), label_smoothing=0.1)
    assert np.isfinite(smoothed.item())


def np_bce_with_logits(z, t, pos_weight=1.0):
    """-[k t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))] in float64 (moderate z only)."""
    s = 1 / (1 + np.exp(-z))
    return -(pos_weight * t * np.log(s) + (1 - t) * np.log(1 - s))


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), with_pos_weight=st.booleans())
def test_bce_with_logits_against_reference_and_gradcheck(shape, with_pos_weight):
    rng = np.random.default_rng(sum(shape))
    z = minidl.tensor(rng.standard_normal(shape) * 3, requires_grad=True)
    t = minidl.tensor(rng.random(shape), requires_grad=True)
    pos_weight = minidl.tensor(rng.random(shape[-1:]) * 3) if with_pos_weight else None
    got = L.binary_cross_entropy_with_logits(z, t, reduction="none", pos_weight=pos_weight)
    k = 1.0 if pos_weight is None else pos_weight.numpy()
    np.testing.assert_allclose(got.numpy(), np_bce_with_logits(z.numpy(), t.numpy(), k), rtol=1e-10)
    fn = lambda a, b: L.binary_cross_entropy_with_logits(a, b, pos_weight=pos_weight)  # noqa: E731
    assert minidl.gradcheck(fn, (z, t))


def test_bce_with_logits_is_stable():
    z = minidl.tensor([1e4, -1e4, 50.0, -50.0], requires_grad=True)
    t = minidl.tensor([0.0, 1.0, 1.0, 0.0])
    loss = L.binary_cross_entropy_with_logits(z, t, reduction="none")
    np.testing.assert_allclose(loss.numpy(), [1e4, 1e4, 0.0, 0.0], atol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), [1, -1, 0, 0], atol=1e-6)


def test_class_index_distribution():
    q, divisor = L.class_index_distribution(np.array([2, -100, 0]), 3, np.float64, label_smoothing=0.3)
    np.testing.assert_allclose(q, [[0.1, 0.1, 0.8], [0, 0, 0], [0.8, 0.1, 0.1]])
    assert divisor == 2


def test_on_device(device):
    z = minidl.randn(4, 3, device=device, requires_grad=True)
    loss = L.cross_entropy(z, minidl.tensor([0, 1, 2, 0], device=device), label_smoothing=0.1)
    loss.backward()
    assert loss.device == device and z.grad.device == device and loss.dtype == np.float32
    b = L.binary_cross_entropy_with_logits(z, minidl.rand(4, 3, device=device))
    assert b.device == device and b.dtype == np.float32


@given(shape=batches, data=st.data(), eps=st.sampled_from([0.0, 0.2]), weighted=st.booleans())
def test_class_index_gradient_is_p_times_sum_q_minus_q(shape, data, eps, weighted):
    """ClassIndexCrossEntropy never builds q: its gradient must still be p * sum(q) - q, with q from
    class_index_distribution (ignored rows, class weights and label smoothing included)."""
    n, c = shape
    y = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    if data.draw(st.booleans()):
        y[0] = -100
    z = minidl.randn(n, c, dtype=np.float64, requires_grad=True)
    weight = minidl.tensor(np.linspace(0.5, 2.0, c)) if weighted else None
    gy = np.random.default_rng(n + c).standard_normal(n)
    L.cross_entropy(z, minidl.tensor(y), weight, reduction="none", label_smoothing=eps).backward(minidl.tensor(gy))
    q, _ = L.class_index_distribution(y, c, np.float64, weight, label_smoothing=eps)
    p = np.exp(np_log_softmax(z.numpy()))
    np.testing.assert_allclose(z.grad.numpy(), (p * q.sum(axis=1, keepdims=True) - q) * gy[:, None], atol=1e-12)


@pytest.mark.parametrize("eps, weighted", [(0.0, False), (0.2, False), (0.2, True)])
def test_class_index_cross_entropy_second_derivatives(eps, weighted):
    z = minidl.randn(5, 4, dtype=np.float64, requires_grad=True)
    y = minidl.tensor([0, 3, -100, 1, 2])
    weight = minidl.tensor(np.linspace(0.5, 2.0, 4)) if weighted else None
    assert minidl.gradgradcheck(lambda t: L.cross_entropy(t, y, weight, label_smoothing=eps) ** 2, z)
    assert minidl.gradgradcheck(lambda t: L.cross_entropy(t, y, weight, reduction="none", label_smoothing=eps), z)


def test_out_of_range_target(device):
    """CPU: IndexError naming the class; GPU: that row's loss is NaN (checking would sync)."""
    z = minidl.randn(3, 4, device=device, requires_grad=True)
    y = minidl.tensor([0, 4, 1], device=device)
    if device == "cpu":
        with pytest.raises(IndexError, match=r"cross_entropy: target 4 is out of bounds for 4 classes"):
            L.cross_entropy(z, y)
        return
    loss = L.cross_entropy(z, y, reduction="none")
    assert np.isnan(loss.numpy()).tolist() == [False, True, False]
    loss.sum().backward()
    assert np.isnan(z.grad.numpy()[1]).all() and np.isfinite(z.grad.numpy()[[0, 2]]).all()
