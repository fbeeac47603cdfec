"""The backend table: the few operations whose fast form differs between numpy and cupy.

An op asks ``backend_for(xp)`` (or ``backend_for(array)``) for its table and calls one entry,
``table.col2im(...)``, ``table.max_pool2d(...)``; it never branches on the device itself.
Each family of entries sits in its own module, with both versions side by side:

* the NumPy twin: plain array code, written against ``xp`` so it runs on numpy *and* cupy.
  It is the readable reference: the CPU runs it and the tests compare every kernel with it;
* the CuPy version: a hand-written CUDA kernel (the ``.cu`` file beside the module, compiled
  once per process by NVRTC through ``cupy.RawModule``) that does the same work in one or two
  launches where the twin needs many. It handles float32; other dtypes fall back to the twin.

    basic      scatter_add, matmul (float16 on numpy), the TF32 switch
    conv       im2col and col2im (padding included, one launch each)
    pool       max pooling forward and backward
    norm       batch norm forward and backward, with the ReLU and residual add that follow it
    optim      SGD / Adam / AdamW over every parameter at once
    recurrent  the LSTM cell's pointwise forward and backward
    activation ReLU's backward (one pass, any dense layout)
    loss       cross-entropy against class indices, forward and backward (one launch each)

How the CPU stand-in for cupy (minidl.fakecupy) runs a kernel without a GPU: each family's
``EMULATE`` maps a kernel's name to a small adapter that unpacks the kernel's flat arguments
and calls the NumPy twin; the stand-in checks the arguments against the kernel's C signature
first, and counts the launch.
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.kernels import activation, basic, conv, loss, norm, optim, pool, recurrent

FAMILIES = (basic, conv, pool, norm, optim, recurrent, activation, loss)


class NumpyBackend(basic.NumpyBasic, conv.NumpyConv, pool.NumpyPool, norm.NumpyNorm,
                   optim.NumpyOptim, recurrent.NumpyRecurrent, activation.NumpyActivation,
                   loss.NumpyLoss):
    """The NumPy twins: the table the CPU uses."""

    name = "numpy"
    xp = numpy


class CupyBackend(basic.CupyBasic, conv.CupyConv, pool.CupyPool, norm.CupyNorm,
                  optim.CupyOptim, recurrent.CupyRecurrent, activation.CupyActivation,
                  loss.CupyLoss):  # pragma: no cover - GPU (or fakecupy)
    """The CUDA kernels: the table a GPU uses."""

    name = "cupy"
    xp = backend.cupy  # (minidl.fakecupy.install() puts its stand-in here)


EMULATORS = {name: adapter for family in FAMILIES for name, adapter in family.EMULATE.items()}


def backend_for(array_or_module):
    """The backend table for an array (or for the array module itself)."""
    cupy = backend.cupy
    if cupy is not None and array_or_module is cupy or backend.is_cupy_array(array_or_module):
        return CupyBackend
    return NumpyBackend
