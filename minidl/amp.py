"""Mixed precision: ``autocast`` runs the heavy products in float16, ``GradScaler`` keeps
their small gradients from vanishing. PyTorch's ``torch.cuda.amp``, written out.

    model = ...                                   # float32 parameters: the master weights
    scaler = minidl.amp.GradScaler()
    for x, y in loader:
        optimizer.zero_grad()
        with minidl.amp.autocast():
            loss = F.cross_entropy(model(x), y)   # matmuls in float16, the loss in float32
        scaler.scale(loss).backward()             # loss * 65536: small float16 gradients stay > 0
        scaler.step(optimizer)                    # grads / 65536; skipped if one is inf or NaN
        scaler.update()                           # halve the scale after a skip, grow it when calm

**What autocast changes.** Inside ``with autocast():`` some ops first cast their floating
inputs, with a recorded cast (``Tensor.astype``, whose gradient is cast back), so the
parameters stay float32 and their ``.grad`` arrives in float32 (master weights):

* **float16** (matrix products, where tensor cores pay): ``matmul`` / ``@``, ``F.linear``
  (weight and bias too), ``conv1d``, ``conv2d``, the RNN/LSTM/GRU cells and layers
  (``recurrence``, ``*_cell``: fused and composed).
* **float32** (sums of many terms, exp/log of large ranges): ``sum``, ``mean``, ``var``, ``std``,
  ``softmax``, ``log_softmax``, every loss (``cross_entropy``, ``nll_loss``, ``mse_loss``,
  ``binary_cross_entropy_with_logits``), ``batch_norm`` (statistics and output).
* **their inputs' dtype** (everything else: elementwise ops, ``relu``, ``tanh``, pooling,
  reshapes, ``amax``/``max``...): float16 in, float16 out; mixed inputs promote as numpy does,
  float16 + float32 -> float32 (PyTorch's "promote" list).

Only float32 <-> float16 casts happen: float64 inputs (gradient checks) and integers are
left alone. Where minidl differs from PyTorch: batch_norm's output is float32 here (PyTorch's
cuDNN kernel returns float16); exp, log and pow follow their inputs here (float32 in PyTorch);
there is no cast cache (a weight is cast once per call of the op, which for a whole recurrent
layer is once per forward); and layers that check dtypes before their functional form
(``nn.Linear``, ``nn.Conv1d/2d``) need the check relaxed under autocast to take float16 input.

**Where it pays.** On CuPy, float16 matmuls run on tensor cores (several times float32's
throughput on a V100/A100/H100) and activations take half the memory. On NumPy it is a
teaching tool only: there is no float16 BLAS, so NumPy multiplies float16 matrices with a
plain loop. Measured 2026-12-06 on the 2-core build machine (numpy 2.4.6, OpenBLAS 0.3.31),
a 512x512 @ 512x512 matmul, best of 5: 1.35 ms in float32, 519 ms in float16, 385x slower
(a second run, with other jobs on the machine: 4.8 ms and 542 ms, 110x). Keep CPU runs tiny.

**GradScaler.** float16 keeps values down to about 6e-8; smaller gradients flush to zero.
Multiplying the loss by S (2**16) multiplies every gradient by S, lifting them into range;
``unscale_`` divides the parameters' gradients by S again before the update. If S was too
large, some gradient overflows to inf: the step is skipped and S halves. After
``growth_interval`` clean steps in a row S doubles, so it stays near the largest safe value.
"""

from __future__ import annotations

import contextlib
import math
import threading

import numpy

from minidl import backend
from minidl.grad_mode import no_grad
from minidl.tensor import Tensor

_state = threading.local()
_LOW_DTYPES = (numpy.dtype(numpy.float16),)  # numpy has no bfloat16


# --------------------------------------------------------------------------- #
# autocast: the per-thread switch, and the one cast every listed op calls
# --------------------------------------------------------------------------- #
def is_autocast_enabled() -> bool:
    """Whether ops inside the current thread run under autocast."""
    return getattr(_state, "enabled", False)


def get_autocast_dtype() -> numpy.dtype:
    """The low-precision dtype autocast runs matmuls in (float16)."""
    return getattr(_state, "dtype", _LOW_DTYPES[0])


class autocast(contextlib.ContextDecorator):
    """``with minidl.amp.autocast(): ...`` or ``@minidl.amp.autocast()``: inside, the ops listed
    in ``minidl.amp``'s docstring run in float16 or float32 (per thread, like ``no_grad``).
    ``autocast(enabled=False)`` inside it turns it off for a region."""

    def __init__(self, enabled: bool = True, dtype="float16"):
        if not isinstance(enabled, bool):
            raise TypeError(f"autocast: expected enabled to be True or False, got {enabled!r}")
        try:
            self.dtype = numpy.dtype(dtype)
        except TypeError:
            self.dtype = None
        if self.dtype not in _LOW_DTYPES:
            raise ValueError(f"autocast: expected dtype 'float16' (numpy has no bfloat16), got {dtype!r}")
        self.enabled = enabled

    def __enter__(self):
        self.previous = (is_autocast_enabled(), get_autocast_dtype())
        _state.enabled, _state.dtype = self.enabled, self.dtype
        return self

    def __exit__(self, *exc):
        _state.enabled, _state.dtype = self.previous
        return False

    def _recreate_cm(self):  # each call of a decorated function gets its own saved state
        return type(self)(self.enabled, self.dtype)


def autocast_inputs(*tensors, to: str = "low"):
    """The inputs of an op, cast for autocast: ``to='low'`` casts float32 Tensors to float16
    (the matmul family), ``to='float32'`` casts float16 Tensors to float32 (reductions, softmax,
    losses, batch norm). Anything else (float64, integers, None, non-Tensors) comes back as it is,
    and outside autocast everything does. One argument gives one result, several a tuple:
    ``x = autocast_inputs(x, to='float32')``, ``a, b = autocast_inputs(a, b)``.

    The cast is a recorded op (``Tensor.astype``), so the gradient is cast back to float32."""
    if to not in ("low", "float32"):
        raise ValueError(f"autocast_inputs: expected to='low' or to='float32', got {to!r}")
    if is_autocast_enabled():
        source, target = (numpy.dtype(numpy.float32), get_autocast_dtype())
        if to == "float32":
            source, target = target, source
        tensors = tuple(t.astype(target) if isinstance(t, Tensor) and t.dtype == source else t for t in tensors)
    return tensors[0] if len(tensors) == 1 else tensors


# --------------------------------------------------------------------------- #
# GradScaler
# --------------------------------------------------------------------------- #
_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"  # an optimizer's stage within one step


class GradScaler:
    """Loss scaling for float16 training, with PyTorch's API and semantics.

    ``scale(loss)`` = loss * S;  ``unscale_(optimizer)`` divides each parameter's ``.grad`` by S
    (once per step) and notes whether any is inf or NaN;  ``step(optimizer)`` unscales if not yet
    done and calls ``optimizer.step()`` unless a gradient was inf/NaN;  ``update()`` sets
    S = S * backoff_factor after a skipped step, S = S * growth_factor after ``growth_interval``
    clean steps in a row.  With ``enabled=False`` every method passes through (S = 1).

    The inf/NaN check runs on the gradients' device; ``step`` reads its one-element result
    once (on a GPU that is the step's one synchronisation).
    """

    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        if not isinstance(enabled, bool):
            raise TypeError(f"GradScaler: expected enabled to be True or False, got {enabled!r}")
        self._scale = _number("init_scale", init_scale, lambda v: v > 0, "a finite number > 0")
        self._growth_factor = _number("growth_factor", growth_factor, lambda v: v > 1, "a finite number > 1")
        self._backoff_factor = _number("backoff_factor", backoff_factor, lambda v: 0 < v < 1,
                                       "a number between 0 and 1")
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, int) or growth_interval < 1:
            raise ValueError(f"GradScaler: expected growth_interval to be an int >= 1, got {growth_interval!r}")
        self._growth_interval, self._growth_tracker = growth_interval, 0
        self._enabled, self._scale_used = enabled, False
        self._optimizers = {}  # id(optimizer) -> {"stage": ..., "found_inf": device array or bool}

    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        """The current scale S (1.0 when disabled)."""
        return self._scale if self._enabled else 1.0

    def scale(self, outputs):
        """outputs * S, for a Tensor or a (nested) list/tuple of Tensors. A float16 output is cast
        to float32 first (S = 65536 times a float16 value overflows float16's 65504)."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        if not isinstance(outputs, Tensor):
            raise TypeError(f"GradScaler.scale: expected a Tensor or a list/tuple of Tensors, "
                            f"got {type(outputs).__name__}")
        self._scale_used = True
        if outputs.dtype == numpy.float16:
            outputs = outputs.astype(numpy.float32)
        return outputs * self._scale

    def unscale_(self, optimizer) -> None:
        """Divide every parameter's ``.grad`` by S, in place; note (on the device) whether any is inf/NaN."""
        if not self._enabled:
            return
        state = self._stage_of(optimizer, "unscale_")
        if state["stage"] != _READY:
            raise RuntimeError(
                f"GradScaler.unscale_: expected one unscale_() per optimizer between update() calls, got a second "
                f"call ({'after step()' if state['stage'] == _STEPPED else 'it was already unscaled'})"
            )
        inverse, flags = 1.0 / self._scale, []
        with no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.mul_(inverse)
                        flags.append(~backend.get_array_module(p.grad.data).isfinite(p.grad.data).all())
        state["found_inf"] = _any(flags)
        state["stage"] = _UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """Unscale (unless ``unscale_`` already did), then ``optimizer.step(*args, **kwargs)`` unless a
        gradient is inf or NaN; returns what optimizer.step returns, or None when skipped."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        state = self._stage_of(optimizer, "step")
        if state["stage"] == _STEPPED:
            raise RuntimeError("GradScaler.step: expected one step() per optimizer between update() calls, "
                               "got a second one; call scaler.update() after each step")
        if state["stage"] == _READY:
            self.unscale_(optimizer)
        state["found_inf"] = bool(state["found_inf"])  # the one read of the device flag per step
        state["stage"] = _STEPPED
        return None if state["found_inf"] else optimizer.step(*args, **kwargs)

    def update(self, new_scale=None) -> None:
        """Back off after a skipped step, grow after ``growth_interval`` clean ones (or set
        ``new_scale``); then start the next step (every optimizer may be unscaled again)."""
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = _number("update's new_scale", new_scale, lambda v: v > 0, "a finite number > 0")
        elif not self._optimizers:
            raise RuntimeError("GradScaler.update: expected unscale_() or step() on an optimizer since the last "
                               "update(), got neither")
        elif any(bool(s["found_inf"]) for s in self._optimizers.values()):
            self._scale *= self._backoff_factor
            self._growth_tracker = 0
        else:
            self._growth_tracker += 1
            if self._growth_tracker == self._growth_interval:
                grown = self._scale * self._growth_factor
                if grown <= numpy.finfo(numpy.float32).max:  # as PyTorch: S stays a finite float32
                    self._scale = grown
                self._growth_tracker = 0
        self._optimizers = {}

    def state_dict(self) -> dict:
        """Plain numbers (PyTorch's keys), for ``minidl.save``; empty when disabled, as PyTorch."""
        if not self._enabled:
            return {}
        return {"scale": self._scale, "growth_factor": self._growth_factor, "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            return
        if not isinstance(state_dict, dict) or not state_dict:
            raise RuntimeError(f"GradScaler.load_state_dict: expected a GradScaler's state_dict, got {state_dict!r} "
                               "(a disabled GradScaler saves an empty one)")
        missing = {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"} - set(state_dict)
        if missing:
            raise KeyError(f"GradScaler.load_state_dict: expected the keys of state_dict(), missing {sorted(missing)}")
        restored = GradScaler(float(state_dict["scale"]), float(state_dict["growth_factor"]),
                              float(state_dict["backoff_factor"]), int(state_dict["growth_interval"]))
        self._scale, self._growth_factor = restored._scale, restored._growth_factor
        self._backoff_factor, self._growth_interval = restored._backoff_factor, restored._growth_interval
        self._growth_tracker = int(state_dict["_growth_tracker"])

    def _stage_of(self, optimizer, method: str) -> dict:
        """This step's record for ``optimizer``, after checking that scale() came first."""
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"GradScaler.{method}: expected an optimizer (with param_groups), "
                            f"got {type(optimizer).__name__}")
        if not self._scale_used:
            raise RuntimeError(f"GradScaler.{method}: expected scaler.scale(loss) earlier in the iteration, "
                               "got no call of scale()")
        return self._optimizers.setdefault(id(optimizer), {"stage": _READY, "found_inf": False})


def _number(name, value, ok, expected) -> float:
    """A checked float hyper-parameter of GradScaler."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise ValueError(f"GradScaler: expected {name} to be {expected}, got {value!r}")
    return float(value)


def _any(flags):
    """One device flag: whether any of ``flags`` (0-d boolean arrays on one device) is set."""
    if not flags:
        return False
    return backend.get_array_module(flags[0]).stack(flags).any()
