"""Learning-rate schedules against their closed forms, written out independently here."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl.nn import Parameter
from minidl.optim import SGD, Adam, Optimizer
from minidl.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, MultiStepLR, OneCycleLR, StepLR


def sgd(lr=0.1, groups=1, **kwargs):
    return SGD([{"params": [Parameter(minidl.ones(1))]} for _ in range(groups)], lr=lr, **kwargs)


def lrs_over(scheduler, steps):
    """The lr in effect at t = 0, 1, ..., steps - 1 (for the first group)."""
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.optimizer.param_groups[0]["lr"])
        assert scheduler.get_last_lr()[0] == lrs[-1]
        scheduler.optimizer.step()
        scheduler.step()
    return lrs


@given(step_size=st.integers(1, 6), gamma=st.floats(0.05, 1.0), base=st.floats(1e-4, 1.0))
def test_step_lr(step_size, gamma, base):
    lrs = lrs_over(StepLR(sgd(base), step_size=step_size, gamma=gamma), 20)
    assert lrs == pytest.approx([base * gamma ** (t // step_size) for t in range(20)], rel=1e-12)


def test_step_lr_known_values():
    assert lrs_over(StepLR(sgd(1.0), step_size=2, gamma=0.5), 6) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_multi_step_lr_counts_repeated_milestones_twice():
    lrs = lrs_over(MultiStepLR(sgd(1.0), milestones=[5, 2, 5], gamma=0.1), 7)
    assert lrs == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.1, 0.001, 0.001], rel=1e-12)


@given(t_max=st.integers(1, 20), eta_min=st.sampled_from([0.0, 1e-3]), base=st.floats(0.01, 1.0))
def test_cosine_annealing_lr(t_max, eta_min, base):
    lrs = lrs_over(CosineAnnealingLR(sgd(base), T_max=t_max, eta_min=eta_min), 2 * t_max + 3)
    expected = [eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2 for t in range(2 * t_max + 3)]
    assert lrs == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_cosine_annealing_known_values():
    lrs = lrs_over(CosineAnnealingLR(sgd(0.1), T_max=10), 11)
    assert lrs[0] == 0.1 and lrs[5] == pytest.approx(0.05) and lrs[10] == pytest.approx(0.0, abs=1e-15)


def test_lambda_lr_one_function_or_one_per_group():
    scheduler = LambdaLR(sgd(0.5, groups=2), lambda t: 0.9**t)
    assert lrs_over(scheduler, 4) == pytest.approx([0.5 * 0.9**t for t in range(4)])
    scheduler = LambdaLR(sgd(1.0, groups=2), [lambda t: t + 1, lambda t: 1 / (t + 1)])
    scheduler.step()
    scheduler.step()
    assert scheduler.get_last_lr() == pytest.approx([3.0, 1 / 3])


def one_cycle_reference(t, total, max_lr, pct_start=0.3, div=25.0, final_div=1e4, strategy="cos"):
    """The two-phase 1cycle lr at step t, written out."""
    initial, peak_step = max_lr / div, pct_start * total - 1
    low = initial / final_div
    if strategy == "cos":
        anneal = lambda a, b, x: b + (a - b) * (1 + math.cos(math.pi * x)) / 2  # noqa: E731
    else:
        anneal = lambda a, b, x: a + (b - a) * x  # noqa: E731
    if t <= peak_step:
        return anneal(initial, max_lr, t / peak_step)
    return anneal(max_lr, low, (t - peak_step) / (total - 1 - peak_step))


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("total, pct_start", [(100, 0.3), (37, 0.25), (10, 0.5)])
def test_one_cycle_lr_follows_the_formula(strategy, total, pct_start):
    scheduler = OneCycleLR(sgd(), max_lr=2.0, total_steps=total, pct_start=pct_start, anneal_strategy=strategy)
    lrs = lrs_over(scheduler, total)
    expected = [one_cycle_reference(t, total, 2.0, pct_start, strategy=strategy) for t in range(total)]
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_one_cycle_lr_known_points_and_momentum():
    optimizer = sgd(momentum=0.9)
    scheduler = OneCycleLR(optimizer, max_lr=1.0, total_steps=100)  # PyTorch's defaults otherwise
    group = optimizer.param_groups[0]
    assert group["lr"] == pytest.approx(0.04) and group["momentum"] == pytest.approx(0.95)
    for _ in range(29):
        scheduler.step()
    assert group["lr"] == pytest.approx(1.0) and group["momentum"] == pytest.approx(0.85)
    for _ in range(35):  # t = 64: half-way down the second phase
        scheduler.step()
    assert group["lr"] == pytest.approx((1.0 + 4e-6) / 2) and group["momentum"] == pytest.approx(0.9)
    for _ in range(35):
        scheduler.step()
    assert group["lr"] == pytest.approx(4e-6) and group["momentum"] == pytest.approx(0.95)
    assert (group["initial_lr"], group["max_lr"], group["min_lr"]) == pytest.approx((0.04, 1.0, 4e-6))


def test_one_cycle_lr_cycles_adams_beta1_and_three_phases():
    optimizer = Adam([Parameter(minidl.ones(1))], lr=0.1, betas=(0.9, 0.99))
    scheduler = OneCycleLR(optimizer, max_lr=1.0, epochs=10, steps_per_epoch=10, three_phase=True,
                           anneal_strategy="linear")
    lrs, beta1s = [], []
    for _ in range(100):
        lrs.append(scheduler.get_last_lr()[0])
        beta1s.append(optimizer.param_groups[0]["betas"][0])
        scheduler.step()
    assert optimizer.param_groups[0]["betas"][1] == 0.99
    assert lrs[0] == pytest.approx(0.04) and lrs[29] == pytest.approx(1.0)
    assert lrs[58] == pytest.approx(0.04) and lrs[99] == pytest.approx(4e-6)
    assert lrs[44] == pytest.approx(0.04 + (1.0 - 0.04) * (58 - 44) / 29)
    assert beta1s[0] == pytest.approx(0.95) and beta1s[29] == pytest.approx(0.85) and beta1s[99] == pytest.approx(0.95)


def test_one_cycle_lr_per_group_max_lr_and_too_many_steps():
    scheduler = OneCycleLR(sgd(groups=2), max_lr=[1.0, 0.5], total_steps=4)
    assert scheduler.get_last_lr() == pytest.approx([0.04, 0.02])
    for _ in range(4):
        scheduler.step()
    with pytest.raises(ValueError, match="OneCycleLR: tried to step 5 times; the specified number of total steps is 4"):
        scheduler.step()


@pytest.mark.parametrize(
    "make",
    [
        lambda o: StepLR(o, step_size=3, gamma=0.5),
        lambda o: MultiStepLR(o, milestones=[2, 4]),
        lambda o: CosineAnnealingLR(o, T_max=7, eta_min=0.01),
        lambda o: OneCycleLR(o, max_lr=1.0, total_steps=20),
    ],
)
def test_state_dict_resumes_the_schedule(make):
    optimizer = sgd(0.1, momentum=0.9)
    scheduler = make(optimizer)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    optimizer_state, scheduler_state = optimizer.state_dict(), scheduler.state_dict()
    assert "optimizer" not in scheduler_state
    expected = lrs_over(scheduler, 5)

    resumed_optimizer = sgd(0.7, momentum=0.2)  # PyTorch's order: build both, then load both
    resumed = make(resumed_optimizer)
    resumed_optimizer.load_state_dict(optimizer_state)
    resumed.load_state_dict(scheduler_state)
    assert resumed.last_epoch == 5
    assert lrs_over(resumed, 5) == pytest.approx(expected, rel=1e-12)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="StepLR: step_size must be a positive integer, got 0"):
        StepLR(sgd(), step_size=0)
    with pytest.raises(ValueError, match="CosineAnnealingLR: T_max must be positive"):
        CosineAnnealingLR(sgd(), T_max=0)
    with pytest.raises(ValueError, match="LambdaLR: expected 2 lr_lambdas"):
        LambdaLR(sgd(groups=2), [lambda t: 1.0])
    with pytest.raises(TypeError, match="LambdaLR: lr_lambda must be a function"):
        LambdaLR(sgd(), 0.5)
    with pytest.raises(TypeError, match="StepLR: expected an Optimizer, got list"):
        StepLR([], step_size=1)
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(sgd(), step_size=1, last_epoch=3)
    with pytest.raises(ValueError, match="either total_steps OR"):
        OneCycleLR(sgd(), max_lr=1.0)
    with pytest.raises(ValueError, match="anneal_strategy must be 'cos' or 'linear', got 'exp'"):
        OneCycleLR(sgd(), max_lr=1.0, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="pct_start"):
        OneCycleLR(sgd(), max_lr=1.0, total_steps=10, pct_start=1.5)
    with pytest.raises(ValueError, match="expected 2 values of max_lr"):
        OneCycleLR(sgd(groups=2), max_lr=[1.0], total_steps=10)

    class Plain(Optimizer):
        def __init__(self, params):
            super().__init__(params, dict(lr=0.1))

    with pytest.raises(ValueError, match="must support momentum or betas"):
        OneCycleLR(Plain([Parameter(minidl.ones(1))]), max_lr=1.0, total_steps=10)
    OneCycleLR(Plain([Parameter(minidl.ones(1))]), max_lr=1.0, total_steps=10, cycle_momentum=False)
