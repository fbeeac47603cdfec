"""scatter_add and matmul: the two basic entries whose numpy and cupy spellings differ."""

from __future__ import annotations

import numpy

from minidl import backend


class NumpyBasic:
    @staticmethod
    def scatter_add(target, indices, values):
        """target[indices] += values, accumulating repeated indices (in place)."""
        numpy.add.at(target, indices, values)

    @staticmethod
    def matmul(a, b):
        """a @ b. NumPy has no float16 BLAS (a float16 product is 100x+ slower than float32), so float16
        inputs are multiplied in float32 and rounded to float16: the numbers a GPU's tensor cores give."""
        if a.dtype == b.dtype == numpy.float16:
            return numpy.matmul(a.astype(numpy.float32), b.astype(numpy.float32)).astype(numpy.float16)
        return numpy.matmul(a, b)


class CupyBasic:  # pragma: no cover - GPU (or fakecupy)
    @staticmethod
    def scatter_add(target, indices, values):
        """target[indices] += values with atomic adds (``cupy.add.at``; cupyx.scatter_add is deprecated)."""
        backend.cupy.add.at(target, indices, values)

    @staticmethod
    def matmul(a, b):
        """a @ b on cuBLAS (float16 runs on tensor cores)."""
        return backend.cupy.matmul(a, b)


EMULATE: dict = {}  # no kernels of its own
