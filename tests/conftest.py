"""Shared test set-up: hypothesis profiles and the device fixture.

Every test that takes the ``device`` fixture runs on the CPU and, when cupy sees a GPU,
again on 'cuda'. To run the whole suite on the GPU machine: ``python -m pytest -m gpu``
runs only the cuda half; plain ``python -m pytest`` runs both.

Without a GPU, ``MINIDL_FAKE_CUDA=1 python -m pytest`` runs the cuda half on minidl/fakecupy/,
a CPU stand-in for cupy that refuses host/device mixing as cupy does (see its docstring).
"""

import os

# pytest -n 2 runs two workers on two cores: one BLAS thread each, or the threads of the
# two workers fight over the cores and small matrix products slow down many times over.
# (Set before numpy is imported; lessons run as subprocesses inherit it.)
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings

import minidl  # noqa: E402

FAKE_CUDA = os.environ.get("MINIDL_FAKE_CUDA") == "1"
if FAKE_CUDA:
    import minidl.fakecupy as fakecupy  # noqa: E402

    fakecupy.install()

# function_scoped_fixture: the `device` fixture is a plain string, safe to share across examples.
_quiet = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile("default", max_examples=25, deadline=None, suppress_health_check=_quiet)
settings.register_profile("thorough", max_examples=200, deadline=None, suppress_health_check=_quiet)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

GPU = minidl.cuda.is_available()
gpu = pytest.mark.skipif(not GPU, reason="needs cupy and a GPU")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, gpu])])
def device(request):
    """The device to run on: 'cpu', and 'cuda' when a GPU is present."""
    return request.param


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state."""
    minidl.manual_seed(0)
    np.random.seed(0)
    yield


def to_numpy(t):
    return t.numpy() if isinstance(t, minidl.Tensor) else np.asarray(t)
