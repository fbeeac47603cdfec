"""Module and Parameter: the containers layers are built from, as in PyTorch.

A Module keeps its Parameters, sub-Modules and buffers (tensors that are state but
not trained, like batch norm's running mean) in three ordered dicts, filled in
automatically by attribute assignment, so ``parameters()`` lists them in the order
they were defined. Forward and backward hooks (PyTorch's) are in ``minidl.nn.hooks``.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy

from minidl import backend
from minidl.autograd import RemovableHandle, no_grad
from minidl.creation import is_dtype
from minidl.nn import hooks
from minidl.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains: ``requires_grad`` is on by default."""

    def __init__(self, data, requires_grad: bool = True):
        device = data.device if isinstance(data, Tensor) else None  # a Tensor stays where it is
        super().__init__(data, requires_grad=requires_grad, device=device)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model. Subclasses set attributes in ``__init__``
    and compute in ``forward``; call the module itself (``model(x)``) to run it."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)
        for registry in ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks"):
            object.__setattr__(self, registry, {})

    # ------------------------------------------------------------------ #
    # Registration by assignment
    # ------------------------------------------------------------------ #
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        self._check_assignment(name, value)
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def _check_assignment(self, name, value) -> None:
        """A registered parameter, sub-module or buffer may only be replaced by one of its kind (or None):
        ``self.weight = self.weight * 2`` would otherwise silently stop training the weight."""
        cls = type(self).__name__
        if value is None:
            return
        if name in self._parameters and not isinstance(value, Parameter):
            raise TypeError(
                f"{cls}: cannot assign a {type(value).__name__} to parameter '{name}' (a Parameter or None is "
                f"expected); to change its values in place use `with minidl.no_grad(): module.{name}.data[...] = ...`"
            )
        if name in self._modules and not isinstance(value, Module):
            raise TypeError(
                f"{cls}: cannot assign a {type(value).__name__} to sub-module '{name}' (a Module or None is expected)"
            )
        if name in self.__dict__.get("_buffer_names", ()) and not isinstance(value, Tensor):
            raise TypeError(
                f"{cls}: cannot assign a {type(value).__name__} to buffer '{name}' (a Tensor or None is expected)"
            )

    def __getattr__(self, name):
        for registry in ("_parameters", "_modules", "_buffers"):
            values = self.__dict__.get(registry)
            if values is not None and name in values:
                return values[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in (self._parameters, self._modules, self._buffers):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor) -> None:
        """Keep ``tensor`` as state (saved, moved with ``to``) that is not a trained Parameter."""
        self._check_name(name, "register_buffer")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"{type(self).__name__}.register_buffer: '{name}' is already a parameter or sub-module")
        if isinstance(tensor, Parameter) or (tensor is not None and not isinstance(tensor, Tensor)):
            raise TypeError(
                f"{type(self).__name__}.register_buffer: buffer '{name}' must be a Tensor (not a Parameter) or None, "
                f"got {type(tensor).__name__}"
            )
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        self._buffers[name] = tensor
        self.__dict__.pop(name, None)

    def register_parameter(self, name: str, parameter) -> None:
        """Register ``parameter`` (may be None, e.g. a layer built with bias=False)."""
        self._check_name(name, "register_parameter")
        if parameter is not None and not isinstance(parameter, Parameter):
            raise TypeError(
                f"{type(self).__name__}.register_parameter: '{name}' must be a Parameter or None, "
                f"got {type(parameter).__name__} (wrap it: Parameter(tensor))"
            )
        if parameter is None:
            for registry in (self._parameters, self._modules, self._buffers):
                registry.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, parameter)

    def _check_name(self, name, where) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(
                f"{type(self).__name__}.{where}: the name must be a non-empty string without '.', got {name!r}"
            )

    # ------------------------------------------------------------------ #
    # Running
    # ------------------------------------------------------------------ #
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def __call__(self, *args, **kwargs):
        if self._forward_pre_hooks or self._forward_hooks or self._backward_hooks:
            return hooks.call_with_hooks(self, args, kwargs)
        return self.forward(*args, **kwargs)

    def register_forward_pre_hook(self, hook) -> RemovableHandle:
        """``hook(module, args)`` runs before forward and may return new args (see ``minidl.nn.hooks``)."""
        return RemovableHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook) -> RemovableHandle:
        """``hook(module, args, output)`` runs after forward and may return a new output."""
        return RemovableHandle(self._forward_hooks, hook)

    def register_full_backward_hook(self, hook) -> RemovableHandle:
        """``hook(module, grad_input, grad_output)`` runs once the gradients w.r.t. this call's
        positional Tensor args and its outputs are known; it may return a replacement grad_input."""
        return RemovableHandle(self._backward_hooks, hook)

    # ------------------------------------------------------------------ #
    # Walking the tree
    # ------------------------------------------------------------------ #
    def named_modules(self, prefix: str = ""):
        """(name, module) for this module and every descendant, depth first, in definition order."""
        stack, seen = [(prefix, self)], set()
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        """(dotted name, Parameter) in definition order; shared parameters appear once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self, recurse: bool = True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = ""):
        for module_name, module in self.named_modules(prefix):
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{module_name}.{name}" if module_name else name), b

    def buffers(self):
        return (b for _, b in self.named_buffers())

    def apply(self, fn):
        """Call ``fn(module)`` on every descendant and then on self (as PyTorch)."""
        for module in reversed(list(self.modules())):
            fn(module)
        return self

    # ------------------------------------------------------------------ #
    # Modes, devices, dtypes, gradients
    # ------------------------------------------------------------------ #
    def train(self, mode: bool = True):
        """Training mode (dropout active, batch norm uses batch statistics) or not."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def _convert(self, convert_array):
        """Apply ``convert_array`` to every parameter (and its grad) and buffer, in place."""
        for p in self.parameters():
            p.data = convert_array(p.data)
            if p.grad is not None:
                p.grad = Tensor.wrap(convert_array(p.grad.data))
        for module in self.modules():
            for name, b in module._buffers.items():
                if b is not None:
                    b.data = convert_array(b.data)
        return self

    def to(self, device=None, dtype=None):
        """Move parameters and buffers to ``device`` and/or cast floating ones to ``dtype``, in place.

        Like PyTorch, a dtype may also come first: ``model.to(minidl.float64)``.
        """
        if dtype is None and device is not None and is_dtype(device):
            device, dtype = None, device
        if device is not None:
            device = backend.Device(device)
            backend.check_device_usable(device)
            self._convert(lambda a: backend.to_device(a, device))
        if dtype is not None:
            dtype = numpy.dtype(dtype)
            self._convert(lambda a: a.astype(dtype) if a.dtype.kind == "f" else a)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index: int = 0):
        return self.to(f"cuda:{index}")

    def double(self):
        """float64 parameters: what gradcheck needs."""
        return self.to(dtype=numpy.float64)

    def float(self):
        return self.to(dtype=numpy.float32)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor.wrap(p.xp.zeros_like(p.grad.data))

    # ------------------------------------------------------------------ #
    # State
    # ------------------------------------------------------------------ #
    def state_dict(self) -> "OrderedDict[str, Tensor]":
        """Every parameter and buffer by dotted name (detached tensors sharing memory)."""
        state = OrderedDict()
        for module_name, module in self.named_modules():
            for registry in (module._parameters, module._buffers):
                for name, value in registry.items():
                    if value is not None:
                        state[f"{module_name}.{name}" if module_name else name] = value.detach()
        return state

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values from ``state_dict`` into this module's parameters and buffers.

        Every key and shape is checked before anything is copied, so a mismatch leaves
        the module untouched. With ``strict``, missing and unexpected keys are errors.
        Returns (missing_keys, unexpected_keys).
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(
                f"load_state_dict for {type(self).__name__}: missing keys {missing}, unexpected keys {unexpected}"
            )
        arrays = {}
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = value.data if isinstance(value, Tensor) else value
            if not hasattr(value, "shape"):
                value = numpy.asarray(value)
            if tuple(value.shape) != target.shape:
                raise ValueError(
                    f"load_state_dict for {type(self).__name__}: size mismatch for '{key}': "
                    f"the checkpoint has shape {tuple(value.shape)}, the model has shape {target.shape}"
                )
            arrays[key] = backend.to_device(value, target.device).astype(target.dtype, copy=True)
        with no_grad():
            for key, array in arrays.items():
                own[key].data[...] = array
        return missing, unexpected

    # ------------------------------------------------------------------ #
    # Printing
    # ------------------------------------------------------------------ #
    def extra_repr(self) -> str:
        """The constructor arguments shown in ``repr`` (layers override this)."""
        return ""

    def __repr__(self) -> str:
        lines = self.extra_repr().split("\n") if self.extra_repr() else []
        lines += [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self.named_children()]
        if not self._modules:  # a leaf: everything on one line
            return f"{type(self).__name__}({', '.join(lines)})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied one after the other: ``Sequential(Linear(2, 8), ReLU(), Linear(8, 1))``."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            named = [(name, module, f"entry {name!r}") for name, module in modules[0].items()]
        else:
            named = [(str(i), module, f"argument {i}") for i, module in enumerate(modules)]
        for name, module, where in named:
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: {where} is a {type(module).__name__}, not a Module")
            setattr(self, name, module)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, index):
        modules = list(self._modules.values())
        return Sequential(*modules[index]) if isinstance(index, slice) else modules[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of Modules whose parameters the parent sees (a plain list would hide them)."""

    def __init__(self, modules=()):
        super().__init__()
        self.extend(modules)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def __getitem__(self, index):
        modules = list(self._modules.values())
        return ModuleList(modules[index]) if isinstance(index, slice) else modules[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())
