"""EarlyStopping: stop training when a validation metric has stopped improving, and keep
the best model's weights.

    stopper = EarlyStopping(patience=5)
    for epoch in range(100):
        train_one_epoch(...)
        if stopper.step(validation_loss(model), model):
            break
    stopper.restore_best(model)       # the weights of epoch stopper.best_epoch

PyTorch has no EarlyStopping of its own; this follows the rule of Keras's and PyTorch
Lightning's callbacks, with ReduceLROnPlateau's names (mode, best, num_bad_epochs).
"""

from __future__ import annotations

import math

from minidl import checks
from minidl.tensor import Tensor

_STATE_KEYS = ("patience", "min_delta", "mode", "best", "best_epoch", "num_bad_epochs", "epoch", "best_state")


class EarlyStopping:
    """Stop after ``patience`` epochs in a row without an improvement.

    The rule, one ``step(metric)`` per epoch (epochs counted from 0)::

        improvement:  metric < best - min_delta   (mode "min", e.g. a loss)
                      metric > best + min_delta   (mode "max", e.g. an accuracy)
        if improvement: best = metric, best_epoch = epoch, num_bad_epochs = 0
        else:           num_bad_epochs += 1
        stop when num_bad_epochs >= patience (and at least one epoch was bad)

    ``best`` starts at +inf ("min") or -inf ("max"), so the first finite metric is an
    improvement. A NaN metric is never an improvement. ``patience=0`` stops at the first
    epoch without an improvement.

    ``step(metric, model)`` also keeps a copy of ``model.state_dict()`` whenever the
    metric improves (copied arrays on the model's device: later training does not touch
    them), and ``restore_best(model)`` loads that copy back.

    ``metric`` is a Python number or a one-element Tensor, read with ``float()``. For a
    Tensor on a GPU that is one synchronisation, fine once per epoch (never inside the
    training step).

    ``state_dict()``/``load_state_dict()`` hold plain numbers and the kept weights, so
    ``minidl.save({"stopper": stopper.state_dict(), ...}, path)`` resumes it.
    """

    def __init__(self, patience: int, min_delta: float = 0.0, mode: str = "min"):
        self.patience = checks.non_negative_int(patience, "EarlyStopping", "patience")
        self.min_delta = checks.non_negative_float(min_delta, "EarlyStopping", "min_delta")
        self.mode = checks.choice(mode, ("min", "max"), "EarlyStopping", "mode")
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = None  # the epoch (from 0) of the best metric; None before any improvement
        self.num_bad_epochs = 0
        self.epoch = -1  # the epoch of the last step()
        self.best_state = None  # a copy of the best model's state_dict, when step() was given a model

    @property
    def should_stop(self) -> bool:
        """Whether the last step said to stop: ``patience`` bad epochs in a row (and at least one)."""
        return self.num_bad_epochs >= max(self.patience, 1)

    def is_improvement(self, metric: float) -> bool:
        """``metric`` beats ``best`` by more than ``min_delta`` (NaN never does)."""
        if self.mode == "min":
            return metric < self.best - self.min_delta
        return metric > self.best + self.min_delta

    def step(self, metric, model=None) -> bool:
        """Record one epoch's ``metric``; True means stop now. With ``model``, keep its
        weights when the metric improves."""
        metric = _as_float(metric)
        self.epoch += 1
        if self.is_improvement(metric):
            self.best, self.best_epoch, self.num_bad_epochs = metric, self.epoch, 0
            if model is not None:
                self.best_state = _copy_state(_state_of(model))
        else:
            self.num_bad_epochs += 1
        return self.should_stop

    def restore_best(self, model) -> None:
        """Load the kept best weights into ``model`` (a Module, as given to ``step``)."""
        if self.best_state is None:
            raise RuntimeError(
                "EarlyStopping.restore_best: expected a kept best model state, got none "
                "(pass the model to step(metric, model) so that it keeps one)"
            )
        _state_of(model)
        model.load_state_dict(self.best_state)

    def state_dict(self) -> dict:
        """The counters, the best metric and the kept weights (arrays), for ``minidl.save``."""
        return {key: getattr(self, key) for key in _STATE_KEYS}

    def load_state_dict(self, state_dict: dict) -> None:
        """Resume from ``state_dict()``; the kept weights are copied."""
        if not isinstance(state_dict, dict) or set(state_dict) != set(_STATE_KEYS):
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            checks.fail("EarlyStopping.load_state_dict", f"a dict with the keys {sorted(_STATE_KEYS)}", got)
        for key in _STATE_KEYS:
            setattr(self, key, state_dict[key])
        self.best = float(self.best)
        if self.best_state is not None:
            self.best_state = _copy_state(self.best_state)

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, mode='{self.mode}', "
            f"best={self.best}, best_epoch={self.best_epoch}, num_bad_epochs={self.num_bad_epochs})"
        )


def _as_float(metric) -> float:
    """A Python number or a one-element Tensor (or array) as a float."""
    what = "EarlyStopping.step: expected a number or a one-element Tensor as the metric"
    if isinstance(metric, (str, bytes, bool)):
        raise TypeError(f"{what}, got {metric!r}")
    try:
        return float(metric)
    except (TypeError, ValueError, RuntimeError):
        shape = getattr(metric, "shape", None)
        got = f"a {type(metric).__name__} of shape {tuple(shape)}" if shape is not None else repr(metric)
        raise TypeError(f"{what}, got {got}") from None


def _state_of(model):
    """``model.state_dict()``, refusing anything that has none."""
    if not (callable(getattr(model, "state_dict", None)) and callable(getattr(model, "load_state_dict", None))):
        checks.fail("EarlyStopping", "a model with state_dict() and load_state_dict()", type(model).__name__,
                    TypeError)
    return model.state_dict()


def _copy_state(state) -> dict:
    """Own copies of every array in ``state`` (Tensors or arrays), each on its own device."""
    return {key: (value.data if isinstance(value, Tensor) else value).copy() for key, value in state.items()}
