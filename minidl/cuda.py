"""``minidl.cuda``: is a GPU usable, how much memory has it used, and may float32 matmuls use TF32."""

import os

import numpy

from minidl import backend


def is_available() -> bool:
    """True when cupy is installed and sees a GPU."""
    return backend.cuda_is_available()


def device_count() -> int:
    return backend.cupy.cuda.runtime.getDeviceCount() if is_available() else 0


def synchronize() -> None:
    """Wait until the GPU has finished all queued work (for honest timings)."""
    if is_available():
        backend.cupy.cuda.Device().synchronize()


def max_memory_allocated() -> int:
    """Bytes held by cupy's memory pool at its fullest since ``reset_peak_memory_stats``
    (cupy's pool keeps no true peak, so this is the pool's total size: an upper bound)."""
    if not is_available():
        return 0
    return int(backend.cupy.get_default_memory_pool().total_bytes())


def reset_peak_memory_stats() -> None:
    if is_available():
        backend.cupy.get_default_memory_pool().free_all_blocks()


# --------------------------------------------------------------------------- #
# TF32: how cuBLAS multiplies float32 matrices
# --------------------------------------------------------------------------- #
# TensorFloat-32 keeps float32's 8-bit exponent but rounds each input to a 10-bit mantissa
# (float16's) before the tensor cores multiply; sums stay in float32. Products come out about
# 1e-3 relative off instead of 1e-7, several times faster on Ampere and later GPUs (compute
# capability 8.0+). PyTorch leaves it off by default for matmuls, and so does minidl:
#
#     minidl.cuda.matmul.allow_tf32 = True          # PyTorch: torch.backends.cuda.matmul.allow_tf32
#     minidl.cuda.set_float32_matmul_precision("high")   # the same switch, PyTorch's other spelling
#
# 'highest' = full float32 (TF32 off); 'high' and 'medium' = TF32 allowed (PyTorch's cuBLAS path
# treats 'medium' as 'high' too). On numpy nothing changes: a CPU float32 product is always full
# float32. On CuPy the switch sets cuBLAS's compute type for float32 products
# (``cupy._core.set_compute_type(float32, COMPUTE_TYPE_TF32)``; CuPy's own CUPY_TF32=1 environment
# variable does the same but is read only once, at the first float32 product). Convolutions here are
# im2col + matmul, so the switch covers them as well.
PRECISIONS = ("highest", "high", "medium")


def _initial_precision() -> str:
    """'high' when CuPy's own switch CUPY_TF32 is set (CuPy then uses TF32 anyway), else 'highest'."""
    try:
        return "high" if int(os.environ.get("CUPY_TF32", "0")) > 0 else "highest"
    except ValueError:
        return "highest"


_precision = _initial_precision()


def get_float32_matmul_precision() -> str:
    """'highest' (full float32 products, the default) or 'high'/'medium' (TF32 allowed on the GPU)."""
    return _precision


def set_float32_matmul_precision(precision: str) -> None:
    """Allow TF32 for float32 matrix products on the GPU ('high', 'medium') or not ('highest').

    As ``torch.set_float32_matmul_precision``. A no-op on numpy; on CuPy it takes effect at once.
    """
    global _precision
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"set_float32_matmul_precision: expected one of {', '.join(map(repr, PRECISIONS))}, "
                         f"got {precision!r}")
    _precision = precision
    _apply_to_cupy()


def _apply_to_cupy() -> None:
    """Tell CuPy's cuBLAS calls the compute type for float32 products (when a GPU is in use)."""
    if not is_available():
        return  # numpy only: nothing to set
    cupy = backend.cupy
    linalg = cupy._core._routines_linalg  # where CuPy keeps the COMPUTE_TYPE_* constants
    compute_type = linalg.COMPUTE_TYPE_DEFAULT if _precision == "highest" else linalg.COMPUTE_TYPE_TF32
    # (on a GPU older than compute capability 8.0, CuPy warns and keeps the default)
    cupy._core.set_compute_type(numpy.float32, compute_type)


class _Matmul:
    """``minidl.cuda.matmul``: the switches of float32 matrix products (PyTorch: torch.backends.cuda.matmul)."""

    __slots__ = ()

    @property
    def allow_tf32(self) -> bool:
        """True when float32 matmuls may run in TF32 on the GPU (default False, as in PyTorch)."""
        return _precision != "highest"

    @allow_tf32.setter
    def allow_tf32(self, value: bool) -> None:
        if not isinstance(value, (bool, numpy.bool_)):
            raise TypeError(f"minidl.cuda.matmul.allow_tf32: expected True or False, got {value!r}")
        set_float32_matmul_precision("high" if value else "highest")

    def __setattr__(self, name, value):
        if name != "allow_tf32":
            raise AttributeError(f"minidl.cuda.matmul has no setting {name!r} (it has: allow_tf32)")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"minidl.cuda.matmul(allow_tf32={self.allow_tf32})"


matmul = _Matmul()
