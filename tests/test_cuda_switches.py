"""minidl.cuda's TF32 switch: its state, its errors, what it tells CuPy, and nothing on numpy."""

import types

import numpy as np
import pytest

import minidl
from minidl import backend, cuda


@pytest.fixture(autouse=True)
def _restore_precision(request, monkeypatch):
    """Each test starts and ends with the switch as it was; all but the GPU test run without cupy
    (so that the state tests do not depend on which stand-in, if any, is installed)."""
    before = cuda.get_float32_matmul_precision()
    if request.node.get_closest_marker("gpu") is None:
        monkeypatch.setattr(backend, "cupy", None)
    yield
    cuda._precision = before  # (not through the setter: that would talk to a stand-in's cupy)


class RecordingCupy:
    """Just enough of cupy for the switch: one visible GPU and cuBLAS's compute-type setter."""

    def __init__(self):
        self.calls = []
        linalg = types.SimpleNamespace(COMPUTE_TYPE_DEFAULT=1, COMPUTE_TYPE_TF32=7)  # CuPy's values
        self._core = types.SimpleNamespace(
            _routines_linalg=linalg,
            set_compute_type=lambda dtype, compute_type: self.calls.append((np.dtype(dtype), compute_type)))
        self.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))


def test_default_is_off_as_in_pytorch(monkeypatch):
    monkeypatch.delenv("CUPY_TF32", raising=False)
    assert cuda._initial_precision() == "highest"
    cuda._precision = cuda._initial_precision()
    assert cuda.matmul.allow_tf32 is False
    assert cuda.get_float32_matmul_precision() == "highest"


@pytest.mark.parametrize("value, expected", [("1", "high"), ("0", "highest"), ("yes", "highest"), ("", "highest")])
def test_cupys_own_environment_switch_is_reported(monkeypatch, value, expected):
    """CUPY_TF32=1 makes CuPy use TF32 whatever minidl says, so minidl's switch starts on then."""
    monkeypatch.setenv("CUPY_TF32", value)
    assert cuda._initial_precision() == expected


def test_the_two_spellings_are_one_switch():
    cuda.matmul.allow_tf32 = True
    assert cuda.get_float32_matmul_precision() == "high"
    cuda.set_float32_matmul_precision("highest")
    assert cuda.matmul.allow_tf32 is False
    cuda.set_float32_matmul_precision("medium")  # PyTorch's cuBLAS path treats it as 'high'
    assert cuda.matmul.allow_tf32 is True
    assert cuda.get_float32_matmul_precision() == "medium"
    cuda.matmul.allow_tf32 = np.bool_(False)
    assert cuda.get_float32_matmul_precision() == "highest"
    assert "allow_tf32=False" in repr(cuda.matmul)


@pytest.mark.parametrize("value", [1, 0, "True", None, 1.0])
def test_allow_tf32_takes_only_booleans(value):
    with pytest.raises(TypeError, match=r"minidl.cuda.matmul.allow_tf32: expected True or False, got"):
        cuda.matmul.allow_tf32 = value
    assert cuda.get_float32_matmul_precision() == "highest"


@pytest.mark.parametrize("value", ["low", "HIGH", "", None, 32, True])
def test_bad_precisions_are_refused_naming_the_choices(value):
    with pytest.raises(ValueError, match=r"set_float32_matmul_precision: expected one of 'highest', 'high', 'medium'"):
        cuda.set_float32_matmul_precision(value)


def test_a_misspelt_setting_is_an_error_not_a_silent_new_attribute():
    with pytest.raises(AttributeError, match="has no setting 'allow_tf_32'"):
        cuda.matmul.allow_tf_32 = True


def test_numpy_products_do_not_change():
    rng = np.random.default_rng(0)
    a, b = (minidl.tensor(rng.standard_normal((33, 65)).astype(np.float32)) for _ in range(2))
    before = (a @ b.T).numpy()
    cuda.matmul.allow_tf32 = True
    np.testing.assert_array_equal((a @ b.T).numpy(), before)


def test_the_switch_sets_cublas_compute_type_for_float32(monkeypatch):
    fake = RecordingCupy()
    monkeypatch.setattr(backend, "cupy", fake)
    cuda.matmul.allow_tf32 = True
    cuda.set_float32_matmul_precision("highest")
    cuda.set_float32_matmul_precision("medium")
    assert fake.calls == [(np.dtype(np.float32), 7), (np.dtype(np.float32), 1), (np.dtype(np.float32), 7)]


def test_without_a_gpu_nothing_is_sent_to_cupy(monkeypatch):
    fake = RecordingCupy()
    fake.cuda.runtime.getDeviceCount = lambda: 0
    monkeypatch.setattr(backend, "cupy", fake)
    cuda.matmul.allow_tf32 = True
    assert fake.calls == [] and cuda.matmul.allow_tf32


def test_real_cupy_has_the_api_the_switch_uses():
    """The names the switch calls exist in the installed CuPy (imports without a GPU)."""
    cupy = pytest.importorskip("cupy", reason="cupy is not installed (the cupy-api extra brings it)")
    linalg = cupy._core._routines_linalg
    assert callable(cupy._core.set_compute_type) and callable(cupy._core.get_compute_type)
    assert (linalg.COMPUTE_TYPE_DEFAULT, linalg.COMPUTE_TYPE_TF32) == (1, 7)  # RecordingCupy's values


@pytest.mark.gpu
@pytest.mark.skipif(not minidl.cuda.is_available(), reason="needs cupy and a GPU (or MINIDL_FAKE_CUDA=1)")
def test_tf32_products_on_the_gpu_stay_close_to_float32():
    """With TF32 allowed a float32 product is ~1e-3 relative off at most (10-bit mantissas, float32 sums).
    (On the CPU stand-in the switch is recorded but the products stay numpy's float32 ones.)"""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 256)).astype(np.float32), rng.standard_normal((256, 32)).astype(np.float32)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    try:
        cuda.matmul.allow_tf32 = True
        fast = (minidl.tensor(a, device="cuda") @ minidl.tensor(b, device="cuda")).numpy()
    finally:
        cuda.matmul.allow_tf32 = False
    full = (minidl.tensor(a, device="cuda") @ minidl.tensor(b, device="cuda")).numpy()
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    assert np.max(np.abs(fast - exact) / scale) < 2e-3
    assert np.max(np.abs(full - exact) / scale) < 3e-5  # K = 256 float32 sums: ~1e-6 typical
    fake = getattr(backend.cupy, "__name__", "").startswith("minidl.fakecupy")
    if not fake and int(backend.cupy.cuda.Device().compute_capability) >= 80:
        assert np.max(np.abs(fast - full) / scale) > 1e-6  # the switch did change the products (TF32 on)


@pytest.mark.gpu
@pytest.mark.skipif(not minidl.cuda.is_available(), reason="needs cupy and a GPU (or MINIDL_FAKE_CUDA=1)")
def test_the_switch_reaches_cupys_compute_type():
    """minidl.cuda's switch sets what cupy._core.get_compute_type(float32) reports (real CuPy or the stand-in);
    float64 products keep their own compute type."""
    fake = getattr(backend.cupy, "__name__", "").startswith("minidl.fakecupy")
    if not fake and int(backend.cupy.cuda.Device().compute_capability) < 80:
        pytest.skip("TF32 needs compute capability 8.0 or later (CuPy keeps the default there)")
    core = backend.cupy._core
    linalg = core._routines_linalg
    float64_before = core.get_compute_type(np.float64)
    try:
        cuda.matmul.allow_tf32 = True
        assert core.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_TF32
        cuda.set_float32_matmul_precision("highest")
        assert core.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT
        assert core.get_compute_type(np.float64) == float64_before
    finally:
        cuda.matmul.allow_tf32 = False
