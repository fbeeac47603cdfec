"""minidl.nn.init: fans, gains, the bounds and spreads of each scheme, generators, PyTorch's layer defaults."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn as nn
from minidl.nn import init

weight_shapes = st.lists(st.integers(1, 5), min_size=2, max_size=4).map(tuple)


@given(weight_shapes)
def test_fans_follow_pytorch(shape):
    receptive = math.prod(shape[2:])
    assert init.calculate_fan_in_and_fan_out(minidl.zeros(shape)) == (shape[1] * receptive, shape[0] * receptive)
    assert init._calculate_fan_in_and_fan_out is init.calculate_fan_in_and_fan_out


def test_fan_of_a_vector_is_an_error():
    with pytest.raises(ValueError, match=r"fewer than 2 dimensions.*\(5,\)"):
        init.kaiming_uniform_(minidl.zeros(5))


def test_gains():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    assert init.calculate_gain("selu") == pytest.approx(0.75)
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


def test_fills_in_place_without_recording():
    w = nn.Parameter(minidl.zeros(3, 4))
    data = w.data
    assert init.uniform_(w, -1, 1) is w
    assert w.data is data and w.is_leaf and w.grad_fn is None
    assert init.zeros_(w) is w and np.all(w.numpy() == 0)
    assert np.all(init.ones_(w).numpy() == 1)
    assert np.all(init.constant_(w, 2.5).numpy() == 2.5)


def _sample(fill, shape=(200, 300), **kwargs):
    w = minidl.zeros(*shape, dtype=np.float64)
    fill(w, **kwargs)
    return w.numpy()


def test_uniform_and_normal_statistics():
    u = _sample(init.uniform_, a=-2.0, b=3.0)
    assert u.min() >= -2 and u.max() < 3
    assert u.mean() == pytest.approx(0.5, abs=0.02) and u.var() == pytest.approx(25 / 12, rel=0.02)
    z = _sample(init.normal_, mean=1.0, std=0.5)
    assert z.mean() == pytest.approx(1.0, abs=0.01) and z.std() == pytest.approx(0.5, rel=0.02)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming(mode):
    shape = (200, 30, 3, 3)
    fan = 30 * 9 if mode == "fan_in" else 200 * 9
    std = math.sqrt(2) / math.sqrt(fan)
    u = _sample(init.kaiming_uniform_, shape, mode=mode, nonlinearity="relu")
    assert np.abs(u).max() <= math.sqrt(3) * std and np.abs(u).max() > 0.99 * math.sqrt(3) * std
    assert u.std() == pytest.approx(std, rel=0.02)
    z = _sample(init.kaiming_normal_, shape, mode=mode, nonlinearity="relu")
    assert z.std() == pytest.approx(std, rel=0.02) and z.mean() == pytest.approx(0, abs=0.01 * std * 10)


def test_xavier():
    fan_in, fan_out = 100, 300
    std = 2.0 * math.sqrt(2 / (fan_in + fan_out))
    u = _sample(init.xavier_uniform_, (fan_out, fan_in), gain=2.0)
    assert np.abs(u).max() <= math.sqrt(3) * std and u.std() == pytest.approx(std, rel=0.02)
    z = _sample(init.xavier_normal_, (fan_out, fan_in), gain=2.0)
    assert z.std() == pytest.approx(std, rel=0.02)


def test_bad_arguments():
    w = minidl.zeros(2, 2)
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_normal_(w, mode="fan")
    with pytest.raises(ValueError, match="a <= b"):
        init.uniform_(w, 1, 0)
    with pytest.raises(ValueError, match="std"):
        init.normal_(w, std=-1)


def test_manual_seed_and_explicit_generator_repeat():
    minidl.manual_seed(3)
    a = init.normal_(minidl.zeros(4, 4)).numpy()
    minidl.manual_seed(3)
    b = init.normal_(minidl.zeros(4, 4)).numpy()
    np.testing.assert_array_equal(a, b)
    c = init.kaiming_uniform_(minidl.zeros(4, 4), generator=np.random.default_rng(1)).numpy()
    d = init.kaiming_uniform_(minidl.zeros(4, 4), generator=np.random.default_rng(1)).numpy()
    np.testing.assert_array_equal(c, d)
    assert not np.array_equal(a, init.normal_(minidl.zeros(4, 4)).numpy())


def test_keeps_dtype_and_device(device):
    w = minidl.zeros(3, 5, device=device, dtype=np.float64)
    init.xavier_uniform_(w, generator=np.random.default_rng(0))  # a host generator fills a GPU tensor too
    assert w.dtype == np.float64 and w.device == device and np.any(w.numpy() != 0)


def test_pytorch_layer_defaults():
    fc = nn.Linear(50, 400)
    bound = 1 / math.sqrt(50)  # kaiming_uniform_(a=sqrt(5)) works out to U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    w, b = fc.weight.numpy(), fc.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.03)
    assert np.abs(b).max() <= bound
    bn = nn.BatchNorm2d(4)
    assert np.all(bn.weight.numpy() == 1) and np.all(bn.bias.numpy() == 0)
    emb = nn.Embedding(500, 40, padding_idx=0)
    assert emb.weight.numpy()[1:].std() == pytest.approx(1.0, rel=0.03)
    assert np.all(emb.weight.numpy()[0] == 0)


def test_default_linear_on_a_conv_shaped_weight():
    w, b = minidl.zeros(8, 3, 5, 5), minidl.zeros(8)
    init.default_linear_(w, b)
    bound = 1 / math.sqrt(3 * 25)
    assert np.abs(w.numpy()).max() <= bound and np.abs(b.numpy()).max() <= bound


def test_empty_tensor_is_left_alone():
    w = minidl.zeros(0, 3)
    assert init.kaiming_uniform_(w) is w and init.xavier_normal_(w).shape == (0, 3)
