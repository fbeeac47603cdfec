"""(to be written) The pool family of the backend table: NumPy twins beside CUDA kernels."""

from __future__ import annotations


class NumpyPool:
    pass


class CupyPool(NumpyPool):  # pragma: no cover - GPU (or fakecupy)
    pass


EMULATE: dict = {}  # kernel name -> adapter that runs the NumPy twin on the CPU stand-in
