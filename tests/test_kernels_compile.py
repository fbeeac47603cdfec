"""Every hand-written CUDA kernel compiles (NVRTC, no GPU needed) and has its CPU emulation.

For each minidl/kernels/*.cu: NVRTC compiles it to PTX with the options cupy.RawModule gets on the
GPU (--std=c++14, CuPy's include folder) for compute_90; each ``extern "C" __global__`` kernel it
declares is defined in the PTX and has an adapter in minidl.kernels.EMULATORS (what the fake GPU
runs in its place). Skipped, saying why, without the NVRTC wheel (the cupy-api extra; CI has it).
"""

import re

import pytest

from minidl import kernels
from minidl.gpu_check import nvrtc

try:
    NVRTC_VERSION = nvrtc.version()
    WHY_NOT = ""
except nvrtc.NvrtcNotFound as error:
    NVRTC_VERSION, WHY_NOT = None, str(error)
needs_nvrtc = pytest.mark.skipif(NVRTC_VERSION is None, reason=WHY_NOT)

FILES = nvrtc.kernel_files()
GOOD = '''
// y[i] = a * x[i] + y[i], grid-stride
extern "C" __global__ void saxpy(const float* x, float* y, float a, long long n)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = a * x[i] + y[i];
}
'''


@needs_nvrtc
@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_kernel_file_compiles_and_defines_every_kernel(path):
    source = path.read_text()
    names = nvrtc.kernel_names(source)
    assert names, f"{path.name} declares no extern \"C\" __global__ kernel"
    ptx = nvrtc.compile_cuda(source, path.name)
    missing = sorted(set(names) - nvrtc.ptx_entries(ptx))
    assert not missing, f"{path.name}: the PTX does not define {missing}"


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_every_kernel_has_an_emulation_adapter(path):
    """The fake GPU runs a kernel through EMULATE[name] (its NumPy twin): none may be missing."""
    missing = [name for name in nvrtc.kernel_names(path.read_text()) if name not in kernels.EMULATORS]
    assert not missing, (f"{path.name}: no EMULATE adapter for {missing} "
                         f"(add them to the family's EMULATE dict in minidl/kernels/{path.stem}.py)")


def test_every_emulation_adapter_has_its_kernel():
    declared = {name for path in FILES for name in nvrtc.kernel_names(path.read_text())}
    stale = sorted(set(kernels.EMULATORS) - declared)
    assert not stale, f"EMULATE adapters for kernels no .cu file declares: {stale}"


def test_kernel_names_reads_declarations_not_comments():
    source = GOOD + '''
// extern "C" __global__ void commented_out(float* x) {}
/* extern "C" __global__ void also_commented(float* x) {} */
extern "C" __global__ void __launch_bounds__(256) bounded(float* x) { x[0] = 1.0f; }
__global__ void not_extern_c(float* x) { x[0] = 2.0f; }
'''
    assert nvrtc.kernel_names(source) == ["saxpy", "bounded"]


@needs_nvrtc
def test_a_throwaway_kernel_compiles_to_its_entry(tmp_path):
    path = tmp_path / "throwaway.cu"
    path.write_text(GOOD)
    assert nvrtc.compile_all([path]) == {"throwaway.cu": {"saxpy"}}


@needs_nvrtc
def test_a_syntax_error_fails_with_the_compiler_log(tmp_path):
    path = tmp_path / "broken.cu"
    path.write_text(GOOD.replace("y[i] = a * x[i] + y[i];", "y[i] = a * x[i] + ;"))
    with pytest.raises(nvrtc.NvrtcError) as caught:
        nvrtc.compile_all([path])
    message = str(caught.value)
    assert "broken.cu does not compile" in message
    assert re.search(r"broken\.cu\(6\): error", message), message  # the log: file(line): error ...


@needs_nvrtc
def test_an_include_of_a_cuda_header_fails_as_on_the_gpu():
    """NVRTC sees no CUDA headers (the kernels may not #include them): the check must catch one."""
    with pytest.raises(nvrtc.NvrtcError, match="cuda_fp16_does_not_exist.h"):
        nvrtc.compile_cuda('#include <cuda_fp16_does_not_exist.h>\n' + GOOD, "include.cu")


def test_missing_nvrtc_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(nvrtc, "_library", None)
    monkeypatch.setattr(nvrtc, "library_candidates", lambda: ["/nowhere/libnvrtc.so.12"])
    with pytest.raises(nvrtc.NvrtcNotFound, match=r"cupy-api"):
        nvrtc.library()
