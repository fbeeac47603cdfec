"""What a training step would cost on a GPU, counted on the CPU stand-in.

From ``minidl.fakecupy.install()`` on, every device-array operation reports here::

    from minidl.fakecupy import meter
    with meter.measure() as m:
        train_step()
    m.report()   # {'launches': 412, 'syncs': 0, ...}
    m.sites(15)  # [('minidl/ops/conv.py:88 forward', 24), ...]: where the launches came from

What counts:

* ``launches``: every call that makes new data or writes: ufuncs (with ``out=``, ``.at``,
  ``.reduce`` too), reductions, matmul/dot (also in ``matmuls``), copies (``astype``, a reshape
  that must copy, ``concatenate``, ``pad``, ``where``, ``take`` ...), gathers (advanced-index
  getitem) and setitem, random draws, hand-written kernels (also in ``kernels``). A result
  that is a view of an existing buffer costs nothing; a batched (3-D+) matmul operand that is
  not C-contiguous adds one copy (cuBLAS needs it contiguous). ``empty`` launches nothing.
  Host-to-device and device-to-host copies are counted as bytes, not launches.
* ``syncs``: the host waits for the GPU: ``.item()``, ``float()``, ``int()``, ``bool()``,
  ``.get()``, ``asnumpy``, ``tolist``, printing, boolean-mask indexing and functions whose
  result size depends on the data (``nonzero``, ``argwhere``, ``unique`` ...).
* ``h2d_bytes``, ``d2h_bytes``: bytes moved onto and off the device; ``uploads``: how many host-to-device
  copies (each a few microseconds of latency: CuPy stages the data in pinned memory and copies
  asynchronously, so an upload is not a sync; ``asarray(..., blocking=True)`` is, and counts as one).
* ``float64_arrays``: new device buffers of dtype float64; ``allocated_bytes``: all new buffers.
* ``peak_live_bytes``: the most device memory alive at once inside the region, starting from
  what is alive when it starts (so parameters and optimizer state count). A buffer is alive
  from its creation until Python frees it (``weakref.finalize``); cupy's pool may keep more.
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from collections import Counter
from pathlib import Path

import numpy

_FAKE_DIR = str(Path(__file__).resolve().parent)
_MINIDL_DIR = str(Path(__file__).resolve().parents[1])
_REPO_DIR = str(Path(__file__).resolve().parents[2])
_NUMPY_DIR = str(Path(numpy.__file__).resolve().parent)
_KERNELS_DIR = str(Path(__file__).resolve().parents[1] / "kernels")
_LAUNCHER = str(Path(_KERNELS_DIR) / "launch.py")  # the generic launcher: credit the entry that called it
COUNTS = ("launches", "syncs", "h2d_bytes", "d2h_bytes", "uploads", "float64_arrays", "allocated_bytes", "matmuls",
          "kernels")


class _State:
    def __init__(self):
        self.counts = Counter()
        self.buffers = 0  # how many device buffers were ever made (a call that changes it made new data)
        self.live_bytes = 0
        self.live: dict = {}  # id(owning numpy buffer) -> its bytes, while alive
        self.regions: list = []  # the measurements now open
        self.pointers = weakref.WeakValueDictionary()  # fake device pointer -> numpy array


STATE = _State()


def _root(array):
    while isinstance(array.base, numpy.ndarray):
        array = array.base
    return array


def _release(key, nbytes):
    if STATE.live.pop(key, None) is not None:
        STATE.live_bytes -= nbytes


def adopt(array) -> None:
    """Register ``array``'s buffer as device memory, unless it is a view of one already known."""
    root = _root(array)
    key = id(root)
    if key in STATE.live:
        return
    nbytes = root.nbytes
    STATE.live[key] = nbytes
    weakref.finalize(root, _release, key, nbytes)
    STATE.buffers += 1
    STATE.live_bytes += nbytes
    STATE.counts["allocated_bytes"] += nbytes
    if array.dtype == numpy.float64:
        STATE.counts["float64_arrays"] += 1
    for region in STATE.regions:
        if STATE.live_bytes > region.peak:
            region.peak = STATE.live_bytes


def pointer(array) -> int:
    """A device pointer for ``array`` (its payload's address: unique per live buffer, offset in views)."""
    ptr = array.__array_interface__["data"][0]
    STATE.pointers[ptr] = array
    return ptr


def array_at(ptr: int):
    """The numpy payload that ``ndarray.data.ptr`` gave ``ptr`` (for kernels taking pointer tables)."""
    try:
        return STATE.pointers[int(ptr)]
    except KeyError:
        raise ValueError(f"fakecupy: no live device array has pointer {ptr:#x} (take it from a.data.ptr)") from None


def launch() -> None:
    STATE.counts["launches"] += 1
    if STATE.regions:
        _record_site("launches")


def sync(d2h_bytes: int = 0) -> None:
    STATE.counts["syncs"] += 1
    STATE.counts["d2h_bytes"] += d2h_bytes
    if STATE.regions:
        _record_site("syncs")


def transfer_in(nbytes: int) -> None:
    STATE.counts["h2d_bytes"] += nbytes
    STATE.counts["uploads"] += 1
    if STATE.regions:
        _record_site("h2d_bytes", nbytes)


def matmul() -> None:
    STATE.counts["matmuls"] += 1


def kernel() -> None:
    STATE.counts["kernels"] += 1


_kind_of_file: dict = {}  # filename -> 0 fakecupy, numpy, kernels/launch.py; 3 kernels/; 1 rest of minidl; 2 outside


def _kind(filename):
    kind = _kind_of_file.get(filename)
    if kind is None:
        path = str(Path(filename).resolve()) if not filename.startswith("<") else filename
        kind = (0 if path.startswith((_FAKE_DIR, _NUMPY_DIR, _LAUNCHER)) else 3 if path.startswith(_KERNELS_DIR)
                else 1 if path.startswith(_MINIDL_DIR) else 2)
        _kind_of_file[filename] = kind
    return kind


def _describe(frame):
    filename = frame.f_code.co_filename
    if filename.startswith(_REPO_DIR):
        filename = filename[len(_REPO_DIR) + 1:]
    return f"{filename}:{frame.f_lineno} {frame.f_code.co_name}"


def _record_site(what, amount=1):
    """Credit the innermost frame inside minidl/ (outside fakecupy/), else the innermost caller's;
    a backend-table entry (minidl/kernels/) is followed by its caller: 'kernels/... <- ops/...'."""
    frame, fallback = sys._getframe(2), None
    while frame is not None:
        kind = _kind(frame.f_code.co_filename)
        if kind in (1, 3):
            break
        if kind == 2 and fallback is None:
            fallback = frame
        frame = frame.f_back
    frame = frame or fallback
    if frame is None:
        return
    site = _describe(frame)
    if _kind(frame.f_code.co_filename) == 3:
        caller = frame.f_back
        while caller is not None and _kind(caller.f_code.co_filename) in (0, 3):
            caller = caller.f_back
        if caller is not None:
            site += f" <- {_describe(caller)}"
    for region in STATE.regions:
        region.site_counts[what][site] += amount


class Measurement:
    """The counts of one ``measure()`` region (read them with ``report()`` and ``sites()``)."""

    def __init__(self):
        self.start = Counter(STATE.counts)
        self.end = None
        self.peak = STATE.live_bytes
        self.site_counts = {"launches": Counter(), "syncs": Counter(), "h2d_bytes": Counter()}

    def report(self) -> dict:
        """Counts in the region (so far, while it is open), plus ``peak_live_bytes``."""
        end = self.end if self.end is not None else STATE.counts
        result = {name: end[name] - self.start[name] for name in COUNTS}
        result["peak_live_bytes"] = self.peak
        return result

    def sites(self, top: int = 15, what: str = "launches") -> list:
        """The ``top`` places in minidl that made the most launches (or ``what='syncs'``, ``'h2d_bytes'``):
        a list of ("file:line function", count), the innermost frame in minidl outside the stand-in; for a
        backend-table entry, " <- file:line function" of the code that called it."""
        return self.site_counts[what].most_common(top)


@contextlib.contextmanager
def measure():
    """Count what the block does on the device: ``with measure() as m: ...; m.report()``."""
    region = Measurement()
    STATE.regions.append(region)
    try:
        yield region
    finally:
        STATE.regions.remove(region)
        region.end = Counter(STATE.counts)


def totals() -> dict:
    """Everything counted since the stand-in was imported, plus the live device bytes now."""
    return {**{name: STATE.counts[name] for name in COUNTS}, "live_bytes": STATE.live_bytes}
