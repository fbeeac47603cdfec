"""Activations: tanh, sigmoid, relu, leaky_relu, softmax, log_softmax. Forward against
references written out with numpy/scipy, backward by gradcheck, second derivatives by
gradgradcheck, and numerical stability for large inputs."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import expit

import minidl

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
seeds = st.integers(0, 2**32 - 1)


def away_from_zero(shape, seed):
    """|x| in [0.05, 3] with a random sign: no value sits on relu's kink."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 3.0, shape) * rng.choice([-1.0, 1.0], shape)


def leaf(array, device):
    return minidl.tensor(array, dtype=np.float64, device=device, requires_grad=True)


ELEMENTWISE = {
    "tanh": (minidl.tanh, np.tanh),
    "sigmoid": (minidl.sigmoid, expit),
    "relu": (minidl.relu, lambda v: np.where(v > 0, v, 0.0)),
    "leaky_relu": (minidl.leaky_relu, lambda v: np.where(v > 0, v, 0.01 * v)),
    "leaky_relu(0.2)": (lambda x: minidl.leaky_relu(x, 0.2), lambda v: np.where(v > 0, v, 0.2 * v)),
    "method tanh": (lambda x: x.tanh(), np.tanh),
    "method sigmoid": (lambda x: x.sigmoid(), lambda v: 1 / (1 + np.exp(-v))),
    "method relu": (lambda x: x.relu(), lambda v: np.maximum(v, 0)),
}


@pytest.mark.parametrize("name", list(ELEMENTWISE))
@fixture_ok
@given(shape=shapes, seed=seeds)
def test_elementwise_activation(device, name, shape, seed):
    op, reference = ELEMENTWISE[name]
    values = away_from_zero(shape, seed)
    y = op(leaf(values, device))
    assert y.shape == shape and y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), reference(values), rtol=1e-12, atol=1e-15)
    assert minidl.gradcheck(op, leaf(values, device))
    assert minidl.gradgradcheck(op, leaf(values, device))


def test_derivatives_written_out():
    v = np.array([-1.3, -0.2, 0.4, 2.0])
    for op, derivative in [
        (minidl.tanh, 1 - np.tanh(v) ** 2),
        (minidl.sigmoid, expit(v) * (1 - expit(v))),
        (minidl.relu, (v > 0).astype(float)),
        (lambda x: minidl.leaky_relu(x, 0.1), np.where(v > 0, 1.0, 0.1)),
    ]:
        x = leaf(v, "cpu")
        op(x).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), derivative, rtol=1e-12)


def test_relu_gradient_at_zero_is_zero_like_pytorch():
    x = leaf([0.0], "cpu")
    minidl.relu(x).backward(minidl.ones(1, dtype=np.float64))
    assert x.grad.item() == 0.0


def test_leaky_relu_gradient_at_zero_is_the_slope_like_pytorch():
    # PyTorch: dy/dx = 1 where x > 0, negative_slope elsewhere (x = 0 included)
    x = leaf([-1.0, 0.0, 1.0], "cpu")
    minidl.leaky_relu(x, 0.2).sum().backward()
    assert x.grad.tolist() == [0.2, 0.2, 1.0]


def test_float32_stays_float32():
    x = minidl.tensor([-1.0, 1.0])
    for op in (minidl.tanh, minidl.sigmoid, minidl.relu, minidl.leaky_relu, minidl.softmax, minidl.log_softmax):
        assert op(x).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_never_overflows(dtype):
    x = minidl.tensor([-1000.0, -120.0, -30.0, 0.0, 30.0, 120.0, 1000.0], dtype=dtype, requires_grad=True)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        y = minidl.sigmoid(x)
        y.sum().backward()
    values = y.numpy()
    assert np.isfinite(values).all() and np.isfinite(x.grad.numpy()).all()
    assert values[0] == 0.0 and values[-1] == 1.0 and values[3] == 0.5
    tiny = np.finfo(dtype).tiny  # float32 cannot hold sigmoid(-120) = 7.7e-53: it underflows to 0
    np.testing.assert_allclose(values[[1, 2, 4]], expit(np.array([-120.0, -30.0, 30.0])), rtol=1e-6, atol=tiny)


# --------------------------------------------------------------------------- #
# softmax and log_softmax
# --------------------------------------------------------------------------- #
def softmax_reference(values, axis):
    """exp(x_i) / sum_j exp(x_j), with math.exp in plain loops over every line along ``axis``."""
    moved = np.moveaxis(values, axis, -1)
    result = np.empty_like(moved)
    for index in np.ndindex(*moved.shape[:-1]):
        line = moved[index]
        top = max(line)
        exps = [math.exp(v - top) for v in line]
        total = sum(exps)
        result[index] = [e / total for e in exps]
    return np.moveaxis(result, -1, axis)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@fixture_ok
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), seed=seeds)
def test_softmax_and_log_softmax(device, name, data, shape, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    values = np.random.default_rng(seed).normal(scale=2.0, size=shape)
    op = getattr(minidl, name)
    expected = softmax_reference(values, axis)
    expected = np.log(expected) if name == "log_softmax" else expected
    y = op(leaf(values, device), axis)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12)
    f = lambda x: op(x, axis)  # noqa: E731
    assert minidl.gradcheck(f, leaf(values, device))
    assert minidl.gradgradcheck(f, leaf(values, device))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_stable_for_huge_logits(dtype):
    logits = minidl.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=dtype, requires_grad=True)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        probabilities = minidl.softmax(logits)
        log_probabilities = minidl.log_softmax(logits)
        (log_probabilities[:, 0].sum() + probabilities[:, 1].sum()).backward()
    np.testing.assert_allclose(probabilities.numpy(), [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]], atol=1e-7)
    np.testing.assert_allclose(
        log_probabilities.numpy(),
        [[0, -2e4, -1e4], [-math.log(3)] * 3, [-math.log(2), -math.log(2), -2e4 - math.log(2)]],
        rtol=1e-6,
    )
    assert np.isfinite(logits.grad.numpy()).all()


def test_softmax_rows_sum_to_one_and_method_forms():
    x = minidl.randn(4, 5)
    np.testing.assert_allclose(x.softmax().numpy().sum(axis=-1), np.ones(4), rtol=1e-6)
    np.testing.assert_allclose(x.softmax(0).numpy().sum(axis=0), np.ones(5), rtol=1e-6)
    np.testing.assert_allclose(x.log_softmax().exp().numpy(), x.softmax().numpy(), rtol=1e-5)


@pytest.mark.parametrize("op", [minidl.softmax, minidl.log_softmax])
def test_softmax_dim_errors_name_the_op(op):
    with pytest.raises(ValueError, match=rf"{op.__name__}: expected dim in \[-2, 1\] for a 2-d input, got 2"):
        op(minidl.ones(2, 3), 2)
