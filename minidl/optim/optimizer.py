"""Optimizer: the base class every optimizer builds on, as in PyTorch.

An optimizer holds ``param_groups``: a list of dicts, each with its own ``'params'``
(a list of Parameters) and hyper-parameters (``'lr'``, ``'momentum'``, ...); a group
that leaves a hyper-parameter out takes the optimizer's default. Per-parameter
memory (momentum buffers, Adam's moments, the step count) lives in ``state[p]``.

``state_dict()`` writes that memory in PyTorch's format, with parameters replaced
by their position across all groups, so a checkpoint can resume training::

    {'state': {0: {'step': 3, 'exp_avg': Tensor, ...}, 1: {...}},
     'param_groups': [{'lr': 0.001, ..., 'params': [0, 1]}]}
"""

from __future__ import annotations

import copy

from minidl import backend
from minidl.autograd import enable_grad, no_grad
from minidl.tensor import Tensor


class _RequiredParameter:
    """Marks a hyper-parameter with no default (like SGD's lr in old PyTorch)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    """Base class: subclasses pass their ``defaults`` and write ``step()``.

    Parameters
    ----------
    params : iterable of Tensors, or of dicts
        The tensors to optimise, or param groups: ``[{'params': [...], 'lr': 0.1}, ...]``.
    defaults : dict
        The hyper-parameters a group gets when it does not set them.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict = {}  # Parameter -> dict of its per-parameter memory
        self.param_groups: list = []
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params should be an iterable of Tensors or dicts, "
                "got a single Tensor; pass [tensor] or model.parameters()"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def name(self) -> str:
        return type(self).__name__

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters (with its own hyper-parameters) to optimise."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{self.name}.add_param_group: expected a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError(f"{self.name}.add_param_group: the group has no 'params' entry")
        if isinstance(params, set):
            raise TypeError(f"{self.name}: params must be an ordered collection (a list), not a set")
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{self.name}: can only optimise Tensors, got a {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{self.name}: can only optimise leaf tensors (parameters), got a computed tensor")
        group["params"] = params
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"{self.name}: parameter group didn't specify a value of required argument '{key}'")
            group.setdefault(key, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError(f"{self.name}: some parameters appear in more than one parameter group (or twice in one)")
        self.param_groups.append(group)

    state_keys: tuple = ()  # the per-parameter state a subclass keeps (checked on load)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad``: to None, or to zeros in place (``grad.zero_()``)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    if p.grad.grad_fn is not None or p.grad.requires_grad:  # a grad built with create_graph
                        p.grad = p.grad.detach()
                    p.grad.zero_()

    def step(self, closure=None):
        """Update every parameter once from its ``.grad``. Subclasses implement ``update`` (one parameter)
        or ``update_group`` (all the parameters of a group at once)."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for index, p in enumerate(p for group in self.param_groups for p in group["params"]):
                if p.grad is not None:
                    self._check_devices(index, p, self.state.get(p, {}))
            for group in self.param_groups:
                params = [p for p in group["params"] if p.grad is not None]
                if params:
                    self.update_group(group, params)
        return loss

    def update_group(self, group: dict, params: list) -> None:
        """Update the parameters ``params`` of ``group`` (those with a gradient). Here one at a time through
        ``update``; SGD and Adam update them all in one call of the backend table (one kernel on a GPU)."""
        for p in params:
            self.update(p, p.grad.data, self.state.setdefault(p, {}), group)

    def _check_devices(self, index: int, p, state: dict) -> None:
        """The state of parameter ``index`` lives where the parameter does. As in PyTorch, ``model.to()``
        after steps leaves the state behind (step() refuses); ``load_state_dict`` moves it."""
        for key, value in state.items():
            if isinstance(value, Tensor) and value.device != p.device:
                raise RuntimeError(
                    f"{self.name}.step: expected the state of parameter {index} on {p.device} like the "
                    f"parameter, got state[{index}][{key!r}] on {value.device} (was the model moved with "
                    f".to() after the optimizer stepped? load_state_dict(opt.state_dict()) moves the state)"
                )

    def update(self, p, grad, state: dict, group: dict) -> None:  # pragma: no cover - abstract
        """Change ``p.data`` in place from the raw gradient array ``grad``."""
        raise NotImplementedError(f"{self.name}.update is not implemented")

    def _overrides_update(self, cls) -> bool:
        """Whether a subclass of ``cls`` wrote its own ``update`` (lesson 13 adds a penalty to the gradient
        there): then ``update_group`` must go one parameter at a time through it."""
        return type(self).update is not cls.update

    # ------------------------------------------------------------------ #
    # Saving and resuming
    # ------------------------------------------------------------------ #
    def state_dict(self) -> dict:
        """The hyper-parameters and per-parameter memory, parameters named by their index."""
        index_of, groups, next_index = {}, [], 0
        for group in self.param_groups:
            entry = {k: v for k, v in group.items() if k != "params"}
            entry["params"] = []
            for p in group["params"]:
                if id(p) not in index_of:
                    index_of[id(p)] = next_index
                    next_index += 1
                entry["params"].append(index_of[id(p)])
            groups.append(entry)
        state = {index_of[id(p)]: values for p, values in self.state.items() if id(p) in index_of}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Resume from ``state_dict()``: every group, count and shape is checked before anything changes."""
        where = f"{self.name}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            keys = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{where}: expected a dict with keys 'state' and 'param_groups', got {keys}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{where}: the state dict has {len(saved_groups)} parameter groups, the optimizer has "
                f"{len(self.param_groups)}"
            )
        self._check_kind(state_dict, where)
        params_by_index = {}
        for i, (ours, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(ours["params"]) != len(saved["params"]):
                raise ValueError(
                    f"{where}: group {i} has {len(saved['params'])} parameters in the state dict but "
                    f"{len(ours['params'])} in the optimizer"
                )
            for index, p in zip(saved["params"], ours["params"]):
                params_by_index[int(index)] = p

        new_state = {}
        for index, values in state_dict["state"].items():
            p = params_by_index.get(int(index))
            if p is None:
                raise ValueError(f"{where}: the state dict has state for parameter {index}, which no group holds")
            new_state[p] = {
                key: _restore(value, p, f"{where}: state[{index}][{key!r}]") for key, value in values.items()
            }

        self.state = new_state
        for ours, saved in zip(self.param_groups, saved_groups):
            ours.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})

    def _check_kind(self, state_dict: dict, where: str) -> None:
        """The state dict comes from the same kind of optimizer: its groups have our hyper-parameters
        and its per-parameter state our keys (Adam's 'betas' or 'exp_avg' cannot load into SGD)."""
        for i, saved in enumerate(state_dict["param_groups"]):
            missing = sorted(set(self.defaults) - set(saved))
            if missing:
                raise ValueError(
                    f"{where}: expected the state dict of a {self.name} (hyper-parameters {sorted(self.defaults)}), "
                    f"got group {i} without {missing}: it comes from {_kind_of(saved)}"
                )
        for index, values in state_dict["state"].items():
            foreign = sorted(set(values) - set(self.state_keys))
            if foreign:
                raise ValueError(
                    f"{where}: expected the per-parameter state of a {self.name} (keys {list(self.state_keys)}), "
                    f"got state[{index}] with {foreign}"
                )

    def __repr__(self) -> str:
        lines = [f"{self.name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params")
        return "\n".join(lines) + "\n)"


def _kind_of(group: dict) -> str:
    """A guess at which optimizer saved a parameter group, from its hyper-parameters."""
    if "betas" in group:
        return "Adam or AdamW (it has 'betas')"
    if "alpha" in group:
        return "RMSprop (it has 'alpha')"
    if "momentum" in group:
        return "SGD (it has 'momentum')"
    return "another kind of optimizer"


def _restore(value, p, where: str):
    """A copy of one saved state value, moved to ``p``'s device (floats cast to ``p``'s dtype)."""
    is_array = hasattr(value, "shape") and hasattr(value, "dtype") and len(value.shape) > 0
    if isinstance(value, Tensor) or is_array:
        array = value.data if isinstance(value, Tensor) else value
        if tuple(array.shape) != p.shape:
            raise ValueError(f"{where} has shape {tuple(array.shape)} but the parameter has shape {p.shape}")
        array = backend.to_device(array, p.device)
        dtype = p.dtype if array.dtype.kind == "f" else array.dtype
        return Tensor.wrap(array.astype(dtype, copy=True))
    return copy.deepcopy(value.item() if hasattr(value, "item") else value)


def batches(params: list, key) -> list:
    """``params`` split, in order, into lists that one backend call can update together: the same device
    and the same ``key(p)`` (e.g. Adam's step count)."""
    out: dict = {}
    for p in params:
        out.setdefault((p.device, key(p)), []).append(p)
    return list(out.values())


def changed_in_place(tensors) -> None:
    """Bump the version of each tensor whose array a backend entry changed in place, as the Tensor's own
    in-place methods (``p.sub_``) do: autograd then refuses a backward that saved the old values."""
    for t in tensors:
        if t is not None:
            t._version_counter[0] += 1
