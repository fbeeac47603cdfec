"""Which array library holds the data: numpy on the CPU, cupy on an NVIDIA GPU.

Every op is written once against an array module ``xp`` found from its inputs
(``xp = get_array_module(a)``). The few things numpy and cupy spell differently
live in one table, minidl.kernels (``backend_for(xp)``), so a faster kernel can replace a
generic path without touching any op.

cupy is optional: importing minidl never needs it.
"""

from __future__ import annotations

import os

import numpy

try:  # cupy is optional; a missing or broken install simply means "no GPU"
    import cupy  # type: ignore[import-not-found]
except Exception:  # pragma: no cover - depends on the machine
    cupy = None


# --------------------------------------------------------------------------- #
# Devices
# --------------------------------------------------------------------------- #
class Device:
    """A place where arrays live: ``Device('cpu')``, ``Device('cuda')``, ``Device('cuda:1')``.

    Compares equal to its string form, so ``t.device == 'cpu'`` reads naturally.
    """

    __slots__ = ("type", "index")

    def __init__(self, spec: "str | Device" = "cpu"):
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"Device: expected a string like 'cpu', 'cuda' or 'cuda:0', got {spec!r}")
        kind, _, index = spec.strip().lower().partition(":")
        if kind not in ("cpu", "cuda") or (kind == "cpu" and index):
            raise ValueError(f"Device: expected 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
        if index and not index.isdigit():
            raise ValueError(f"Device: the index in {spec!r} must be a non-negative integer")
        self.type = kind
        self.index = int(index) if kind == "cuda" and index else (0 if kind == "cuda" else None)

    def __str__(self) -> str:
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    def __repr__(self) -> str:
        return f"device('{self}')"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = Device(other)
            except (TypeError, ValueError):
                return False
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))


def cuda_is_available() -> bool:
    """True when cupy imports and sees at least one GPU."""
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # pragma: no cover - driver problems
        return False


def check_device_usable(device: Device) -> None:
    """Raise a clear error if ``device`` cannot hold arrays on this machine."""
    if device.type == "cpu":
        return
    if not cuda_is_available():
        raise RuntimeError(
            f"device '{device}' was requested but CUDA is not available: "
            "install the CuPy that matches your driver's CUDA (pip install 'minidl[cuda12]' or "
            "'minidl[cuda13]'; nvidia-smi shows the version) "
            "and check that a GPU is visible, or use device='cpu'"
        )
    count = cupy.cuda.runtime.getDeviceCount()
    if device.index >= count:
        raise RuntimeError(f"device '{device}' was requested but only {count} GPU(s) are visible")


try:
    _default_device = Device(os.environ.get("MINIDL_DEVICE", "cpu"))
except ValueError as error:
    raise ValueError(f"environment variable MINIDL_DEVICE: {error}") from None


def set_default_device(device: "str | Device") -> None:
    """Set where new tensors go when no ``device=`` is given (also env ``MINIDL_DEVICE``)."""
    global _default_device
    device = Device(device)
    check_device_usable(device)
    _default_device = device


def get_default_device() -> Device:
    return _default_device


# --------------------------------------------------------------------------- #
# Arrays
# --------------------------------------------------------------------------- #
def is_cupy_array(a) -> bool:
    return cupy is not None and isinstance(a, cupy.ndarray)


def get_array_module(*arrays):
    """numpy, unless one of ``arrays`` is a cupy array (then cupy)."""
    for a in arrays:
        if is_cupy_array(a):
            return cupy
    return numpy


_CPU = Device("cpu")


_GPUS: dict = {}  # GPU index -> Device, so that every op's device check does not parse a string


def device_of(array) -> Device:
    """The Device an array lives on."""
    if is_cupy_array(array):
        index = array.device.id
        if index not in _GPUS:
            _GPUS[index] = Device(f"cuda:{index}")
        return _GPUS[index]
    return _CPU


def array_module_for(device: Device):
    return numpy if device.type == "cpu" else cupy


def to_device(array, device: Device):
    """Copy ``array`` to ``device`` (no copy when it is already there)."""
    device = Device(device)
    if device.type == "cpu":
        return cupy.asnumpy(array) if is_cupy_array(array) else numpy.asarray(array)
    check_device_usable(device)
    with cupy.cuda.Device(device.index):
        if is_cupy_array(array) and array.device.id == device.index:
            return array
        return cupy.asarray(array)


def to_numpy(array) -> numpy.ndarray:
    """A host numpy array, whatever device ``array`` lives on."""
    return cupy.asnumpy(array) if is_cupy_array(array) else numpy.asarray(array)
