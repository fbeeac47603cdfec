"""EarlyStopping: stops at the epoch its rule says (against a plain reimplementation written
here), in min and max mode; keeps and restores the best weights bit for bit; resumes from
minidl.save; clear errors."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl import nn
from minidl.optim import EarlyStopping


def reference_stop_epoch(metrics, patience, min_delta, mode):
    """The rule, written out: (the epoch at which to stop or None, best, best epoch)."""
    sign = 1.0 if mode == "min" else -1.0
    best, best_epoch, bad = math.inf, None, 0
    for epoch, metric in enumerate(metrics):
        value = sign * metric  # in "max" mode, minimise -metric
        if not math.isnan(value) and value < best - min_delta:
            best, best_epoch, bad = value, epoch, 0
        else:
            bad += 1
            if bad >= max(patience, 1):
                return epoch, sign * best, best_epoch
    return None, sign * best, best_epoch


def run(stopper, metrics):
    """Step until it says stop; the epoch it stopped at (or None)."""
    for epoch, metric in enumerate(metrics):
        if stopper.step(metric):
            assert stopper.should_stop
            return epoch
        assert not stopper.should_stop
    return None


# few distinct values, so that ties, plateaus and improvements by exactly min_delta come often
values = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, math.nan]), st.floats(-3, 3))


@settings(max_examples=200)
@given(metrics=st.lists(values, max_size=25), patience=st.integers(0, 5),
       min_delta=st.sampled_from([0.0, 0.5, 1e-3]), mode=st.sampled_from(["min", "max"]))
def test_stops_exactly_when_the_rule_says(metrics, patience, min_delta, mode):
    stopper = EarlyStopping(patience, min_delta=min_delta, mode=mode)
    expected_stop, expected_best, expected_best_epoch = reference_stop_epoch(metrics, patience, min_delta, mode)
    assert run(stopper, metrics) == expected_stop
    assert stopper.best == expected_best and stopper.best_epoch == expected_best_epoch


def test_min_and_max_mode_known_sequences():
    losses = [1.0, 0.8, 0.8, 0.9, 0.79]
    assert run(EarlyStopping(patience=2), losses) == 3  # epochs 2 and 3 do not improve on 0.8
    assert run(EarlyStopping(patience=3), losses) is None
    accuracies = [0.5, 0.7, 0.69, 0.71, 0.70, 0.70]
    stopper = EarlyStopping(patience=2, mode="max")
    assert run(stopper, accuracies) == 5 and stopper.best == 0.71 and stopper.best_epoch == 3
    # min_delta: an improvement must be larger than min_delta
    stopper = EarlyStopping(patience=2, min_delta=0.1)
    assert run(stopper, [1.0, 0.95, 0.91]) == 2 and stopper.best == 1.0
    stopper = EarlyStopping(patience=2, min_delta=0.1)
    assert run(stopper, [1.0, 0.95, 0.89]) is None and stopper.best == 0.89


def test_patience_zero_stops_at_the_first_epoch_without_improvement():
    stopper = EarlyStopping(patience=0)
    assert stopper.step(3.0) is False and stopper.step(2.0) is False and stopper.step(2.0) is True


def test_nan_is_never_an_improvement():
    stopper = EarlyStopping(patience=2)
    assert stopper.step(math.nan) is False and stopper.best == math.inf and stopper.num_bad_epochs == 1
    assert stopper.step(1.0) is False and stopper.best == 1.0
    assert stopper.step(math.nan) is False
    assert stopper.step(math.nan) is True and stopper.best == 1.0 and stopper.best_epoch == 1


def test_a_one_element_tensor_is_a_metric(device):
    stopper = EarlyStopping(patience=1)
    stopper.step(minidl.tensor([2.0], device=device))
    stopper.step(minidl.tensor(1.5, device=device))
    assert stopper.best == 1.5 and isinstance(stopper.best, float)
    with pytest.raises(TypeError, match=r"EarlyStopping.step: expected a number or a one-element Tensor "
                                        r"as the metric, got a Tensor of shape \(2,\)"):
        stopper.step(minidl.tensor([1.0, 2.0], device=device))
    with pytest.raises(TypeError, match="EarlyStopping.step: expected a number .*, got '0.5'"):
        stopper.step("0.5")


def model_on(device):
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)).to(device)


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def perturb(model):
    with minidl.no_grad():
        for v in model.state_dict().values():
            v.data[...] = v.data + 1


def test_restores_the_best_weights_bit_for_bit(device):
    model = model_on(device)
    stopper = EarlyStopping(patience=2)
    kept = {}
    for epoch, loss in enumerate([3.0, 1.0, 2.0, 0.5, 0.7, 0.6]):
        if stopper.step(loss, model):
            break
        if epoch == 3:
            kept = weights(model)
        perturb(model)  # "training" changes every array in place after each step
    assert epoch == 5 and stopper.best_epoch == 3
    assert all(a.device == device for a in (minidl.Tensor.wrap(v) for v in stopper.best_state.values()))
    assert any(not np.array_equal(weights(model)[k], kept[k]) for k in kept)
    stopper.restore_best(model)
    now = weights(model)
    assert now.keys() == kept.keys()
    for key in kept:
        assert now[key].dtype == kept[key].dtype and now[key].tobytes() == kept[key].tobytes(), key


def test_restore_best_without_a_kept_state_is_an_error():
    stopper = EarlyStopping(patience=2)
    stopper.step(1.0)  # no model given: nothing kept
    with pytest.raises(RuntimeError, match="EarlyStopping.restore_best: expected a kept best model state, got none"):
        stopper.restore_best(model_on("cpu"))
    with pytest.raises(TypeError, match="EarlyStopping: expected a model with state_dict.*, got 'list'"):
        stopper.step(0.5, [1, 2])


def test_state_round_trips_through_minidl_save(tmp_path, device):
    model = model_on(device)
    stopper = EarlyStopping(patience=3, min_delta=0.01, mode="max")
    for accuracy in [0.5, 0.6, 0.59]:
        stopper.step(accuracy, model)
    best = weights(model)
    perturb(model)
    minidl.save({"stopper": stopper.state_dict()}, tmp_path / "ckpt.npz")

    resumed = EarlyStopping(patience=1)
    resumed.load_state_dict(minidl.load(tmp_path / "ckpt.npz")["stopper"])
    assert (resumed.patience, resumed.min_delta, resumed.mode) == (3, 0.01, "max")
    assert (resumed.best, resumed.best_epoch, resumed.num_bad_epochs) == (0.6, 1, 1)
    # it goes on exactly as the original would
    for accuracy in [0.605, 0.3]:
        assert resumed.step(accuracy) == stopper.step(accuracy)
    assert resumed.step(0.1) is True and stopper.step(0.1) is True
    resumed.restore_best(model)
    assert all(weights(model)[k].tobytes() == best[k].tobytes() for k in best)


def test_a_fresh_state_round_trips_too(tmp_path):
    minidl.save(EarlyStopping(patience=2).state_dict(), tmp_path / "s.npz")
    resumed = EarlyStopping(patience=5, mode="max")
    resumed.load_state_dict(minidl.load(tmp_path / "s.npz"))
    assert (resumed.patience, resumed.mode, resumed.best, resumed.best_state) == (2, "min", math.inf, None)


def test_the_kept_state_is_a_copy_not_the_live_arrays():
    model = model_on("cpu")
    stopper = EarlyStopping(patience=2)
    stopper.step(1.0, model)
    live = {id(v.data) for v in model.state_dict().values()}
    assert not live & {id(a) for a in stopper.best_state.values()}
    state = stopper.state_dict()
    other = EarlyStopping(patience=2)
    other.load_state_dict(state)
    assert not {id(a) for a in other.best_state.values()} & {id(a) for a in state["best_state"].values()}


@pytest.mark.parametrize("kwargs, error, message", [
    ({"patience": -1}, ValueError, "EarlyStopping: expected patience to be a non-negative int, got -1"),
    ({"patience": 2.5}, ValueError, "EarlyStopping: expected patience to be a non-negative int, got 2.5"),
    ({"patience": 1, "mode": "mean"}, ValueError, "EarlyStopping: expected mode to be one of 'min', 'max', got 'mean'"),
    ({"patience": 1, "min_delta": -0.1}, ValueError,
     r"EarlyStopping: expected min_delta to be a finite number in \[0, inf\], got -0.1"),
    ({"patience": 1, "min_delta": "0"}, TypeError, "EarlyStopping: expected min_delta"),
])
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        EarlyStopping(**kwargs)


def test_load_state_dict_refuses_a_foreign_dict():
    message = r"EarlyStopping.load_state_dict: expected a dict with the keys .*got \['lr'\]"
    with pytest.raises(ValueError, match=message):
        EarlyStopping(1).load_state_dict({"lr": 0.1})
