"""(to be written) The recurrent family of the backend table: NumPy twins beside CUDA kernels."""

from __future__ import annotations


class NumpyRecurrent:
    pass


class CupyRecurrent(NumpyRecurrent):  # pragma: no cover - GPU (or fakecupy)
    pass


EMULATE: dict = {}  # kernel name -> adapter that runs the NumPy twin on the CPU stand-in
