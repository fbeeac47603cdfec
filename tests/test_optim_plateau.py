"""ReduceLROnPlateau against PyTorch's rules, worked out by hand here (PyTorch is not installed):
traces of (metric -> lr after the step) for patience, cooldown, min_lr, eps, both modes and
both threshold modes, several param groups; a plain simulation of the rules for drawn
sequences; state_dict resumes; clear errors."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl.nn import Parameter
from minidl.optim import SGD
from minidl.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau


def sgd(*lrs):
    """An SGD with one param group per lr."""
    return SGD([{"params": [Parameter(minidl.ones(1))], "lr": lr} for lr in lrs], lr=lrs[0])


def lrs_after_each_step(scheduler, metrics, group=0):
    out = []
    for metric in metrics:
        scheduler.step(metric)
        out.append(scheduler.optimizer.param_groups[group]["lr"])
        assert scheduler.get_last_lr()[group] == out[-1]
    return out


def test_patience_two_reduces_after_the_third_bad_epoch():
    # best: 10 (epoch 1), 9 (epoch 2); epochs 3, 4, 5 are bad: 3 > patience at epoch 5 -> 1.0 * 0.1
    # then epochs 6, 7, 8 bad again -> 0.01 at epoch 8
    metrics = [10, 9, 9, 9.5, 9.2, 9.1, 9.3, 9.0]
    lrs = lrs_after_each_step(ReduceLROnPlateau(sgd(1.0), patience=2), metrics)
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01], rel=1e-15)


def test_patience_zero_reduces_at_every_bad_epoch():
    # the first epoch sets the baseline; every later epoch without improvement reduces
    metrics = [5, 6, 4, 4, 7]
    assert lrs_after_each_step(ReduceLROnPlateau(sgd(1.0), patience=0, factor=0.5), metrics) == [
        1.0, 0.5, 0.5, 0.25, 0.125]


def test_rel_threshold_in_min_mode_needs_best_times_one_minus_threshold():
    # threshold 0.5, rel: better means metric < best * 0.5
    scheduler = ReduceLROnPlateau(sgd(1.0), patience=0, factor=0.5, threshold=0.5)
    # 100 (best); 60 is not < 50 -> bad, lr 0.5; 40 < 50 -> best 40; 20 = 40 * 0.5 is not < 20 -> bad
    assert lrs_after_each_step(scheduler, [100, 60, 40, 20]) == [1.0, 0.5, 0.5, 0.25]
    assert scheduler.best == 40


def test_abs_threshold_in_min_mode_needs_best_minus_threshold():
    scheduler = ReduceLROnPlateau(sgd(1.0), patience=0, factor=0.5, threshold=1.0, threshold_mode="abs")
    # 10 (best); 9.5 not < 9 -> bad; 8.5 < 9 -> best; 7.5 = 8.5 - 1 not < -> bad; 7 < 7.5 -> best
    assert lrs_after_each_step(scheduler, [10, 9.5, 8.5, 7.5, 7.0]) == [1.0, 0.5, 0.5, 0.25, 0.25]
    assert scheduler.best == 7.0


def test_max_mode_rel_and_abs():
    rel = ReduceLROnPlateau(sgd(1.0), mode="max", patience=0, factor=0.5, threshold=0.5)
    # rel, max: better means metric > best * 1.5: 2 (best); 2.9 not > 3 -> bad; 3.1 > 3 -> best; 4 not > 4.65 -> bad
    assert lrs_after_each_step(rel, [2, 2.9, 3.1, 4]) == [1.0, 0.5, 0.5, 0.25]
    absolute = ReduceLROnPlateau(sgd(1.0), mode="max", patience=0, factor=0.5, threshold=0.5, threshold_mode="abs")
    # abs, max: better means metric > best + 0.5: 2 (best); 2.5 not > 2.5 -> bad; 2.6 > 2.5 -> best
    assert lrs_after_each_step(absolute, [2, 2.5, 2.6]) == [1.0, 0.5, 0.5]


def test_max_mode_with_negative_metrics_uses_the_same_formula():
    # rel, max, best = -10: the dynamic threshold is -10 * 1.5 = -15, so -12 counts as better (as in PyTorch)
    scheduler = ReduceLROnPlateau(sgd(1.0), mode="max", patience=0, factor=0.5, threshold=0.5)
    assert lrs_after_each_step(scheduler, [-10, -12]) == [1.0, 1.0] and scheduler.best == -12


def test_cooldown_counts_neither_good_nor_bad_epochs():
    # patience 1, cooldown 2: epochs 2, 3 bad -> reduce at epoch 3, cooldown 2
    # epochs 4, 5: in cooldown (counter 2 -> 1 -> 0), bad epochs reset to 0
    # epochs 6, 7 bad: 2 > 1 at epoch 7 -> reduce again
    metrics = [1.0, 2, 2, 2, 2, 2, 2, 2]
    scheduler = ReduceLROnPlateau(sgd(1.0), patience=1, cooldown=2)
    lrs = lrs_after_each_step(scheduler, metrics)
    assert lrs == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01])
    assert scheduler.cooldown_counter == 1 and scheduler.num_bad_epochs == 0  # epoch 8: in cooldown again


def test_an_improvement_during_cooldown_still_sets_best():
    scheduler = ReduceLROnPlateau(sgd(1.0), patience=0, cooldown=1, factor=0.5)
    assert lrs_after_each_step(scheduler, [5, 6, 3, 4]) == [1.0, 0.5, 0.5, 0.25]
    assert scheduler.best == 3


def test_min_lr_as_a_number_and_per_group():
    # factor 0.1, min_lr 0.05: group 0 goes 1.0 -> 0.1 -> 0.05 (floor); group 1 0.5 -> 0.05 -> stays
    scheduler = ReduceLROnPlateau(sgd(1.0, 0.5), patience=0, factor=0.1, min_lr=0.05)
    trace = []
    for metric in [1, 2, 2, 2]:
        scheduler.step(metric)
        trace.append(scheduler.get_last_lr())
    assert [lrs[0] for lrs in trace] == pytest.approx([1.0, 0.1, 0.05, 0.05], rel=1e-15)
    assert [lrs[1] for lrs in trace] == pytest.approx([0.5, 0.05, 0.05, 0.05], rel=1e-15)
    # one min_lr per group: group 0 1.0 -> 0.2 (floor); group 1 0.5 -> 0.05 -> 0.005 -> 0.001 (floor)
    scheduler = ReduceLROnPlateau(sgd(1.0, 0.5), patience=0, factor=0.1, min_lr=[0.2, 0.001])
    for metric in [1, 2, 2, 2, 2]:
        scheduler.step(metric)
    assert scheduler.get_last_lr() == pytest.approx([0.2, 0.001], rel=1e-15)


def test_several_groups_reduce_together_each_from_its_own_lr():
    scheduler = ReduceLROnPlateau(sgd(1.0, 0.01), patience=1, factor=0.5)
    for metric in [3, 3, 3]:
        scheduler.step(metric)
    assert scheduler.get_last_lr() == [0.5, 0.005]
    assert [g["lr"] for g in scheduler.optimizer.param_groups] == [0.5, 0.005]


def test_a_change_of_eps_or_less_is_not_applied():
    # 1e-8 * 0.5 = 5e-9: the change 5e-9 is not > eps = 1e-8, so the lr stays
    scheduler = ReduceLROnPlateau(sgd(1e-8, 1.0), patience=0, factor=0.5)
    scheduler.step(1)
    scheduler.step(1)
    assert scheduler.get_last_lr() == [1e-8, 0.5]
    # a change of exactly eps is not applied either: 1.0 -> 0.5 is a change of 0.5, not > eps = 0.5
    scheduler = ReduceLROnPlateau(sgd(1.0, 2.0), patience=0, factor=0.5, eps=0.5)
    scheduler.step(1)
    scheduler.step(1)
    assert scheduler.get_last_lr() == [1.0, 1.0]
    # eps = 0: every change counts; min_lr equal to the lr: no change at all
    scheduler = ReduceLROnPlateau(sgd(1e-8, 0.3), patience=0, factor=0.5, eps=0, min_lr=[0, 0.3])
    scheduler.step(1)
    scheduler.step(1)
    assert scheduler.get_last_lr() == [5e-9, 0.3]


def test_nan_is_a_bad_epoch_and_a_tensor_is_a_metric(device):
    scheduler = ReduceLROnPlateau(sgd(1.0), patience=1, factor=0.5)
    lrs = lrs_after_each_step(scheduler, [minidl.tensor(2.0, device=device), math.nan, math.nan])
    assert lrs == [1.0, 1.0, 0.5] and scheduler.best == 2.0
    with pytest.raises(TypeError, match="ReduceLROnPlateau.step: expected a number or a one-element Tensor"):
        scheduler.step(minidl.ones(2, device=device))


def simulate(metrics, lr, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps):
    """PyTorch's rules, written out once more in plain Python: the lr after each step."""
    def better(a, best):
        if threshold_mode == "rel":
            return a < best * (1 - threshold) if mode == "min" else a > best * (1 + threshold)
        return a < best - threshold if mode == "min" else a > best + threshold

    best = math.inf if mode == "min" else -math.inf
    bad = cooling = 0
    out = []
    for metric in metrics:
        if better(metric, best):
            best, bad = metric, 0
        else:
            bad += 1
        if cooling > 0:
            cooling, bad = cooling - 1, 0
        if bad > patience:
            candidate = max(lr * factor, min_lr)
            lr = candidate if lr - candidate > eps else lr
            cooling, bad = cooldown, 0
        out.append(lr)
    return out


@settings(max_examples=100)
@given(metrics=st.lists(st.sampled_from([-1.0, 0.0, 0.5, 1.0, 1.05, 2.0, math.nan]), max_size=30),
       mode=st.sampled_from(["min", "max"]), factor=st.sampled_from([0.1, 0.5, 0.9]), patience=st.integers(0, 3),
       threshold=st.sampled_from([0.0, 1e-4, 0.1, 1.0]), threshold_mode=st.sampled_from(["rel", "abs"]),
       cooldown=st.integers(0, 3), min_lr=st.sampled_from([0.0, 0.01]), eps=st.sampled_from([0.0, 1e-8, 0.05]))
def test_drawn_sequences_follow_the_rules(metrics, mode, factor, patience, threshold, threshold_mode, cooldown,
                                          min_lr, eps):
    kwargs = dict(mode=mode, factor=factor, patience=patience, threshold=threshold, threshold_mode=threshold_mode,
                  cooldown=cooldown, min_lr=min_lr, eps=eps)
    scheduler = ReduceLROnPlateau(sgd(1.0), **kwargs)
    assert lrs_after_each_step(scheduler, metrics) == simulate(metrics, 1.0, **kwargs)


def test_state_dict_resumes_in_the_middle_of_a_cooldown(tmp_path):
    metrics = [3, 3, 3, 2.5, 3, 3, 3, 3]
    whole = ReduceLROnPlateau(sgd(1.0, 0.2), patience=1, cooldown=2, min_lr=[0.0, 0.1])
    expected = lrs_after_each_step(whole, metrics, group=1)

    first = ReduceLROnPlateau(sgd(1.0, 0.2), patience=1, cooldown=2, min_lr=[0.0, 0.1])
    head = lrs_after_each_step(first, metrics[:4], group=1)
    assert first.in_cooldown
    minidl.save({"optimizer": first.optimizer.state_dict(), "scheduler": first.state_dict()}, tmp_path / "c.npz")
    checkpoint = minidl.load(tmp_path / "c.npz")

    optimizer = sgd(1.0, 0.2)
    optimizer.load_state_dict(checkpoint["optimizer"])
    resumed = ReduceLROnPlateau(optimizer)
    resumed.load_state_dict(checkpoint["scheduler"])
    assert head + lrs_after_each_step(resumed, metrics[4:], group=1) == expected
    assert "optimizer" not in first.state_dict() and first.state_dict()["best"] == 2.5


def test_a_fresh_state_with_an_infinite_best_round_trips(tmp_path):
    minidl.save(ReduceLROnPlateau(sgd(1.0), mode="max").state_dict(), tmp_path / "s.npz")
    resumed = ReduceLROnPlateau(sgd(1.0))
    resumed.load_state_dict(minidl.load(tmp_path / "s.npz"))
    assert resumed.mode == "max" and resumed.best == -math.inf


def test_it_is_an_lr_scheduler_that_leaves_the_lr_alone_until_told():
    optimizer = sgd(0.3)
    scheduler = ReduceLROnPlateau(optimizer)
    assert isinstance(scheduler, LRScheduler)
    assert scheduler.get_last_lr() == [0.3] and optimizer.param_groups[0]["lr"] == 0.3 and scheduler.last_epoch == 0
    scheduler.step(1.0)
    assert scheduler.last_epoch == 1


def test_a_scalar_min_lr_follows_groups_added_later_a_list_does_not():
    optimizer = sgd(1.0)
    scheduler = ReduceLROnPlateau(optimizer, patience=0, min_lr=0.5)
    optimizer.add_param_group({"params": [Parameter(minidl.ones(1))], "lr": 2.0})
    scheduler.step(1)
    scheduler.step(1)
    assert scheduler.get_last_lr() == [0.5, 0.5]
    optimizer = sgd(1.0)
    scheduler = ReduceLROnPlateau(optimizer, patience=0, min_lr=[0.5])
    optimizer.add_param_group({"params": [Parameter(minidl.ones(1))], "lr": 2.0})
    scheduler.step(1)
    with pytest.raises(RuntimeError, match="ReduceLROnPlateau: expected 1 param groups .*, got 2"):
        scheduler.step(1)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"mode": "maximum"}, ValueError, "ReduceLROnPlateau: expected mode to be one of 'min', 'max', got 'maximum'"),
    ({"factor": 1.0}, ValueError, r"ReduceLROnPlateau: expected factor to be < 1.0 .*, got 1.0"),
    ({"factor": -0.5}, ValueError, r"ReduceLROnPlateau: expected factor to be a finite number in \[0, inf\], got -0.5"),
    ({"patience": -1}, ValueError, "ReduceLROnPlateau: expected patience to be a non-negative int, got -1"),
    ({"threshold_mode": "relative"}, ValueError,
     "ReduceLROnPlateau: expected threshold_mode to be one of 'rel', 'abs', got 'relative'"),
    ({"threshold": -1e-4}, ValueError, "ReduceLROnPlateau: expected threshold to be a finite number"),
    ({"cooldown": 1.5}, ValueError, "ReduceLROnPlateau: expected cooldown to be a non-negative int, got 1.5"),
    ({"min_lr": [0.1, 0.2]}, ValueError,
     r"ReduceLROnPlateau: expected 1 values of min_lr \(one per param group\), got \[0.1, 0.2\]"),
    ({"min_lr": -1}, ValueError, "ReduceLROnPlateau: expected min_lr to be a finite number"),
    ({"eps": "small"}, TypeError, "ReduceLROnPlateau: expected eps to be a finite number"),
])
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        ReduceLROnPlateau(sgd(1.0), **kwargs)


def test_it_needs_an_optimizer():
    with pytest.raises(TypeError, match="ReduceLROnPlateau: expected an Optimizer, got list"):
        ReduceLROnPlateau([Parameter(minidl.ones(1))])
