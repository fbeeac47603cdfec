"""Checkpoints: ``minidl.save(obj, path)`` and ``minidl.load(path)``, with no pickle anywhere.

``obj`` is what a training script wants to keep, usually nested dicts::

    minidl.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "epoch": 7, "metadata": {"dataset": "cifar10"}}, "run/ckpt.npz")

The file is an ordinary ``.npz`` archive (open it with ``numpy.load(path,
allow_pickle=False)``): one entry per array, ``a0``, ``a1``, ..., and one entry,
``__minidl__``, holding UTF-8 JSON that describes the nesting (dicts, OrderedDicts,
lists, tuples, numbers, strings, None) and names the entry each Tensor or array is in.

* Saving writes a temporary file in the same folder and renames it over ``path``,
  so a crash mid-save leaves the old checkpoint whole.
* Loading puts every array on the CPU (numpy), whatever device saved it, unless
  ``map_location`` names another device.
* Loading reads and checks everything (the zip's CRC-32 of every entry, the JSON,
  every array the JSON refers to) before returning anything: a truncated, corrupted
  or foreign file raises ``CheckpointError`` naming the file, so ``load_state_dict``
  never sees half a checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections import OrderedDict

import numpy

from minidl import backend
from minidl.tensor import Tensor

HEADER = "__minidl__"
FORMAT = "minidl.checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A file that is not a whole, readable minidl checkpoint."""


# --------------------------------------------------------------------------- #
# Saving
# --------------------------------------------------------------------------- #
def save(obj, path) -> None:
    """Write ``obj`` (nested dicts/lists/tuples of Tensors, arrays, numbers, strings, None) to ``path``."""
    arrays = {}
    structure = _encode(obj, arrays, "obj")
    header = {"format": FORMAT, "version": VERSION, "structure": structure}
    arrays[HEADER] = numpy.frombuffer(json.dumps(header).encode("utf-8"), dtype=numpy.uint8)

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as file:
            numpy.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def _encode(value, arrays: dict, where: str) -> dict:
    """A JSON description of ``value``; its arrays go into ``arrays`` under new names."""
    if isinstance(value, Tensor):
        return {"type": "tensor", "array": _store(value.data, arrays, where), "requires_grad": value.requires_grad}
    if isinstance(value, numpy.ndarray) or backend.is_cupy_array(value):
        return {"type": "array", "array": _store(value, arrays, where)}
    if isinstance(value, numpy.generic):
        return {"type": "scalar", "array": _store(numpy.asarray(value), arrays, where)}
    if value is None or isinstance(value, (bool, str)):
        return {"type": "value", "value": value}
    if isinstance(value, (int, float)):  # int and float kept apart: 1 and 1.0 come back as they went
        return {"type": type(value).__name__, "value": value}
    if isinstance(value, (list, tuple)):
        items = [_encode(item, arrays, f"{where}[{i}]") for i, item in enumerate(value)]
        return {"type": type(value).__name__, "items": items}
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"save: dict keys must be strings or integers, got {key!r} in {where}")
        return {
            "type": "OrderedDict" if isinstance(value, OrderedDict) else "dict",
            "keys": list(value),
            "values": [_encode(item, arrays, f"{where}[{key!r}]") for key, item in value.items()],
        }
    raise TypeError(
        f"save: cannot store a {type(value).__name__} at {where}; checkpoints hold dicts, lists, tuples, "
        "Tensors, arrays, numbers, strings and None (save model.state_dict(), not the model)"
    )


def _store(array, arrays: dict, where: str) -> str:
    array = backend.to_numpy(array)
    if array.dtype.hasobject:
        raise TypeError(f"save: the array at {where} holds Python objects, which only pickle could store")
    name = f"a{len(arrays)}"
    arrays[name] = array
    return name


# --------------------------------------------------------------------------- #
# Loading
# --------------------------------------------------------------------------- #
def load(path, map_location=None):
    """Read a checkpoint written by ``save``; Tensors and arrays land on ``map_location`` (default: CPU)."""
    path = os.fspath(path)
    device = backend.Device("cpu" if map_location is None else map_location)
    backend.check_device_usable(device)
    header, arrays = _read_archive(path)
    used = set()
    try:
        obj = _decode(header["structure"], arrays, used, device)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise CheckpointError(
            f"load: {path!r} has a damaged structure description ({type(error).__name__}: {error})"
        ) from None
    if used != set(arrays):
        raise CheckpointError(f"load: {path!r} holds arrays its description never uses: {sorted(set(arrays) - used)}")
    return obj


def _read_archive(path: str):
    """The JSON header and every array, all read (and CRC-checked) into memory."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no checkpoint at {path!r}")
    try:
        archive = numpy.load(path, allow_pickle=False)
    except Exception as error:
        raise CheckpointError(
            f"load: {path!r} is not a readable minidl checkpoint (truncated, corrupted or another format): "
            f"{type(error).__name__}: {error}"
        ) from None
    if not isinstance(archive, numpy.lib.npyio.NpzFile):
        raise CheckpointError(f"load: {path!r} is a single .npy array, not a minidl checkpoint (.npz)")
    try:
        with archive:
            if HEADER not in archive.files:
                raise CheckpointError(
                    f"load: {path!r} is an .npz file but not a minidl checkpoint (no {HEADER!r} entry)"
                )
            header = json.loads(archive[HEADER].tobytes().decode("utf-8"))
            arrays = {name: archive[name] for name in archive.files if name != HEADER}
    except CheckpointError:
        raise
    except Exception as error:
        raise CheckpointError(
            f"load: {path!r} is truncated or corrupted and was not loaded: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"load: {path!r} does not say it is a {FORMAT} file")
    if header.get("version") != VERSION:
        raise CheckpointError(
            f"load: {path!r} is format version {header.get('version')!r}; this minidl reads version {VERSION}"
        )
    return header, arrays


def _decode(node: dict, arrays: dict, used: set, device):
    kind = node["type"]
    if kind in ("tensor", "array", "scalar"):
        name = node["array"]
        if name in used:
            raise ValueError(f"array {name!r} is referred to twice")
        used.add(name)
        array = arrays[name]
        if kind == "scalar":
            return array[()]
        array = backend.to_device(array, device)
        return Tensor.wrap(array).requires_grad_(node["requires_grad"]) if kind == "tensor" else array
    if kind in ("value", "int", "float"):
        value = node["value"]
        return {"int": int, "float": float}.get(kind, lambda v: v)(value)
    if kind in ("list", "tuple"):
        items = [_decode(item, arrays, used, device) for item in node["items"]]
        return tuple(items) if kind == "tuple" else items
    if kind in ("dict", "OrderedDict"):
        if len(node["keys"]) != len(node["values"]):
            raise ValueError("a dict has different numbers of keys and values")
        items = [(key, _decode(item, arrays, used, device)) for key, item in zip(node["keys"], node["values"])]
        return OrderedDict(items) if kind == "OrderedDict" else dict(items)
    raise ValueError(f"unknown entry type {kind!r}")
