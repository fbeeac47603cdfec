"""Strict API mode: every name and keyword minidl takes from the stand-in must exist in real cupy.

The stand-in offers numpy's whole namespace, so on its own it would let minidl call a function
or pass a keyword that cupy lacks (``numpy.ptp``, ``sum(where=...)``) and the bug would show only
on a GPU. When the real cupy package imports (it does without a GPU: the wheel needs no driver to
import), each name the stand-in hands out (``cupy.X``, ``cupy.random.X``, ``cupy.fft.X``, ufunc
methods, ``ndarray`` methods and attributes) is checked with ``hasattr`` against the real module,
and each keyword argument against the real signature: ``inspect.signature``, or for cupy's Cython
functions the signature on the first line of their ``__doc__``. A miss raises TypeError naming
cupy's version. Every check is cached, so a name costs one dict look-up after its first use.

``STRICT`` says whether strict mode is on (False where cupy does not import).
"""

from __future__ import annotations

import inspect
import re

try:  # the real cupy, only to read its API (no GPU is touched)
    import cupy as _real
    STRICT = True
    VERSION = _real.__version__
except Exception:  # no cupy (or a broken install): strict mode is off
    _real, STRICT, VERSION = None, False, None

_names: dict = {}  # (path, name) -> error message or None
_calls: dict = {}  # (path, keywords) -> error message or None
_keywords: dict = {}  # path -> set of keyword names, or None for "any"


def _resolve(path):
    """The real object at a dotted path such as 'cupy.random.default_rng' (None if absent)."""
    target = _real
    for part in path.split(".")[1:]:
        target = getattr(target, part, None)
        if target is None:
            return None
    return target


def check_name(path: str, name: str) -> None:
    """Raise unless real cupy has ``path.name`` (e.g. path 'cupy.ndarray', name 'ptp')."""
    if not STRICT:
        return
    key = (path, name)
    message = _names.get(key, False)
    if message is False:
        owner = _resolve(path)
        message = None
        if owner is not None and not hasattr(owner, name):
            message = f"fakecupy (strict): cupy {VERSION} has no {path}.{name}"
        _names[key] = message
    if message:
        raise TypeError(message)


def check_call(path: str, kwargs: dict) -> None:
    """Raise if a keyword in ``kwargs`` is not one that real cupy's ``path`` accepts."""
    if not STRICT or not kwargs:
        return
    key = (path, tuple(kwargs))
    message = _calls.get(key, False)
    if message is False:
        accepted = _accepted_keywords(path)
        unknown = [k for k in kwargs if accepted is not None and k not in accepted]
        message = None
        if unknown:
            message = (f"fakecupy (strict): cupy {VERSION} has no keyword {unknown[0]}= in {path}() "
                       f"(it takes {', '.join(sorted(accepted)) or 'none'})")
        _calls[key] = message
    if message:
        raise TypeError(message)


def _accepted_keywords(path):
    if path not in _keywords:
        _keywords[path] = _read_keywords(_resolve(path))
    return _keywords[path]


def _read_keywords(function):
    """The keyword names ``function`` accepts, or None when it takes **kwargs or cannot be read."""
    if function is None:
        return None
    try:
        parameters = inspect.signature(function).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return None
        return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    except (TypeError, ValueError):
        return _keywords_from_doc(getattr(function, "__doc__", None) or "")


def _keywords_from_doc(doc):
    """Keywords from a Cython docstring's first line: 'add(x1, x2, /, out=None, \\*, dtype=None)'."""
    match = re.match(r"\s*[\w.]+\((.*)\)", doc.splitlines()[0] if doc else "")
    if not match:
        return None
    names, positional_only = [], False
    for part in match.group(1).replace("\\*", "*").split(","):
        part = part.split("=")[0].strip()
        if part.startswith("**"):
            return None
        if part == "/":
            names, positional_only = [], True  # everything before '/' is positional only
            continue
        if part and part not in ("*", "self") and not part.startswith("*"):
            names.append(part)
    return set(names)
