"""The fake GPU of minidl/fakecupy/ keeps cupy's rules, so a green fake-cuda run means something.

These run on every machine (they need no GPU and install nothing for other tests).
"""

import numpy as np
import pytest

import fakecupy as cp
import minidl
from minidl import backend


def test_device_arrays_compute_like_numpy_and_stay_on_the_device():
    host = np.arange(6.0).reshape(2, 3)
    a = cp.asarray(host)
    b = cp.exp(a) * 2 + a.T.T - 1
    assert isinstance(b, cp.ndarray) and not isinstance(b, np.ndarray)
    np.testing.assert_allclose(cp.asnumpy(b), np.exp(host) * 2 + host - 1)
    assert isinstance(a.sum(), cp.ndarray) and a.sum().shape == ()  # reductions give 0-d device arrays
    assert isinstance(a[0, 1], cp.ndarray) and float(a[0, 1]) == 1.0 and a.sum().item() == 15.0
    assert isinstance(np.pad(a, 1), cp.ndarray)  # numpy functions dispatch to the device, as with cupy
    assert a.device.id == 0 and a.get().base is None  # .get() is a host copy


@pytest.mark.parametrize(
    "mix",
    [
        lambda a: a + np.ones(3),
        lambda a: np.ones(3) * a,
        lambda a: a - np.array(1.0),  # a 0-d host array is refused too
        lambda a: a + [1.0, 2.0, 3.0],
        lambda a: cp.maximum(a, np.zeros(3)),
        lambda a: cp.concatenate([a, np.ones((1, 3))]),
        lambda a: np.asarray(a),
        lambda a: np.array([a, a]),
        lambda a: cp.exp(np.ones(3)),
        lambda a: a.sum(where=a > 0),
    ],
)
def test_host_device_mixing_is_refused_as_cupy_refuses_it(mix):
    a = cp.ones((2, 3))
    with pytest.raises(TypeError):
        mix(a)


def test_scalars_host_indices_and_explicit_moves_are_allowed():
    a = cp.zeros((2, 3))
    a += np.float32(1) + 1
    a[np.array([1]), [0, 2]] = np.array([5.0, 6.0])  # advanced indexing copies host data in
    assert a[np.array([1, 1])].shape == (2, 3)
    np.testing.assert_array_equal(a.get(), [[2, 2, 2], [5, 2, 6]])
    with pytest.raises(ValueError, match="fill"):
        a[0] = np.ones(3)  # a basic-slice assignment of host data is not


def test_random_generator_and_add_at_keep_cupys_limits():
    rng = cp.random.default_rng(0)
    assert isinstance(rng.random((2,), dtype=np.float32), cp.ndarray) and rng.integers(0, 5, (3,)).dtype == np.int64
    for missing in ("permutation", "choice", "normal"):
        assert not hasattr(rng, missing)
    target = cp.zeros(3)
    cp.add.at(target, cp.asarray(np.array([0, 0, 2])), cp.ones(3))
    np.testing.assert_array_equal(target.get(), [2, 0, 1])
    with pytest.raises(TypeError, match="scatter_add"):
        cp.add.at(cp.zeros(3, dtype=np.int64), np.array([0]), 1)


def test_installed_fake_runs_minidl_on_cuda_and_catches_a_mix(monkeypatch):
    monkeypatch.setattr(backend, "cupy", cp)
    monkeypatch.setattr(minidl.kernels.CupyBackend, "xp", cp)
    monkeypatch.setattr(minidl.random, "_default_generators", {})
    assert minidl.cuda.is_available()
    x = minidl.randn(2, 3, device="cuda", requires_grad=True)
    (x * x).sum().backward()
    assert isinstance(x.grad.data, cp.ndarray) and x.grad.device == "cuda:0"
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())
    with pytest.raises(TypeError, match="Unsupported type"):
        x.data + np.ones((2, 3))  # the bug class the fake is for


# --------------------------------------------------------------------------- #
# hand-written kernels: RawModule checks the arguments against the C signature
# --------------------------------------------------------------------------- #
SOURCE = r'''
extern "C" __global__ void fake_axpy(const float* x, float* y, float a, long long n, const int* offsets,
                                     unsigned char* flags) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] += a * x[i];
}
'''


def _axpy(x, y, a, n, offsets, flags):
    """The emulator: numpy payloads (outputs written in place), Python scalars."""
    assert isinstance(a, float) and isinstance(n, int) and isinstance(x, np.ndarray)
    y[:n] += a * x[:n]


@pytest.fixture
def axpy(monkeypatch):
    monkeypatch.setitem(minidl.kernels.EMULATORS, "fake_axpy", _axpy)
    return cp.RawModule(code=SOURCE, options=("--std=c++14",)).get_function("fake_axpy")


def _arguments(**changes):
    args = {"x": cp.ones(4, dtype=np.float32), "y": cp.zeros(4, dtype=np.float32), "a": np.float32(2),
            "n": np.int64(4), "offsets": cp.zeros(2, dtype=np.int32), "flags": cp.zeros(4, dtype=np.uint8)}
    args.update(changes)
    return args


def test_a_raw_kernel_runs_its_emulator_on_the_payloads_and_counts_one_launch(axpy):
    args = _arguments()
    with cp.meter.measure() as m:
        axpy((1,), (256,), tuple(args.values()))
    np.testing.assert_array_equal(args["y"].get(), [2, 2, 2, 2])
    assert m.report()["launches"] == 1 and m.report()["kernels"] == 1
    assert cp.RawKernel(SOURCE, "fake_axpy").signature == axpy.signature


@pytest.mark.parametrize("change, words", [
    ({"a": 2.0}, "argument 2 .*float a.*numpy.float32 scalar, got float"),
    ({"n": 4}, "argument 3 .*long long n.*numpy.int64 scalar, got int"),
    ({"n": np.int32(4)}, "numpy.int64 scalar, got int32"),
    ({"x": cp.ones(4, dtype=np.float64)}, "argument 0 .*expected dtype float32, got float64"),
    ({"offsets": cp.zeros(2, dtype=np.int64)}, "argument 4 .*expected dtype int32"),
    ({"flags": cp.zeros(4, dtype=np.bool_)}, "argument 5 .*expected dtype uint8"),
    ({"x": cp.ones((4, 2), dtype=np.float32)[:, 0]}, "not C-contiguous"),
    ({"y": np.zeros(4, dtype=np.float32)}, "argument 1 .*expected a device array, got ndarray"),
])
def test_a_raw_kernel_refuses_arguments_its_signature_does_not_take(axpy, change, words):
    with pytest.raises(TypeError, match=f"fake_axpy.*{words}"):
        axpy((1,), (256,), tuple(_arguments(**change).values()))


def test_a_raw_kernel_checks_grid_block_count_and_emulator(axpy):
    args = tuple(_arguments().values())
    for grid, block in [((0,), (256,)), ((1,), 256), ((1.0,), (256,))]:
        with pytest.raises(TypeError, match="grid|block"):
            axpy(grid, block, args)
    with pytest.raises(TypeError, match="expected a tuple of 6 arguments, got 5"):
        axpy((1,), (256,), args[:5])
    missing = cp.RawModule(code=SOURCE.replace("fake_axpy", "fake_unknown")).get_function("fake_unknown")
    with pytest.raises(NotImplementedError, match="fake_unknown.*EMULATE"):
        missing((1,), (256,), args)
    with pytest.raises(AttributeError, match="no_such_kernel"):
        cp.RawModule(code=SOURCE).get_function("no_such_kernel")


def test_device_pointers_are_unique_per_buffer_and_lead_back_to_it():
    a, b = cp.zeros(8, dtype=np.float32), cp.zeros(8, dtype=np.float32)
    assert a.data.ptr != b.data.ptr and a[2:].data.ptr == a.data.ptr + 8
    assert cp.array_at(b.data.ptr) is b._array
    with pytest.raises(ValueError, match="no live device array"):
        cp.array_at(12345)


# --------------------------------------------------------------------------- #
# strict mode: only what real cupy has
# --------------------------------------------------------------------------- #
def test_strict_mode_is_on_when_cupy_imports():
    try:
        import cupy  # noqa: F401  (imports without a GPU)
    except Exception:
        assert cp.STRICT is False
        pytest.skip("cupy does not import here: strict mode is off")
    assert cp.STRICT is True


@pytest.mark.parametrize("use, words", [
    (lambda a: a.sum(axis=0, initial=0), "initial"),
    (lambda a: a.resize((3, 2)), "cupy.ndarray.resize"),
    (lambda a: cp.errstate, "cupy.errstate"),
    (lambda a: cp.insert(a, 0, 1.0), "cupy.insert"),
    (lambda a: cp.concatenate([a, a], axis=0, foo=1), "keyword foo= in cupy.concatenate"),
    (lambda a: cp.add(a, a, where=a > 0), "keyword where= in cupy.add"),
    (lambda a: cp.add.reduce(a, axis=0, initial=0.0), "keyword initial= in cupy.add.reduce"),
])
def test_strict_mode_refuses_what_real_cupy_lacks(use, words):
    if not cp.STRICT:
        pytest.skip("cupy does not import here: strict mode is off")
    with pytest.raises((TypeError, AttributeError), match=words):
        use(cp.ones((2, 3), dtype=np.float32))
    assert cp.add(cp.ones(2), 1, dtype=np.float32).dtype == np.float32  # keywords cupy has still work


def test_strict_mode_accepts_the_upload_and_tf32_names_real_cupy_has():
    """What launch.upload and minidl.cuda's TF32 switch take from cupy exists in real cupy, with the same values."""
    if not cp.STRICT:
        pytest.skip("cupy does not import here: strict mode is off")
    import cupy as real

    from minidl.fakecupy import strict

    for path in ("cupy.asarray", "cupy.array"):
        strict.check_call(path, {"blocking": False})  # CuPy 14 has the keyword: no error
        with pytest.raises(TypeError, match="keyword pinned="):
            strict.check_call(path, {"pinned": True})
    for name in ("set_compute_type", "get_compute_type"):
        assert callable(getattr(real._core, name)) and callable(getattr(cp._core, name))
    fake_linalg, real_linalg = cp._core._routines_linalg, real._core._routines_linalg
    constants = [n for n in vars(fake_linalg) if n.startswith("COMPUTE_TYPE_")]
    assert len(constants) == 8
    for name in constants:
        assert getattr(fake_linalg, name) == getattr(real_linalg, name), name
    with pytest.raises(AttributeError, match="no cupy._core.no_such_name"):
        cp._core.no_such_name  # noqa: B018


# --------------------------------------------------------------------------- #
# uploads and cuBLAS's compute type
# --------------------------------------------------------------------------- #
def test_an_upload_is_counted_as_bytes_and_one_upload_not_a_sync_unless_blocking():
    host = np.arange(5, dtype=np.int64)
    with cp.meter.measure() as m:
        a = cp.asarray(host)
    assert m.report()["uploads"] == 1 and m.report()["h2d_bytes"] == 40 and m.report()["syncs"] == 0
    host[:] = -1  # CuPy copied it (into pinned memory) at once: the device array keeps the old values
    np.testing.assert_array_equal(a.get(), np.arange(5))
    with cp.meter.measure() as m:
        cp.array(np.ones(3, np.float32), blocking=True)
        cp.asarray(np.ones(3, np.float32), blocking=True)
    assert m.report()["syncs"] == 2 and m.report()["uploads"] == 2 and m.report()["h2d_bytes"] == 24
    device = cp.ones(3)
    with cp.meter.measure() as m:
        assert cp.asarray(device, blocking=True) is device  # already there: nothing moves
    assert m.report()["uploads"] == m.report()["syncs"] == 0


def test_launch_upload_copies_without_a_sync(monkeypatch):
    from minidl.kernels import launch

    monkeypatch.setattr(backend, "cupy", cp)
    host = np.array([3, 1 << 40, -7], dtype=np.int64)
    with cp.meter.measure() as m:
        device = launch.upload(host)
    assert isinstance(device, cp.ndarray) and device.dtype == np.int64
    np.testing.assert_array_equal(device.get(), host)
    report = m.report()
    assert (report["uploads"], report["h2d_bytes"], report["syncs"], report["launches"]) == (1, 24, 0, 0)


def test_compute_types_are_recorded_per_dtype_as_cupy_keeps_them(monkeypatch):
    linalg = cp._core._routines_linalg
    before = {d: cp._core.get_compute_type(d) for d in (np.float32, np.float64)}
    try:
        cp._core.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32)
        assert cp._core.get_compute_type(np.dtype("float32")) == 7 == linalg.COMPUTE_TYPE_TF32
        assert cp._core.get_compute_type(np.float64) == before[np.float64]
        cp._core._routines_linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_DEFAULT)
        assert cp._core.get_compute_type(np.float32) == 1
        with pytest.raises(TypeError, match="not supported"):
            cp._core.set_compute_type(np.int32, linalg.COMPUTE_TYPE_DEFAULT)
    finally:
        for dtype, compute_type in before.items():
            cp._core.set_compute_type(dtype, compute_type)


@pytest.mark.parametrize("value, expected", [("1", 7), ("0", 1), ("yes", 1), ("", 1)])
def test_cupys_tf32_environment_switch_sets_the_first_float32_compute_type(monkeypatch, value, expected):
    from minidl.fakecupy import cuda_api

    monkeypatch.setenv("CUPY_TF32", value)
    assert cuda_api._initial_compute_types()["f"] == expected and cuda_api._initial_compute_types()["d"] == 1


def test_the_tf32_switch_works_on_the_stand_in(monkeypatch):
    monkeypatch.setattr(backend, "cupy", cp)
    before = minidl.cuda.get_float32_matmul_precision()
    try:
        minidl.cuda.matmul.allow_tf32 = True  # raised AttributeError before the stand-in had cupy._core
        assert cp._core.get_compute_type(np.float32) == cp._core._routines_linalg.COMPUTE_TYPE_TF32
        minidl.cuda.set_float32_matmul_precision("highest")
        assert cp._core.get_compute_type(np.float32) == cp._core._routines_linalg.COMPUTE_TYPE_DEFAULT
    finally:
        minidl.cuda.set_float32_matmul_precision(before)
