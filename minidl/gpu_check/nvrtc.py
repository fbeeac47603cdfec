"""Compile CUDA source with NVRTC, no GPU needed: does every hand-written kernel compile?

NVRTC is the CUDA runtime compiler that ``cupy.RawModule`` uses on the GPU machine. Its library
comes as a wheel (``nvidia-cuda-nvrtc-cu12``, in the ``cupy-api`` extra) and compiles CUDA C++ to
PTX on any Linux machine, GPU or not; ctypes calls it directly:

    nvrtcCreateProgram(&prog, source, name, 0, NULL, NULL)
    nvrtcCompileProgram(prog, n_options, options)       -> on failure, nvrtcGetProgramLog says why
    nvrtcGetPTX(prog, buffer)                           -> the PTX text, one ``.entry`` per kernel
    nvrtcDestroyProgram(&prog)

    ptx = compile_cuda(source, "conv.cu")      # raises NvrtcError with the compiler's log
    kernel_names(source)                       # the extern "C" __global__ functions it declares
    ptx_entries(ptx)                           # the kernels the PTX defines
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import re
from pathlib import Path

from minidl.kernels import launch

ARCH = "compute_90"  # Hopper (H100/H200) PTX: the GPUs the lessons are timed on
LIBRARY_NAMES = ("libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so")


class NvrtcError(RuntimeError):
    """A CUDA source that NVRTC refused; the message holds the compiler's log."""


class NvrtcNotFound(RuntimeError):
    """No NVRTC library on this machine (pip install -e '.[cupy-api]' brings one)."""


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, without importing it (None when it is not installed)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def library_candidates() -> list[str]:
    """Paths (or bare names for the loader's own search) where libnvrtc may be, most likely first."""
    folders = [_package_dir("nvidia.cuda_nvrtc"), _package_dir("nvidia.cu13"), _package_dir("nvidia.cu12")]
    found = [path for folder in folders if folder is not None
             for name in LIBRARY_NAMES for path in sorted(glob.glob(str(folder / "lib" / name)))]
    for root in (os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if root:
            found += [str(Path(root) / "lib64" / name) for name in LIBRARY_NAMES if (Path(root) / "lib64" / name).exists()]
    return found + list(LIBRARY_NAMES)


_library = None


def library() -> ctypes.CDLL:
    """The NVRTC library, loaded once (raises NvrtcNotFound saying what was tried)."""
    global _library
    if _library is None:
        tried = library_candidates()
        for path in tried:
            try:
                _library = ctypes.CDLL(path)
                break
            except OSError:
                continue
        else:
            raise NvrtcNotFound("NVRTC not found (tried " + ", ".join(tried) +
                                "): pip install -e '.[cupy-api]' brings the nvidia-cuda-nvrtc-cu12 wheel")
        _library.nvrtcGetErrorString.restype = ctypes.c_char_p
    return _library


def version() -> tuple[int, int]:
    """NVRTC's (major, minor) version, e.g. (12, 9)."""
    major, minor = ctypes.c_int(), ctypes.c_int()
    _check(library().nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
    return major.value, minor.value


def _check(result: int, call: str) -> None:
    if result != 0:
        raise NvrtcError(f"{call}: {library().nvrtcGetErrorString(result).decode()}")


def cupy_include_dir() -> Path | None:
    """CuPy's header folder (what cupy.RawModule puts on the include path), if CuPy is installed."""
    cupy = _package_dir("cupy")
    return cupy / "_core" / "include" if cupy is not None else None


def default_options(arch: str = ARCH) -> list[str]:
    """The options cupy.RawModule gets (launch.OPTIONS), for ``arch``, with CuPy's headers."""
    options = [f"--gpu-architecture={arch}", *launch.OPTIONS]
    include = cupy_include_dir()
    if include is not None and include.is_dir():
        options.append(f"-I{include}")
    return options


def _text(prog, size_call, get_call) -> str:
    size = ctypes.c_size_t()
    _check(getattr(library(), size_call)(prog, ctypes.byref(size)), size_call)
    buffer = ctypes.create_string_buffer(size.value)
    _check(getattr(library(), get_call)(prog, buffer), get_call)
    return buffer.value.decode(errors="replace")


def compile_cuda(source: str, name: str = "kernel.cu", options: list[str] | None = None) -> str:
    """Compile CUDA C++ ``source`` to PTX; NvrtcError with the compiler's log if it does not compile."""
    nvrtc = library()
    options = default_options() if options is None else options
    prog = ctypes.c_void_p()
    _check(nvrtc.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None),
           "nvrtcCreateProgram")
    try:
        encoded = (ctypes.c_char_p * len(options))(*[option.encode() for option in options])
        result = nvrtc.nvrtcCompileProgram(prog, len(options), encoded)
        if result != 0:
            log = _text(prog, "nvrtcGetProgramLogSize", "nvrtcGetProgramLog")
            raise NvrtcError(f"{name} does not compile ({nvrtc.nvrtcGetErrorString(result).decode()}, "
                             f"options {' '.join(options)}):\n{log.strip()}")
        return _text(prog, "nvrtcGetPTXSize", "nvrtcGetPTX")
    finally:
        nvrtc.nvrtcDestroyProgram(ctypes.byref(prog))


_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\(')
_ENTRY = re.compile(r"\.entry\s+(\w+)\s*\(")


def kernel_names(source: str) -> list[str]:
    """The ``extern "C" __global__ void name(...)`` kernels a CUDA file declares (comments ignored)."""
    without_comments = re.sub(r"//[^\n]*|/\*.*?\*/", "", source, flags=re.S)
    return _KERNEL.findall(without_comments)


def ptx_entries(ptx: str) -> set[str]:
    """The kernels (``.entry`` functions) that a PTX text defines."""
    return set(_ENTRY.findall(ptx))


def kernel_files() -> list[Path]:
    """Every family's CUDA source, minidl/kernels/*.cu."""
    return sorted(launch.HERE.glob("*.cu"))


def compile_all(files=None) -> dict[str, set[str]]:
    """Compile every kernel file: ``{file name: the kernels its PTX defines}`` (NvrtcError on the first failure)."""
    return {path.name: ptx_entries(compile_cuda(path.read_text(), path.name)) for path in (files or kernel_files())}
