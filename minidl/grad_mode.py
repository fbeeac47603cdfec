"""The engine's two switches: grad recording (``no_grad``) and anomaly detection.

Both are per thread and work as context managers and as decorators, like PyTorch's.
Anomaly mode makes every op remember where in the user's code it was called, and
checks what forward and backward produce for NaN (and backward for inf), so that the
first op to go wrong is named, with that place, instead of a NaN loss many steps later.
"""

from __future__ import annotations

import contextlib
import threading
import traceback

from minidl import backend

# --------------------------------------------------------------------------- #
# Modes: grad recording, anomaly detection
# --------------------------------------------------------------------------- #
_state = threading.local()


def is_grad_enabled() -> bool:
    """Whether ops currently record the graph."""
    return getattr(_state, "enabled", True)


def is_anomaly_enabled() -> bool:
    """Whether ops keep their creation stack and every gradient is checked for NaN/inf."""
    return getattr(_state, "anomaly", False)


def set_detect_anomaly(mode: bool) -> None:
    """Turn anomaly detection on or off (slow: for finding the op behind a NaN, not for training)."""
    _state.anomaly = bool(mode)


class _Mode(contextlib.ContextDecorator):
    """Context manager and decorator that sets one flag of ``_state`` and restores it on exit."""

    flag = "enabled"

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        self.previous = getattr(_state, self.flag, self.flag == "enabled")
        setattr(_state, self.flag, self.enabled)
        return self

    def __exit__(self, *exc):
        setattr(_state, self.flag, self.previous)
        return False

    def _recreate_cm(self):  # each call of a decorated function gets its own saved state
        return type(self)(self.enabled)


def no_grad(func=None):
    """Record nothing inside: ``with minidl.no_grad(): ...``, ``@minidl.no_grad()`` or ``@minidl.no_grad``."""
    mode = _Mode(False)
    return mode if func is None else mode(func)


def enable_grad(func=None):
    """Record the graph inside, even within ``no_grad`` (a context manager or a decorator, like no_grad)."""
    mode = _Mode(True)
    return mode if func is None else mode(func)


class set_grad_enabled(_Mode):
    """``with set_grad_enabled(training): ...``"""


class detect_anomaly(_Mode):
    """``with detect_anomaly(): loss.backward()``: the first op whose forward makes a NaN, or whose
    backward returns a NaN or inf, raises an error that shows where in your code that op was called."""

    flag = "anomaly"

    def __init__(self, enabled: bool = True):
        super().__init__(enabled)


def user_frames() -> str:
    """The call stack without minidl's own frames at the top (where the op was called)."""
    frames = traceback.extract_stack()[:-2]
    while frames and "/minidl/" in frames[-1].filename.replace("\\", "/"):
        frames.pop()
    return "".join(traceback.format_list(frames))


def check_finite(function, arrays, phase, what, nan_only=False):
    """Anomaly mode: raise, naming ``function`` and where it was created, on a NaN (or inf)."""
    for i, a in enumerate(arrays):
        if a is None or a.dtype.kind not in "fc":
            continue
        xp = backend.get_array_module(a)
        bad = xp.isnan(a).any() if nan_only else ~xp.isfinite(a).all()
        if bool(bad):
            kind = "NaN" if nan_only or bool(xp.isnan(a).any()) else "inf"
            raise RuntimeError(
                f"detect_anomaly: {function.name}'s {phase} returned {kind} values in its {what} {i}. "
                f"{function.name} was called here:\n{getattr(function, 'stack', '  (not recorded)')}"
            )
