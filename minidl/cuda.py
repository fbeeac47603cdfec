"""``minidl.cuda``: is a GPU usable, and how much memory has it used."""

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
