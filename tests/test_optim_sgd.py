"""SGD against hand-computed updates, and the Optimizer base: param groups, zero_grad, state dicts."""

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from minidl.nn import Parameter
from minidl.optim import SGD, Adam

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


def quadratic_loss(p, c, d):
    """f(p) = sum(c * p**2) / 2 + sum(d * p);  df/dp = c * p + d"""
    return (c * p * p).sum() * 0.5 + (d * p).sum()


def sgd_reference(p, c, d, steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                  maximize=False):
    """PyTorch's SGD written out in float64 numpy, on the quadratic above."""
    p, buffer = p.astype(np.float64).copy(), None
    for _ in range(steps):
        g = c * p + d
        g = -g if maximize else g  # (PyTorch >= 1.13: the sign flips first, so weight decay still shrinks p)
        g = g + weight_decay * p
        if momentum:
            buffer = g.copy() if buffer is None else momentum * buffer + (1 - dampening) * g
            g = g + momentum * buffer if nesterov else buffer
        p = p - lr * g
    return p


def run(optimizer_class, p0, c, d, steps, device, **hyper):
    p = Parameter(minidl.tensor(p0, dtype="float64", device=device))
    c_t, d_t = minidl.tensor(c, device=device), minidl.tensor(d, device=device)
    optimizer = optimizer_class([p], **hyper)
    for _ in range(steps):
        optimizer.zero_grad()
        quadratic_loss(p, c_t, d_t).backward()
        optimizer.step()
    return p.numpy(), optimizer


def test_sgd_momentum_three_steps_by_hand(device):
    # f(p) = p**2, p0 = 1, lr = 0.1, momentum = 0.9:
    #   g = 2.00, b = 2.00,                p = 1    - 0.1 * 2.00 = 0.80
    #   g = 1.60, b = 0.9 * 2.00 + 1.60 = 3.40, p = 0.80 - 0.34 = 0.46
    #   g = 0.92, b = 0.9 * 3.40 + 0.92 = 3.98, p = 0.46 - 0.398 = 0.062
    p, optimizer = run(SGD, np.array([1.0]), np.array([2.0]), np.array([0.0]), 3, device, lr=0.1, momentum=0.9)
    np.testing.assert_allclose(p, [0.062], rtol=1e-12)
    np.testing.assert_allclose(optimizer.state_dict()["state"][0]["momentum_buffer"].numpy(), [3.98], rtol=1e-12)


def test_sgd_nesterov_weight_decay_three_steps_by_hand(device):
    # f(p) = p**2 / 2 (g = p), p0 = 1, lr = 0.1, momentum = 0.5, weight_decay = 1, nesterov:
    #   g = 1 + 1 = 2,          b = 2,                   step = 2 + 0.5 * 2 = 3,      p = 0.7
    #   g = 0.7 + 0.7 = 1.4,    b = 0.5 * 2 + 1.4 = 2.4, step = 1.4 + 1.2 = 2.6,     p = 0.44
    #   g = 0.88,               b = 1.2 + 0.88 = 2.08,   step = 0.88 + 1.04 = 1.92,  p = 0.248
    p, _ = run(SGD, np.array([1.0]), np.array([1.0]), np.array([0.0]), 3, device,
               lr=0.1, momentum=0.5, weight_decay=1.0, nesterov=True)
    np.testing.assert_allclose(p, [0.248], rtol=1e-12)


@fixture_ok
@given(
    shape=shapes,
    lr=st.floats(0.0, 0.5),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    dampening=st.sampled_from([0.0, 0.3]),
    weight_decay=st.sampled_from([0.0, 0.01, 0.5]),
    nesterov=st.booleans(),
    maximize=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_sgd_matches_the_reference_equations(device, shape, lr, momentum, dampening, weight_decay, nesterov,
                                             maximize, seed):
    if nesterov and (momentum == 0 or dampening != 0):
        nesterov = False
    rng = np.random.default_rng(seed)
    p0, c, d = rng.normal(size=shape), rng.uniform(0.5, 2, size=shape), rng.normal(size=shape)
    hyper = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                 maximize=maximize)
    p, _ = run(SGD, p0, c, d, 3, device, **hyper)
    np.testing.assert_allclose(p, sgd_reference(p0, c, d, 3, **hyper), rtol=1e-12, atol=1e-12)


def test_sgd_keeps_float32_parameters_float32():
    p = Parameter(minidl.ones(3))
    p.grad = minidl.ones(3)
    SGD([p], lr=0.5, momentum=0.9).step()
    assert p.dtype == np.float32
    np.testing.assert_allclose(p.numpy(), 0.5)


def test_parameters_without_grad_are_skipped():
    a, b = Parameter(minidl.ones(2)), Parameter(minidl.ones(2))
    optimizer = SGD([a, b], lr=1.0, momentum=0.9)
    a.grad = minidl.ones(2)
    optimizer.step()
    np.testing.assert_array_equal(a.numpy(), [0, 0])
    np.testing.assert_array_equal(b.numpy(), [1, 1])
    assert b not in optimizer.state or not optimizer.state[b]


def test_param_groups_take_their_own_hyperparameters_and_the_defaults_otherwise():
    a, b = Parameter(minidl.ones(1)), Parameter(minidl.ones(1))
    optimizer = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.0)
    assert optimizer.param_groups[0]["lr"] == 0.1 and optimizer.param_groups[1]["lr"] == 0.5
    assert optimizer.param_groups[1]["momentum"] == 0.0
    a.grad, b.grad = minidl.ones(1), minidl.ones(1)
    optimizer.step()
    np.testing.assert_allclose(a.numpy(), [0.9])
    np.testing.assert_allclose(b.numpy(), [0.5])


def test_add_param_group_and_the_closure():
    a, b = Parameter(minidl.ones(1)), Parameter(minidl.ones(1))
    optimizer = SGD([a], lr=1.0)
    optimizer.add_param_group({"params": b, "lr": 0.25})

    def closure():
        optimizer.zero_grad()
        loss = (a * 2 + b * 4).sum()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert loss.item() == 6
    np.testing.assert_allclose([a.item(), b.item()], [-1.0, 0.0])


def test_zero_grad_to_none_or_to_zeros():
    p = Parameter(minidl.ones(2))
    p.grad = minidl.ones(2)
    optimizer = SGD([p])
    optimizer.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), [0, 0])
    optimizer.zero_grad()
    assert p.grad is None


def test_state_dict_has_pytorchs_format():
    a, b = Parameter(minidl.ones(2)), Parameter(minidl.ones(3))
    optimizer = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    a.grad, b.grad = minidl.ones(2), minidl.ones(3)
    optimizer.step()
    state = optimizer.state_dict()
    assert set(state) == {"state", "param_groups"}
    assert [g["params"] for g in state["param_groups"]] == [[0], [1]]
    assert state["param_groups"][1]["lr"] == 0.5 and state["param_groups"][0]["nesterov"] is False
    assert set(state["state"]) == {0, 1}
    assert state["state"][1]["momentum_buffer"].shape == (3,)


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True), lambda ps: Adam(ps, lr=0.1)])
def test_resuming_from_a_state_dict_continues_exactly(make, device):
    rng = np.random.default_rng(0)
    p0, c, d = rng.normal(size=(3, 2)), rng.uniform(1, 2, size=(3, 2)), rng.normal(size=(3, 2))
    c_t, d_t = minidl.tensor(c, device=device), minidl.tensor(d, device=device)

    def train(p, optimizer, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            quadratic_loss(p, c_t, d_t).backward()
            optimizer.step()

    p = Parameter(minidl.tensor(p0, device=device))
    optimizer = make([p])
    train(p, optimizer, 2)
    saved_p, saved_state = p.numpy().copy(), copy.deepcopy(optimizer.state_dict())  # it holds references
    train(p, optimizer, 2)

    resumed = Parameter(minidl.tensor(saved_p, device=device))
    fresh = make([resumed])
    fresh.load_state_dict(saved_state)
    train(resumed, fresh, 2)
    np.testing.assert_array_equal(resumed.numpy(), p.numpy())
    assert fresh.state[resumed] is not optimizer.state[p]


def test_load_state_dict_copies_and_restores_hyperparameters():
    p = Parameter(minidl.ones(2))
    p.grad = minidl.ones(2)
    first = SGD([p], lr=0.3, momentum=0.9)
    first.step()
    second = SGD([Parameter(minidl.ones(2))], lr=0.01, momentum=0.5)
    second.load_state_dict(first.state_dict())
    assert second.param_groups[0]["lr"] == 0.3 and second.param_groups[0]["momentum"] == 0.9
    (buffer,) = [s["momentum_buffer"] for s in second.state.values()]
    buffer.data[...] = 7
    assert first.state[p]["momentum_buffer"].numpy().tolist() == [1, 1]


def test_load_state_dict_rejects_mismatches_and_changes_nothing():
    p = Parameter(minidl.ones(2))
    p.grad = minidl.ones(2)
    source = SGD([p], lr=0.3, momentum=0.9)
    source.step()
    saved = source.state_dict()

    target = SGD([Parameter(minidl.ones(3))], lr=0.01, momentum=0.5)
    with pytest.raises(ValueError, match=r"SGD.load_state_dict: state\[0\]\['momentum_buffer'\] has shape \(2,\)"):
        target.load_state_dict(saved)
    assert target.param_groups[0]["lr"] == 0.01 and not target.state

    two_groups = SGD([{"params": [Parameter(minidl.ones(2))]}, {"params": [Parameter(minidl.ones(2))]}])
    with pytest.raises(ValueError, match="1 parameter groups, the optimizer has 2"):
        two_groups.load_state_dict(saved)
    with pytest.raises(ValueError, match="group 0 has 1 parameters in the state dict but 2"):
        SGD([Parameter(minidl.ones(2)), Parameter(minidl.ones(2))]).load_state_dict(saved)
    with pytest.raises(ValueError, match="expected a dict with keys 'state' and 'param_groups'"):
        target.load_state_dict({"state": {}})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lr=-1.0), r"SGD: expected lr to be a finite number in \[0, inf\], got -1.0"),
        (dict(momentum=-0.1), "SGD: expected momentum to be a finite number"),
        (dict(weight_decay=-1.0), "SGD: expected weight_decay to be a finite number"),
        (dict(lr=float("nan")), "SGD: expected lr to be a finite number .*, got nan"),
        (dict(momentum=float("inf")), "SGD: expected momentum to be a finite number .*, got inf"),
        (dict(nesterov=True), "Nesterov momentum requires momentum > 0 and dampening = 0"),
        (dict(nesterov=True, momentum=0.9, dampening=0.1), "Nesterov momentum requires"),
    ],
)
def test_sgd_rejects_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SGD([Parameter(minidl.ones(1))], **kwargs)


def test_bad_parameter_lists_are_named():
    p = Parameter(minidl.ones(1))
    with pytest.raises(ValueError, match="SGD: got an empty parameter list"):
        SGD([])
    with pytest.raises(TypeError, match="got a single Tensor; pass \\[tensor\\]"):
        SGD(p)
    with pytest.raises(TypeError, match="SGD: can only optimise Tensors, got a list"):
        SGD([[p]])
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match="leaf tensors"):
        SGD([p * 2])
    with pytest.raises(TypeError, match="an ordered collection \\(a list\\), not a set"):
        SGD([{"params": {p}}])
    with pytest.raises(ValueError, match="has no 'params' entry"):
        SGD([{"lr": 0.1}])
