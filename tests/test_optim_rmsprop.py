"""RMSprop against its equations written out by hand in float64 numpy; state dicts; errors."""

import copy
import itertools
import math

import numpy as np
import pytest

import minidl
from minidl.nn import Parameter
from minidl.optim import SGD, RMSprop


def rmsprop_reference(p, c, d, steps, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                      centered=False, maximize=False):
    """PyTorch's RMSprop in float64 numpy on f(p) = sum(c p**2)/2 + sum(d p)."""
    p = p.astype(np.float64).copy()
    v, a, b = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for _ in range(steps):
        g = c * p + d
        if maximize:
            g = -g
        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            a = alpha * a + (1 - alpha) * g
            denom = np.sqrt(v - a * a) + eps
        else:
            denom = np.sqrt(v) + eps
        if momentum > 0:
            b = momentum * b + g / denom
            p = p - lr * b
        else:
            p = p - lr * g / denom
    return p, v, a, b


def run(p0, c, d, steps, device, **hyper):
    p = Parameter(minidl.tensor(p0, dtype="float64", device=device))
    c_t, d_t = minidl.tensor(c, device=device), minidl.tensor(d, device=device)
    optimizer = RMSprop([p], **hyper)
    for _ in range(steps):
        optimizer.zero_grad()
        ((c_t * p * p).sum() * 0.5 + (d_t * p).sum()).backward()
        optimizer.step()
    return p, optimizer


def test_rmsprop_two_steps_by_hand(device):
    # f(p) = p**2 (g = 2p), p0 = 1, lr = 0.01, alpha = 0.99, eps = 0:
    #   step 1: g = 2, v = 0.01 * 4 = 0.04, p = 1 - 0.01 * 2 / 0.2 = 0.9  (no bias correction: 10 lr)
    #   step 2: g = 1.8, v = 0.99 * 0.04 + 0.01 * 3.24 = 0.0720, p = 0.9 - 0.01 * 1.8 / sqrt(0.072)
    p2 = 0.9 - 0.01 * 1.8 / math.sqrt(0.0720)
    p, optimizer = run(np.array([1.0]), np.array([2.0]), np.array([0.0]), 2, device, eps=0.0)
    np.testing.assert_allclose(p.numpy(), [p2], rtol=1e-12)
    state = optimizer.state[p]
    assert state["step"] == 2 and set(state) == {"step", "square_avg"}
    np.testing.assert_allclose(state["square_avg"].numpy(), [0.072], rtol=1e-12)


@pytest.mark.parametrize("momentum, centered, weight_decay, maximize",
                         [(m, c, w, False) for m, c, w in itertools.product([0.0, 0.9], [False, True], [0.0, 0.1])]
                         + [(0.5, True, 0.1, True)])
def test_rmsprop_matches_the_reference_equations(device, momentum, centered, weight_decay, maximize):
    rng = np.random.default_rng(int(momentum * 10) + 2 * centered + int(weight_decay * 100))
    shape = (3, 2)
    p0, c, d = rng.normal(size=shape), rng.uniform(0.5, 2, size=shape), rng.normal(size=shape)
    hyper = dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=weight_decay, momentum=momentum, centered=centered,
                 maximize=maximize)
    p, optimizer = run(p0, c, d, 5, device, **hyper)
    expected, v, a, b = rmsprop_reference(p0, c, d, 5, **hyper)
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-12, atol=1e-14)
    state = optimizer.state[p]
    assert state["step"] == 5
    np.testing.assert_allclose(state["square_avg"].numpy(), v, rtol=1e-12)
    assert ("grad_avg" in state) == centered and ("momentum_buffer" in state) == (momentum > 0)
    if centered:
        np.testing.assert_allclose(state["grad_avg"].numpy(), a, rtol=1e-12, atol=1e-15)
    if momentum > 0:
        np.testing.assert_allclose(state["momentum_buffer"].numpy(), b, rtol=1e-12)
    assert p.device == minidl.Device(device) and state["square_avg"].device == p.device


def test_rmsprop_keeps_float32_and_skips_missing_grads():
    a, b = Parameter(minidl.ones(3)), Parameter(minidl.ones(2))
    a.grad = minidl.ones(3)
    optimizer = RMSprop([a, b], lr=0.01, centered=True, momentum=0.9)
    optimizer.step()
    assert a.dtype == np.float32
    assert all(t.dtype == np.float32 for k, t in optimizer.state[a].items() if k != "step")
    # v = 0.01, grad_avg = 0.01, sqrt(v - a**2) = sqrt(0.0099); p = 1 - 0.01 / sqrt(0.0099)
    np.testing.assert_allclose(a.numpy(), 1 - 0.01 / math.sqrt(0.0099), rtol=1e-5)
    np.testing.assert_array_equal(b.numpy(), [1, 1])
    assert not optimizer.state.get(b)


@pytest.mark.parametrize("hyper", [dict(momentum=0.9, centered=True, weight_decay=0.01), dict()])
def test_state_dict_round_trips_through_minidl_save(device, tmp_path, hyper):
    rng = np.random.default_rng(0)
    p0, c, d = rng.normal(size=(4,)), rng.uniform(1, 2, size=(4,)), rng.normal(size=(4,))
    c_t, d_t = minidl.tensor(c, device=device), minidl.tensor(d, device=device)

    def train(p, optimizer, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            ((c_t * p * p).sum() * 0.5 + (d_t * p).sum()).backward()
            optimizer.step()

    p = Parameter(minidl.tensor(p0, device=device))
    optimizer = RMSprop([p], lr=0.05, alpha=0.9, **hyper)
    train(p, optimizer, 3)
    minidl.save({"p": p, "optimizer": optimizer.state_dict()}, tmp_path / "ckpt.npz")
    train(p, optimizer, 3)

    saved = minidl.load(tmp_path / "ckpt.npz")
    resumed = Parameter(minidl.tensor(saved["p"].numpy(), device=device))
    fresh = RMSprop([resumed], lr=0.5)  # the saved hyper-parameters replace these
    fresh.load_state_dict(saved["optimizer"])
    assert fresh.param_groups[0]["lr"] == 0.05 and fresh.param_groups[0]["alpha"] == 0.9
    assert fresh.state[resumed]["step"] == 3
    assert fresh.state[resumed]["square_avg"].device == resumed.device
    train(resumed, fresh, 3)
    np.testing.assert_array_equal(resumed.numpy(), p.numpy())


def test_another_kinds_state_dict_is_refused():
    p = Parameter(minidl.ones(3))
    p.grad = minidl.ones(3)
    sgd = SGD([p], lr=0.1, momentum=0.9)
    sgd.step()
    with pytest.raises(ValueError, match=r"RMSprop.load_state_dict: expected the state dict of a RMSprop"):
        RMSprop([Parameter(minidl.ones(3))]).load_state_dict(sgd.state_dict())
    state = copy.deepcopy(RMSprop([Parameter(minidl.ones(3))]).state_dict())
    state["state"] = {0: {"exp_avg": minidl.ones(3)}}
    with pytest.raises(ValueError, match=r"expected the per-parameter state of a RMSprop .*got state\[0\] with \['exp_avg'\]"):
        RMSprop([Parameter(minidl.ones(3))]).load_state_dict(state)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(lr=-0.1), ValueError, r"expected lr to be a finite number in \[0, inf\], got -0.1"),
        (dict(lr="0.1"), TypeError, r"expected lr to be a finite number .*, got '0.1'"),
        (dict(alpha=1.5), ValueError, r"expected alpha to be a finite number in \[0, 1\], got 1.5"),
        (dict(alpha=-0.1), ValueError, r"expected alpha to be a finite number in \[0, 1\], got -0.1"),
        (dict(eps=-1.0), ValueError, "expected eps to be a finite number"),
        (dict(weight_decay=float("nan")), ValueError, "expected weight_decay to be a finite number .*, got nan"),
        (dict(momentum=-0.9), ValueError, "expected momentum to be a finite number .*, got -0.9"),
        (dict(centered="yes"), TypeError, "expected centered to be True or False, got 'yes'"),
    ],
)
def test_rmsprop_rejects_bad_hyperparameters(kwargs, error, message):
    with pytest.raises(error, match=f"RMSprop: {message}"):
        RMSprop([Parameter(minidl.ones(1))], **kwargs)


def test_an_rmsprop_state_dict_loaded_into_sgd_is_named_as_rmsprop():
    w = minidl.zeros(2, requires_grad=True)
    state = minidl.optim.RMSprop([w], lr=0.1, momentum=0.5).state_dict()
    with pytest.raises(ValueError, match=r"it comes from RMSprop \(it has 'alpha'\)"):
        minidl.optim.SGD([w], lr=0.1).load_state_dict(state)
