"""(to be written) The optim family of the backend table: NumPy twins beside CUDA kernels."""

from __future__ import annotations


class NumpyOptim:
    pass


class CupyOptim(NumpyOptim):  # pragma: no cover - GPU (or fakecupy)
    pass


EMULATE: dict = {}  # kernel name -> adapter that runs the NumPy twin on the CPU stand-in
