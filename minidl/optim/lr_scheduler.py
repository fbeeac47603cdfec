"""Learning-rate schedules: the lr of each param group as a function of the step count.

Use them as in PyTorch::

    scheduler = StepLR(optimizer, step_size=30, gamma=0.1)
    for epoch in range(100):
        train_one_epoch(...)      # calls optimizer.step()
        scheduler.step()          # lr for the next epoch

Each schedule here is written in closed form: ``lr(t)`` from the group's starting lr
``base_lr`` and the number of ``step()`` calls so far, ``t = last_epoch``; except
``ReduceLROnPlateau``, which reads a metric: ``scheduler.step(validation_loss)``.
"""

from __future__ import annotations

import bisect
import math

from minidl import checks
from minidl.optim.optimizer import Optimizer


def _check_optimizer(optimizer, scheduler: str) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{scheduler}: expected an Optimizer, got {type(optimizer).__name__}")


class LRScheduler:
    """Base class: subclasses define ``lr_at(base_lr, t)`` (or override ``get_lr``).

    Creating a scheduler records each group's starting lr as ``'initial_lr'`` and
    applies the lr for t = 0 at once (PyTorch calls this the initial step).
    """

    def __init__(self, optimizer, last_epoch: int = -1):
        _check_optimizer(optimizer, type(self).__name__)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"{type(self).__name__}: param 'initial_lr' is not specified in param_groups[{i}] "
                        "when resuming (last_epoch != -1)"
                    )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()

    def lr_at(self, base_lr: float, t: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.lr_at is not implemented")

    def get_lr(self) -> list:
        """The lr of every group at step ``last_epoch``."""
        return [self.lr_at(base_lr, self.last_epoch) for base_lr in self.base_lrs]

    def step(self) -> None:
        """Advance one step and set each group's lr."""
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list:
        """The lr of every group as last set by this scheduler."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Everything but the optimizer (and functions, which cannot be saved)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)


class LambdaLR(LRScheduler):
    """lr(t) = base_lr * lr_lambda(t); one function, or one per param group."""

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        groups = len(optimizer.param_groups)
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * groups
        if len(lambdas) != groups:
            raise ValueError(f"LambdaLR: expected {groups} lr_lambdas (one per param group), got {len(lambdas)}")
        if not all(callable(f) for f in lambdas):
            raise TypeError("LambdaLR: lr_lambda must be a function of the step (or a list of them)")
        self.lr_lambdas = lambdas
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        return [base_lr * f(self.last_epoch) for base_lr, f in zip(self.base_lrs, self.lr_lambdas)]


class StepLR(LRScheduler):
    """lr(t) = base_lr * gamma ** (t // step_size): decay by gamma every step_size steps."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size!r}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        return base_lr * self.gamma ** (t // self.step_size)


class MultiStepLR(LRScheduler):
    """lr(t) = base_lr * gamma ** (number of milestones <= t): decay by gamma at each milestone."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, t)


class CosineAnnealingLR(LRScheduler):
    """lr(t) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2

    Half a cosine from base_lr at t = 0 down to eta_min at t = T_max (SGDR without restarts).
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):  # noqa: N803
        if T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be positive, got {T_max!r}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


def _per_group(value, groups: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != groups:
            raise ValueError(f"OneCycleLR: expected {groups} values of {name} (one per param group), got {len(value)}")
        return list(value)
    return [value] * groups


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin, 2018), as ``torch.optim.lr_scheduler.OneCycleLR``.

    Call ``step()`` after every batch. With ``initial_lr = max_lr / div_factor`` and
    ``min_lr = initial_lr / final_div_factor``, the lr goes (two phases, the default)
    from initial_lr up to max_lr over the first ``pct_start * total_steps - 1`` steps,
    then down to min_lr at step ``total_steps - 1``. Each phase anneals from ``start``
    to ``end`` at fraction ``pct`` of the phase by

        cos:    end + (start - end) * (1 + cos(pi * pct)) / 2
        linear: start + (end - start) * pct

    ``three_phase=True`` goes up, back down to initial_lr symmetrically, then to min_lr.
    With ``cycle_momentum`` the momentum (or Adam's beta1) moves the opposite way,
    between max_momentum and base_momentum.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False, last_epoch=-1):
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR: you must define either total_steps OR (epochs AND steps_per_epoch)")
            if epochs <= 0 or steps_per_epoch <= 0:
                raise ValueError(
                    f"OneCycleLR: epochs and steps_per_epoch must be positive, got {epochs} and {steps_per_epoch}"
                )
            total_steps = epochs * steps_per_epoch
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f"OneCycleLR: expected a positive integer total_steps, got {total_steps!r}")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: expected pct_start between 0 and 1, got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.total_steps = total_steps
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = cycle_momentum
        up_end = float(pct_start * total_steps) - 1
        if three_phase:
            self._schedule_phases = [
                {"end_step": up_end, "start_lr": "initial_lr", "end_lr": "max_lr",
                 "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
                {"end_step": float(2 * pct_start * total_steps) - 2, "start_lr": "max_lr", "end_lr": "initial_lr",
                 "start_momentum": "base_momentum", "end_momentum": "max_momentum"},
                {"end_step": total_steps - 1, "start_lr": "initial_lr", "end_lr": "min_lr",
                 "start_momentum": "max_momentum", "end_momentum": "max_momentum"},
            ]
        else:
            self._schedule_phases = [
                {"end_step": up_end, "start_lr": "initial_lr", "end_lr": "max_lr",
                 "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
                {"end_step": total_steps - 1, "start_lr": "max_lr", "end_lr": "min_lr",
                 "start_momentum": "base_momentum", "end_momentum": "max_momentum"},
            ]

        groups = optimizer.param_groups
        if last_epoch == -1:
            for group, lr in zip(groups, _per_group(max_lr, len(groups), "max_lr")):
                group["initial_lr"] = lr / div_factor
                group["max_lr"] = lr
                group["min_lr"] = group["initial_lr"] / final_div_factor
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("OneCycleLR: optimizer must support momentum or betas with cycle_momentum enabled")
            self.use_beta1 = "betas" in optimizer.defaults
            if last_epoch == -1:
                bases = _per_group(base_momentum, len(groups), "base_momentum")
                maxes = _per_group(max_momentum, len(groups), "max_momentum")
                for group, low, high in zip(groups, bases, maxes):
                    self._set_momentum(group, high)
                    group["max_momentum"], group["base_momentum"] = high, low
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list:
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(
                f"OneCycleLR: tried to step {t} times; the specified number of total steps is {self.total_steps}"
            )
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if t <= end_step or i == len(self._schedule_phases) - 1:
                    pct = (t - start_step) / (end_step - start_step)
                    lr = self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        momentum = self._anneal(group[phase["start_momentum"]], group[phase["end_momentum"]], pct)
                    break
                start_step = end_step
            lrs.append(lr)
            if self.cycle_momentum:
                self._set_momentum(group, momentum)
        return lrs


class ReduceLROnPlateau(LRScheduler):
    """Multiply every group's lr by ``factor`` when a metric has stopped improving, as
    ``torch.optim.lr_scheduler.ReduceLROnPlateau``. Call ``step(metric)`` once per epoch::

        scheduler = ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=3)
        for epoch in range(100):
            train_one_epoch(...)
            scheduler.step(validation_loss)

    The rule, at every ``step(metric)`` (``best`` starts at +inf, or -inf in mode "max")::

        better:  mode "min": metric < best * (1 - threshold)   (threshold_mode "rel")
                             metric < best - threshold         (threshold_mode "abs")
                 mode "max": metric > best * (1 + threshold)   ("rel")
                             metric > best + threshold         ("abs")
        if better: best = metric, num_bad_epochs = 0     else: num_bad_epochs += 1
        if cooldown_counter > 0: cooldown_counter -= 1, num_bad_epochs = 0
        if num_bad_epochs > patience:
            each group: new_lr = max(lr * factor, min_lr of the group),
                        applied only if lr - new_lr > eps (smaller changes are ignored)
            cooldown_counter = cooldown, num_bad_epochs = 0

    So with ``patience=2`` the lr drops at the end of the 3rd epoch in a row without an
    improvement, and after a drop the next ``cooldown`` epochs count as neither good nor
    bad. A NaN metric is never better. ``min_lr`` is one number or one per param group.
    ``metric`` is a number or a one-element Tensor (read with ``float()``: once per epoch).
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0, eps=1e-8):
        name = "ReduceLROnPlateau"
        _check_optimizer(optimizer, name)
        self.optimizer = optimizer
        self.mode = checks.choice(mode, ("min", "max"), name, "mode")
        self.factor = checks.real(factor, name, "factor", minimum=0.0)
        if self.factor >= 1.0:
            checks.fail(name, "factor to be < 1.0 (new_lr = lr * factor)", factor)
        self.patience = checks.non_negative_int(patience, name, "patience")
        self.threshold = checks.non_negative_float(threshold, name, "threshold")
        self.threshold_mode = checks.choice(threshold_mode, ("rel", "abs"), name, "threshold_mode")
        self.cooldown = checks.non_negative_int(cooldown, name, "cooldown")
        self.min_lrs = self._min_lrs(min_lr, len(optimizer.param_groups))
        self.default_min_lr = None if isinstance(min_lr, (list, tuple)) else float(min_lr)
        self.eps = checks.non_negative_float(eps, name, "eps")
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    @staticmethod
    def _min_lrs(min_lr, groups: int) -> list:
        """One non-negative min_lr per param group, from a number or a list of them."""
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != groups:
                checks.fail("ReduceLROnPlateau", f"{groups} values of min_lr (one per param group)", min_lr)
            return [checks.non_negative_float(m, "ReduceLROnPlateau", "each min_lr") for m in min_lr]
        return [checks.non_negative_float(min_lr, "ReduceLROnPlateau", "min_lr")] * groups

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def is_better(self, metric: float, best: float) -> bool:
        """``metric`` beats ``best`` by more than the threshold (see the class docstring)."""
        if self.threshold_mode == "rel":
            scale = 1.0 - self.threshold if self.mode == "min" else 1.0 + self.threshold
            dynamic_threshold = best * scale
        else:
            dynamic_threshold = best - self.threshold if self.mode == "min" else best + self.threshold
        return metric < dynamic_threshold if self.mode == "min" else metric > dynamic_threshold

    def step(self, metric) -> None:
        """Record one epoch's ``metric`` and lower the lr after ``patience`` bad epochs."""
        try:
            current = float(metric)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"ReduceLROnPlateau.step: expected a number or a one-element Tensor as the metric, "
                f"got {type(metric).__name__}"
            ) from None
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _reduce_lr(self) -> None:
        """lr = max(lr * factor, min_lr) in every group, unless that changes it by eps or less."""
        groups = len(self.optimizer.param_groups)
        if len(self.min_lrs) != groups and self.default_min_lr is not None:  # a group added since: as PyTorch
            self.min_lrs = [self.default_min_lr] * groups
        if len(self.min_lrs) != groups:
            raise RuntimeError(
                f"ReduceLROnPlateau: expected {len(self.min_lrs)} param groups (one per min_lr), "
                f"got {groups}; a group was added after the scheduler was made with a list of min_lr"
            )
        for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr
