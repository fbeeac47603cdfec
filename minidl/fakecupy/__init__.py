"""A CPU stand-in for cupy: the 'cuda' half of the tests runs where no GPU is lent, and a training
step's GPU cost (launches, syncs, transfers, float64 arrays, peak memory) is counted without one.

Opt in: ``MINIDL_FAKE_CUDA=1 python -m pytest -n 2 -q -m gpu`` (tests/conftest.py calls
``install()``, which puts this module where minidl.backend keeps ``cupy``), or run one script
under it: ``python -m minidl.fakecupy lessons/03_mlp_spiral.py --smoke --device cuda``
(``python -m minidl.fakecupy -m minidl.bench --smoke --device cuda`` for a module;
``python tests/fakecupy.py ...`` does the same). The cost of a step: minidl.fakecupy.meter,
and ``python -m minidl.gpu_cost``.

A device array here is ``fakecupy.ndarray``: a wrapper round a numpy array (not a numpy subclass,
just as cupy.ndarray is not), holding cupy's rules about meeting host data:

* a ufunc or operator mixing it with a host numpy array (of any ndim, 0-d included) or a
  list raises TypeError; Python and numpy scalars are fine;
* ``numpy.asarray(device_array)`` raises TypeError (no ``__array__``, no array interface);
  ``.get()``, ``cupy.asnumpy``, ``.item()``, ``.tolist()``, ``float()``, ``int()`` work;
* ``numpy.f(device_array)`` dispatches to ``cupy.f`` (``__array_function__``), as cupy does;
* ``cupy.f(host_array)`` raises, except ``array``/``asarray`` (which copy to the device);
* indices may be host arrays or lists; a basic-slice assignment of a host array raises;
* reductions give 0-d device arrays, and scalar indexing a 0-d view, not numpy scalars;
* ``cupy.random.default_rng`` has cupy's methods only (no permutation, choice, normal), and its
  bit generators (XORWOW, Philox4x3210 ...) keep their state unreadable, as cupy's do;
* ``ufunc.at`` keeps numpy's dtype rules; ``RawModule``/``RawKernel`` check each argument against
  the kernel's C signature and run the kernel's NumPy twin (``minidl.kernels.EMULATORS``);
* ``a.data.ptr`` is a unique address per buffer; ``array_at(ptr)`` gives that buffer back;
* ``cupy.asarray``/``array`` of host data copy asynchronously, as CuPy 14 does through pinned
  memory (``blocking=True`` counts as a sync); ``cupy._core.set_compute_type``/``get_compute_type``
  (the TF32 switch) record the compute type but change no value;
* strict mode (``STRICT``, on when the real cupy package imports): a name or keyword that real
  cupy lacks raises TypeError (minidl.fakecupy.strict).

What a green run under the fake proves: the cupy branches of minidl run, keep device data on
the device, never hand device data to numpy (or host data to cupy), and use only cupy's API.
What it cannot show: speed, kernels' own correctness on a GPU (the emulators run the NumPy twins),
streams and asynchrony, float rounding that differs on the GPU, more than one GPU, and the exact
dtype rules where cupy and numpy differ.
"""

from __future__ import annotations

import sys

import numpy

from minidl.fakecupy import meter, strict
from minidl.fakecupy.arrays import device_attribute, ndarray
from minidl.fakecupy.cuda_api import (RawKernel, RawModule, _core, array, asanyarray, asarray, asnumpy, cuda,
                                      get_default_memory_pool)
from minidl.fakecupy.meter import array_at, measure
from minidl.fakecupy.rng import random

STRICT = strict.STRICT
__all__ = ["ndarray", "array", "asarray", "asanyarray", "asnumpy", "get_array_module", "cuda", "random",
           "get_default_memory_pool", "RawModule", "RawKernel", "array_at", "measure", "meter", "install", "STRICT"]


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else numpy


_attributes: dict = {}


def __getattr__(name):  # cupy.exp, cupy.pad, cupy.float32, cupy.fft, cupy.lib ...: numpy's, on the device
    if name.startswith("__"):
        raise AttributeError(name)
    attribute = _attributes.get(name)
    if attribute is None:
        strict.check_name("cupy", name)
        attribute = _attributes[name] = device_attribute(getattr(numpy, name), f"cupy.{name}")
    return attribute


def install():
    """Make minidl see one GPU, 'cuda:0', backed by this module (and the backend table use it)."""
    from minidl import backend, kernels
    from minidl import random as random_state

    module = sys.modules[__name__]
    backend.cupy, kernels.CupyBackend.xp = module, module
    random_state._default_generators.clear()  # none was made for a GPU that was not there
