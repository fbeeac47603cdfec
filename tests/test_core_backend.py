"""Backends and devices: Device names, cupy being optional, the default device,
moving tensors, the per-backend table, seeded generators, and device-mixing errors."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl
from minidl import backend, kernels
from minidl.autograd import check_same_device
from minidl.backend import Device

REPO = Path(__file__).resolve().parents[1]
GPU = minidl.cuda.is_available()


def needs_gpu(test):
    """Mark a test that needs cupy and a GPU (skipped without one)."""
    return pytest.mark.gpu(pytest.mark.skipif(not GPU, reason="needs cupy and a GPU")(test))


needs_no_gpu = pytest.mark.skipif(GPU, reason="checks the error raised when no GPU is present")


def run_python(code, **env):
    """Run ``code`` in a fresh interpreter (so import-time behaviour can be observed)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=60)


# --------------------------------------------------------------------------- #
# Device names
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "spec, text", [("cpu", "cpu"), ("CPU", "cpu"), ("cuda", "cuda:0"), ("cuda:0", "cuda:0"), ("cuda:3", "cuda:3")]
)
def test_device_parses_and_prints(spec, text):
    device = Device(spec)
    assert str(device) == text
    assert device == text and device == Device(text)
    assert hash(device) == hash(Device(text))
    assert repr(device) == f"device('{text}')"
    assert Device(device) == device


def test_device_compares_unequal_to_other_devices_and_junk():
    assert Device("cpu") != "cuda"
    assert Device("cuda:0") != Device("cuda:1")
    assert Device("cpu") != "not a device"
    assert Device("cpu") != 3
    assert minidl.device("cpu") == "cpu"  # minidl.device is PyTorch's spelling


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "cuda:-1", "cpu:0", "", "gpu:0"])
def test_device_rejects_bad_names(spec):
    with pytest.raises(ValueError, match=r"Device: .*'cpu', 'cuda'|must be a non-negative integer"):
        Device(spec)


def test_device_rejects_non_strings():
    with pytest.raises(TypeError, match="Device: expected a string"):
        Device(0)


# --------------------------------------------------------------------------- #
# cupy is optional
# --------------------------------------------------------------------------- #
def test_importing_minidl_never_needs_cupy():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('cupy', 'cupyx'):\n"
        "            raise ImportError('cupy blocked for this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import minidl\n"
        "assert minidl.cuda.is_available() is False\n"
        "assert minidl.cuda.device_count() == 0\n"
        "x = minidl.tensor([1.0, 2.0], requires_grad=True)\n"
        "(x * x).sum().backward()\n"
        "print(x.grad.tolist())\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[2.0, 4.0]"


def test_cuda_is_available_is_a_bool():
    assert isinstance(minidl.cuda.is_available(), bool)
    assert minidl.cuda.is_available() == backend.cuda_is_available()
    minidl.cuda.synchronize()  # a no-op without a GPU, never an error


@needs_no_gpu
def test_asking_for_cuda_without_a_gpu_says_so():
    x = minidl.tensor([1.0])
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        x.cuda()
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        x.to("cuda:0")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        minidl.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        minidl.set_default_device("cuda")
    assert minidl.get_default_device() == "cpu"


# --------------------------------------------------------------------------- #
# The default device
# --------------------------------------------------------------------------- #
def test_set_default_device_round_trip():
    before = minidl.get_default_device()
    try:
        minidl.set_default_device("cpu")
        assert minidl.get_default_device() == "cpu"
        assert minidl.zeros(2).device == "cpu"
        assert minidl.tensor([1.0]).device == "cpu"
    finally:
        minidl.set_default_device(before)


def test_default_device_comes_from_the_environment():
    result = run_python("import minidl; print(minidl.get_default_device())", MINIDL_DEVICE="cpu")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cpu"


def test_a_bad_minidl_device_variable_is_named_in_the_error():
    result = run_python("import minidl", MINIDL_DEVICE="tpu")
    assert result.returncode != 0
    assert "MINIDL_DEVICE" in result.stderr and "'tpu'" in result.stderr


# --------------------------------------------------------------------------- #
# Arrays and moving them
# --------------------------------------------------------------------------- #
def test_array_module_and_device_of_numpy_arrays():
    a = np.zeros(3)
    assert backend.get_array_module(a) is np
    assert backend.get_array_module(a, np.ones(2)) is np
    assert backend.device_of(a) == "cpu"
    assert backend.to_device(a, "cpu") is a
    assert backend.to_numpy(a) is a
    assert backend.array_module_for(Device("cpu")) is np


def test_tensor_to_cpu_is_free_and_numpy_is_a_host_array(device):
    x = minidl.tensor([[1.0, 2.0]], device=device)
    assert x.device == device
    y = x.cpu()
    assert y.device == "cpu"
    assert x.to(x.device) is x
    assert isinstance(x.numpy(), np.ndarray)
    np.testing.assert_array_equal(x.numpy(), [[1.0, 2.0]])


@needs_gpu
def test_moving_between_devices_is_differentiable():
    x = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x.cuda()
    assert y.device == "cuda:0" and y.requires_grad
    assert y.cuda() is y
    z = (y * y).sum()
    z.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0, 6.0])
    assert isinstance(y.numpy(), np.ndarray)
    assert z.item() == pytest.approx(14.0)


@needs_gpu
def test_mixing_real_devices_names_the_op_and_both_devices():
    a = minidl.ones(2)
    b = minidl.ones(2, device="cuda")
    with pytest.raises(RuntimeError, match=r"Mul: .*'cpu' and 'cuda:0'"):
        a * b


# --------------------------------------------------------------------------- #
# Mixing devices (faked here: no GPU is needed to check the message)
# --------------------------------------------------------------------------- #
class FakeTensor:
    def __init__(self, device):
        self.device = Device(device)


def test_check_same_device_names_the_op_and_both_devices():
    add = minidl.ops.arithmetic.Add()
    message = r"Add: expected all inputs on one device, got tensors on 'cpu' and 'cuda:1'"
    with pytest.raises(RuntimeError, match=message):
        check_same_device(add, [FakeTensor("cpu"), FakeTensor("cpu"), FakeTensor("cuda:1")])
    check_same_device(add, [FakeTensor("cuda:1"), FakeTensor("cuda:1")])  # one device: fine
    check_same_device(add, [FakeTensor("cuda:1")])


def test_every_op_checks_devices(monkeypatch):
    """Pretend a tensor named 'gpu' lives on cuda:0 and watch ops refuse to mix it."""
    monkeypatch.setattr(
        minidl.Tensor, "device", property(lambda t: Device("cuda:0") if t.name == "gpu" else Device("cpu"))
    )
    a, b = minidl.ones(2, 2), minidl.ones(2, 2)
    b.name = "gpu"
    calls = [("Mul", lambda: a * b), ("Sub", lambda: b - a), ("MatMul", lambda: a @ b), ("Cat", lambda: minidl.cat([a, b]))]
    for op, call in calls:
        with pytest.raises(RuntimeError, match=rf"{op}: .*'(cpu|cuda:0)' and '(cpu|cuda:0)'"):
            call()


# --------------------------------------------------------------------------- #
# The per-backend table and random generators
# --------------------------------------------------------------------------- #
def test_backend_table_for_numpy():
    table = kernels.backend_for(np.zeros(1))
    assert table is kernels.NumpyBackend and kernels.backend_for(np) is table
    assert table.name == "numpy" and table.xp is np


def test_scatter_add_accumulates_repeated_indices():
    target = np.zeros(4)
    kernels.NumpyBackend.scatter_add(target, np.array([0, 2, 0, 0]), np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(target, [8.0, 0.0, 2.0, 0.0])
    grid = np.zeros((2, 3))
    kernels.NumpyBackend.scatter_add(grid, (np.array([1, 1]), np.array([2, 2])), np.array([1.0, 1.0]))
    assert grid[1, 2] == 2.0 and grid.sum() == 2.0


def test_manual_seed_makes_random_tensors_repeat(device):
    minidl.manual_seed(123)
    first = [minidl.randn(3, device=device).numpy(), minidl.rand(2, device=device).numpy()]
    minidl.manual_seed(123)
    second = [minidl.randn(3, device=device).numpy(), minidl.rand(2, device=device).numpy()]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], minidl.randn(3, device=device).numpy())


def test_generator_is_shared_per_device():
    minidl.manual_seed(5)
    assert minidl.random.default_generator("cpu") is minidl.random.default_generator(Device("cpu"))


@pytest.mark.parametrize("seed", [-1, 1.5, "7"])
def test_manual_seed_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="manual_seed: expected a non-negative integer"):
        minidl.manual_seed(seed)
