"""Adam and AdamW against their equations written out by hand, in float64."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from minidl.nn import Parameter
from minidl.optim import Adam, AdamW

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


def adam_reference(p, c, d, steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                   maximize=False, decoupled=False):
    """PyTorch's Adam / AdamW in float64 numpy on f(p) = sum(c p**2)/2 + sum(d p)."""
    beta1, beta2 = betas
    p = p.astype(np.float64).copy()
    m, v, v_max = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t in range(1, steps + 1):
        g = c * p + d
        if maximize:
            g = -g
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        v_max = np.maximum(v_max, v)
        m_hat = m / (1 - beta1**t)
        v_hat = (v_max if amsgrad else v) / (1 - beta2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def run(optimizer_class, p0, c, d, steps, device, **hyper):
    p = Parameter(minidl.tensor(p0, dtype="float64", device=device))
    c_t, d_t = minidl.tensor(c, device=device), minidl.tensor(d, device=device)
    optimizer = optimizer_class([p], **hyper)
    for _ in range(steps):
        optimizer.zero_grad()
        ((c_t * p * p).sum() * 0.5 + (d_t * p).sum()).backward()
        optimizer.step()
    return p.numpy(), optimizer


def test_adam_three_steps_by_hand(device):
    # f(p) = p**2 (g = 2p), p0 = 1, lr = 0.1, betas = (0.9, 0.999), eps = 1e-8
    lr, eps = 0.1, 1e-8
    p = 1.0
    g = 2 * p  # step 1
    m1, v1 = 0.1 * g, 0.001 * g**2
    p = p - lr * (m1 / 0.1) / (math.sqrt(v1 / 0.001) + eps)  # = 1 - 0.1 * 2 / (2 + 1e-8)
    g = 2 * p  # step 2
    m2, v2 = 0.9 * m1 + 0.1 * g, 0.999 * v1 + 0.001 * g**2
    p = p - lr * (m2 / (1 - 0.9**2)) / (math.sqrt(v2 / (1 - 0.999**2)) + eps)
    g = 2 * p  # step 3
    m3, v3 = 0.9 * m2 + 0.1 * g, 0.999 * v2 + 0.001 * g**2
    p = p - lr * (m3 / (1 - 0.9**3)) / (math.sqrt(v3 / (1 - 0.999**3)) + eps)

    got, optimizer = run(Adam, np.array([1.0]), np.array([2.0]), np.array([0.0]), 3, device, lr=lr)
    np.testing.assert_allclose(got, [p], rtol=1e-12)
    state = optimizer.state_dict()["state"][0]
    assert state["step"] == 3
    np.testing.assert_allclose(state["exp_avg"].numpy(), [m3], rtol=1e-12)
    np.testing.assert_allclose(state["exp_avg_sq"].numpy(), [v3], rtol=1e-12)
    assert abs(p - 0.7007) < 1e-3  # sanity: three steps of about lr each


def test_adamw_three_steps_by_hand(device):
    # f(p) = p**2 / 2 (g = p), p0 = 1, lr = 0.1, weight_decay = 0.5, eps = 0: each step first p *= 1 - 0.05
    lr, wd = 0.1, 0.5
    p, m, v = 1.0, 0.0, 0.0
    for t in (1, 2, 3):
        g = p
        p = p * (1 - lr * wd)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        p = p - lr * (m / (1 - 0.9**t)) / math.sqrt(v / (1 - 0.999**t))
    got, _ = run(AdamW, np.array([1.0]), np.array([1.0]), np.array([0.0]), 3, device, lr=lr, weight_decay=wd, eps=0.0)
    np.testing.assert_allclose(got, [p], rtol=1e-12)


@fixture_ok
@given(
    shape=shapes,
    lr=st.floats(1e-4, 0.5),
    betas=st.sampled_from([(0.9, 0.999), (0.0, 0.5), (0.5, 0.9)]),
    eps=st.sampled_from([1e-8, 1e-3]),
    weight_decay=st.sampled_from([0.0, 0.1]),
    amsgrad=st.booleans(),
    maximize=st.booleans(),
    decoupled=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_adam_and_adamw_match_the_reference_equations(device, shape, lr, betas, eps, weight_decay, amsgrad,
                                                      maximize, decoupled, seed):
    rng = np.random.default_rng(seed)
    p0, c, d = rng.normal(size=shape), rng.uniform(0.5, 2, size=shape), rng.normal(size=shape)
    hyper = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
    p, _ = run(AdamW if decoupled else Adam, p0, c, d, 3, device, **hyper)
    expected = adam_reference(p0, c, d, 3, decoupled=decoupled, **hyper)
    np.testing.assert_allclose(p, expected, rtol=1e-10, atol=1e-12)


def test_adamw_decays_weights_differently_from_adam():
    p0, c, d = np.array([2.0]), np.array([1.0]), np.array([0.0])
    adam, _ = run(Adam, p0, c, d, 3, "cpu", lr=0.1, weight_decay=0.5)
    adamw, _ = run(AdamW, p0, c, d, 3, "cpu", lr=0.1, weight_decay=0.5)
    assert not np.allclose(adam, adamw)
    assert AdamW([Parameter(minidl.ones(1))]).defaults["weight_decay"] == 1e-2
    assert Adam([Parameter(minidl.ones(1))]).defaults["weight_decay"] == 0.0


def test_amsgrad_keeps_the_running_maximum():
    p = Parameter(minidl.tensor([0.0], dtype="float64"))
    optimizer = Adam([p], lr=0.1, amsgrad=True)
    for g in (10.0, 0.1):
        p.grad = minidl.tensor([g], dtype="float64")
        optimizer.step()
    state = optimizer.state[p]
    v = 0.999 * 0.001 * 100 + 0.001 * 0.01
    np.testing.assert_allclose(state["exp_avg_sq"].numpy(), [v])
    np.testing.assert_allclose(state["max_exp_avg_sq"].numpy(), [0.1])


def test_adam_keeps_float32_and_skips_missing_grads():
    a, b = Parameter(minidl.ones(3)), Parameter(minidl.ones(2))
    a.grad = minidl.ones(3)
    optimizer = Adam([a, b], lr=0.1)
    optimizer.step()
    assert a.dtype == np.float32 and optimizer.state[a]["exp_avg"].dtype == np.float32
    np.testing.assert_allclose(a.numpy(), 0.9, rtol=1e-6)
    np.testing.assert_array_equal(b.numpy(), [1, 1])
    assert not optimizer.state.get(b)


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lr=-0.1), r"expected lr to be a finite number in \[0, inf\], got -0.1"),
        (dict(eps=-1.0), "expected eps to be a finite number"),
        (dict(betas=(1.0, 0.999)), r"expected betas to be a pair \(beta1, beta2\) of numbers in \[0, 1\), got \(1.0, 0.999\)"),
        (dict(betas=(0.9,)), r"expected betas to be a pair .*, got \(0.9,\)"),
        (dict(betas=(0.9, 0.99, 0.999)), r"expected betas to be a pair .*, got \(0.9, 0.99, 0.999\)"),
        (dict(betas=(0.9, float("nan"))), r"expected betas to be a pair .*, got \(0.9, nan\)"),
        (dict(weight_decay=-0.5), "expected weight_decay to be a finite number"),
        (dict(lr=float("nan")), "expected lr to be a finite number .*, got nan"),
    ],
)
def test_adam_rejects_bad_hyperparameters(cls, kwargs, message):
    with pytest.raises(ValueError, match=f"{cls.__name__}: {message}"):
        cls([Parameter(minidl.ones(1))], **kwargs)
