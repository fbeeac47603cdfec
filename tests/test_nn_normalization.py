"""BatchNorm1d / BatchNorm2d: forward against a per-channel loop, running statistics (PyTorch's
unbiased update, momentum, cumulative average), train vs eval, gradcheck, bad inputs."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn as nn
import minidl.nn.functional as F


def gradcheck_module(module, *inputs):
    """gradcheck of module(*inputs) with respect to the inputs that require grad and every parameter."""
    names = [n for n, _ in module.named_parameters()]
    count = len(inputs)

    def run(*args):
        saved = dict(module._parameters)
        module._parameters.update(zip(names, args[count:]))
        try:
            return module(*args[:count])
        finally:
            module._parameters.update(saved)

    params = [minidl.Tensor(p.data, requires_grad=True) for p in module.parameters()]
    return minidl.gradcheck(run, (*inputs, *params), names=[f"input {i}" for i in range(count)] + names)


def batch_norm_reference(x, gamma, beta, eps, mean=None, var=None):
    """Channel by channel: gather every value of channel c, normalise it, scale and shift."""
    y = np.empty_like(x, dtype=np.float64)
    for c in range(x.shape[1]):
        values = x[:, c].astype(np.float64)
        mu = values.mean() if mean is None else mean[c]
        sigma2 = ((values - values.mean()) ** 2).mean() if var is None else var[c]
        y[:, c] = gamma[c] * (values - mu) / np.sqrt(sigma2 + eps) + beta[c]
    return y


CASES = [(nn.BatchNorm1d, ()), (nn.BatchNorm1d, ("L",)), (nn.BatchNorm2d, ("H", "W"))]


def random_input(extra, n, c, size, dtype=np.float32, requires_grad=False):
    return minidl.randn(n, c, *([size] * len(extra)), dtype=dtype, requires_grad=requires_grad)


@pytest.mark.parametrize("layer, extra", CASES)
@given(n=st.integers(2, 4), c=st.integers(1, 3), size=st.integers(1, 3))
def test_training_forward_matches_reference(layer, extra, n, c, size):
    bn = layer(c)
    with minidl.no_grad():
        bn.weight.data[...] = np.linspace(0.5, 2, c)
        bn.bias.data[...] = np.linspace(-1, 1, c)
    x = random_input(extra, n, c, size)
    y = bn(x)
    expected = batch_norm_reference(x.numpy(), bn.weight.numpy(), bn.bias.numpy(), bn.eps)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-4, atol=1e-4)
    assert y.shape == x.shape and y.dtype == np.float32


@pytest.mark.parametrize("layer, extra", CASES)
def test_running_statistics_use_the_unbiased_variance(layer, extra):
    bn = layer(3, momentum=0.3)
    x = random_input(extra, 4, 3, 2, dtype=np.float64)
    bn.to(minidl.float64)
    bn(x)
    values = np.moveaxis(x.numpy(), 1, 0).reshape(3, -1)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.3 * values.mean(1), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.7 + 0.3 * values.var(1, ddof=1), rtol=1e-12)
    assert bn.num_batches_tracked.item() == 1
    bn(x)
    assert bn.num_batches_tracked.item() == 2
    np.testing.assert_allclose(bn.running_mean.numpy(), (1 - 0.7**2) * values.mean(1), rtol=1e-12)


def test_momentum_none_is_a_cumulative_average():
    bn = nn.BatchNorm1d(2, momentum=None).double()
    batches = [minidl.randn(5, 2, dtype=np.float64) * (k + 1) + k for k in range(4)]
    for x in batches:
        bn(x)
    means = np.mean([x.numpy().mean(0) for x in batches], axis=0)
    variances = np.mean([x.numpy().var(0, ddof=1) for x in batches], axis=0)
    np.testing.assert_allclose(bn.running_mean.numpy(), means, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), variances, rtol=1e-12)


@pytest.mark.parametrize("layer, extra", CASES)
def test_eval_uses_running_statistics_and_leaves_them_alone(layer, extra):
    bn = layer(3)
    for _ in range(3):
        bn(random_input(extra, 4, 3, 2) * 2 + 1)
    mean, var = bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()
    bn.eval()
    x = random_input(extra, 2, 3, 2)
    y = bn(x)
    expected = batch_norm_reference(x.numpy(), bn.weight.numpy(), bn.bias.numpy(), bn.eps, mean, var)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(bn.running_mean.numpy(), mean)
    np.testing.assert_array_equal(bn.running_var.numpy(), var)
    assert bn.num_batches_tracked.item() == 3
    one = bn(x[:1])  # one example is fine in eval mode, and does not depend on the others
    np.testing.assert_allclose(one.numpy(), y.numpy()[:1], rtol=1e-6)


def test_train_and_eval_differ_on_a_fresh_layer():
    bn = nn.BatchNorm1d(2)
    x = minidl.randn(6, 2) * 3 + 5
    train_out = bn(x).numpy()
    np.testing.assert_allclose(train_out.mean(0), 0, atol=1e-5)
    eval_out = nn.BatchNorm1d(2).eval()(x).numpy()
    np.testing.assert_allclose(eval_out, x.numpy() / np.sqrt(1 + 1e-5), rtol=1e-5)  # fresh stats: mean 0, var 1
    moved = bn.eval()(x).numpy()  # after one training batch: 10% of the way to the batch statistics
    assert not np.allclose(moved, eval_out) and not np.allclose(moved, train_out)


def test_affine_false_and_no_running_stats():
    bn = nn.BatchNorm2d(3, affine=False, track_running_stats=False)
    assert list(bn.parameters()) == [] and list(bn.buffers()) == []
    assert bn.weight is None and bn.running_mean is None
    x = minidl.randn(2, 3, 2, 2)
    expected = batch_norm_reference(x.numpy(), np.ones(3), np.zeros(3), 1e-5)
    np.testing.assert_allclose(bn.eval()(x).numpy(), expected, rtol=1e-4, atol=1e-5)  # batch stats even in eval
    assert repr(bn) == "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=False, track_running_stats=False)"


@pytest.mark.parametrize("layer, extra", CASES)
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_input_and_parameters(layer, extra, training):
    bn = layer(3).double()
    with minidl.no_grad():
        bn.weight.data[...] = [0.5, 1.5, -2.0]
        bn.bias.data[...] = [0.1, 0.0, -0.3]
        bn.running_mean.data[...] = [0.2, -0.1, 0.0]
        bn.running_var.data[...] = [0.5, 2.0, 1.0]
    bn.train(training)
    x = random_input(extra, 3, 3, 2, dtype=np.float64, requires_grad=True)
    assert gradcheck_module(bn, x)


def test_gradients_reach_parameters_on_device(device):
    bn = nn.BatchNorm2d(4).to(device)
    x = minidl.randn(3, 4, 2, 2, device=device, requires_grad=True)
    (bn(x) * minidl.randn(3, 4, 2, 2, device=device)).sum().backward()
    assert bn.weight.grad.device == device and bn.bias.grad.shape == (4,) and x.grad.shape == x.shape
    assert bn.running_mean.device == device


def test_state_dict_keeps_the_running_statistics():
    a, b = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    a(minidl.randn(4, 2) + 3)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(b.running_mean.numpy(), a.running_mean.numpy())
    assert b.num_batches_tracked.item() == 1


def test_bad_inputs_name_the_layer_and_the_shapes():
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected a \(N, C\) or \(N, C, L\) input, got shape \(2, 3, 4, 5\)"):
        nn.BatchNorm1d(3)(minidl.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected a \(N, C, H, W\) input, got shape \(2, 3\)"):
        nn.BatchNorm2d(3)(minidl.randn(2, 3))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 3 channels.*\(2, 4, 1, 1\)"):
        nn.BatchNorm2d(3)(minidl.randn(2, 4, 1, 1))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(minidl.randn(1, 3))
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm1d(0)
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\)"):
        F.batch_norm(minidl.randn(2, 3), minidl.zeros(4), minidl.ones(4))
    with pytest.raises(ValueError, match="needs running_mean"):
        F.batch_norm(minidl.randn(2, 3), None, None, training=False)
