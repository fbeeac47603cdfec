"""GPU cost budgets of the lessons' training steps, counted without a GPU, and the meter itself.

The budgets (one test per row) come from ``python -m minidl.gpu_cost --json``, run once per test
session in a subprocess (on the CPU stand-in for cupy; the numbers are shared by the xdist
workers through a file). A budget today's main does not meet yet is marked xfail with the number
measured: edit MEASURED (one place) as the kernels land, and drop an entry once it passes.

The meter's own tests check known sequences of calls: views are free, a copy is one launch,
reading a value is a sync, peak memory counts what was alive when the region started.
"""

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl.fakecupy as cp
from minidl.fakecupy import meter

REPO = Path(__file__).resolve().parents[1]

# (model, count, at most): the budgets of a training step on a GPU
BUDGETS = [
    *[(model, "syncs_per_step", 0) for model in ("cnn_b32", "cnn_b512", "resnet9_b512", "lstm_fsdd", "conv1d_fsdd")],
    *[(model, "float64_per_step", 0) for model in ("cnn_b32", "cnn_b512", "resnet9_b512", "lstm_fsdd", "conv1d_fsdd")],
    ("resnet9_b512", "launches_per_step", 300),
    ("resnet9_b512", "peak_device_mib", 4096),
    ("cnn_b32", "launches_per_step", 60),
    ("lstm_fsdd", "launches_per_timestep", 20),
]
# what today's main measures where a budget is not met yet (python -m minidl.gpu_cost): xfail until then
MEASURED: dict = {}


def _row(model, count, limit):
    marks = []
    if (model, count) in MEASURED:
        marks.append(pytest.mark.xfail(strict=False, reason=f"budget not met yet: measured {MEASURED[model, count]}"))
    return pytest.param(model, count, limit, marks=marks, id=f"{model}-{count}<={limit}")


@pytest.fixture(scope="session")
def costs(tmp_path_factory):
    """``python -m minidl.gpu_cost --json`` once per session (the xdist workers share one run)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    cache, lock = shared / "gpu_cost.json", shared / "gpu_cost.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the other worker waits for the first one's numbers
        if not cache.exists():
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
            result = subprocess.run([sys.executable, "-m", "minidl.gpu_cost", "--json"], cwd=REPO, env=env,
                                    capture_output=True, text=True, timeout=1800)
            assert result.returncode == 0, result.stderr[-3000:]
            cache.write_text(result.stdout.strip().splitlines()[-1])
        return json.loads(cache.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("model, count, limit", [_row(*row) for row in BUDGETS])
def test_a_training_step_stays_within_its_gpu_budget(costs, model, count, limit):
    assert costs[model][count] <= limit, f"{model}: {count} = {costs[model][count]} > {limit} ({costs[model]})"


# --------------------------------------------------------------------------- #
# the meter, on known sequences of calls
# --------------------------------------------------------------------------- #
def test_views_are_free_copies_and_math_are_launches():
    a = cp.ones((4, 6), dtype=np.float32)  # made before the region: its memory is live at the start
    with meter.measure() as m:
        views = (a.T, a.reshape(6, 4), a[1:3], a[0, 1], a[None], cp.transpose(a), a.astype(np.float32, copy=False))
        assert m.report()["launches"] == 0
        b = a + 1                      # 1: a ufunc
        c = a.T.reshape(24)            # 1: a reshape that must copy
        d = cp.ascontiguousarray(a)    # 0: already contiguous, the array itself
        e = a[[0, 2]]                  # 1: a gather
        a[0] = 2.0                     # 1: a write
        a += b                         # 1: an in-place ufunc
        f = a.sum(axis=0)              # 1: a reduction
        g = cp.empty((3,), dtype=np.float32)  # 0: an allocation only
    cost = m.report()
    assert cost["launches"] == 6 and cost["syncs"] == 0 and cost["float64_arrays"] == 0, cost
    assert cost["allocated_bytes"] == b.nbytes + c.nbytes + e.nbytes + f.nbytes + g.nbytes, cost
    assert d.data.ptr == a.data.ptr and len(views) == 7


def test_reading_a_value_is_a_sync_and_a_transfer():
    a = cp.arange(6, dtype=np.float32).reshape(2, 3)
    with meter.measure() as m:
        float(a[0, 0])
        a.get()
        a[a > 2]  # a boolean mask: the result's size depends on the data
        cp.asarray(np.zeros(5, dtype=np.float64))  # an upload (and a float64 array)
    cost = m.report()
    assert cost["syncs"] == 3 and cost["d2h_bytes"] == 4 + 24, cost
    assert cost["h2d_bytes"] == 40 and cost["float64_arrays"] == 1, cost
    assert cost["launches"] == 2, cost  # the comparison and the masked gather; uploads are bytes, not launches
    with meter.measure() as m:
        cp.nonzero(a)  # a result whose size depends on the data: the host waits for it
        a.any()  # a 0-d device array: no wait
        print(f"{a.max():.1f}", end="")  # printing reads the value
    assert m.report()["syncs"] == 2 and m.report()["launches"] == 3, m.report()


def test_matmuls_and_the_copy_of_a_transposed_batched_operand_are_counted():
    a, b = cp.ones((2, 3, 4), dtype=np.float32), cp.ones((2, 5, 4), dtype=np.float32)
    with meter.measure() as m:
        a @ b.transpose(0, 2, 1)  # cuBLAS wants the batched operand contiguous: one copy, one product
        a[0] @ b[0].T  # 2-D: the transpose is free
    cost = m.report()
    assert cost["matmuls"] == 2 and cost["launches"] == 3, cost


def test_peak_live_memory_starts_from_what_is_alive_and_sees_temporaries():
    kept = cp.zeros((1000,), dtype=np.float32)  # 4000 bytes alive before the region
    with meter.measure() as m:
        temporary = cp.ones((2000,), dtype=np.float32)  # +8000
        del temporary
        small = cp.ones((10,), dtype=np.float32)  # +40, after the temporary died
    assert m.report()["peak_live_bytes"] >= 4000 + 8000
    assert m.report()["peak_live_bytes"] < 4000 + 8000 + 40 + meter.STATE.live_bytes  # the freed bytes left
    assert kept.nbytes == 4000 and small.nbytes == 40


def test_sites_name_the_line_in_minidl_that_launched():
    import minidl
    from minidl import backend

    x = cp.ones((3, 3), dtype=np.float32)
    with meter.measure() as m:
        backend.get_array_module(x).exp(x)  # a line outside minidl: credited to this test file
        minidl.kernels.NumpyBackend.scatter_add(x, cp.asarray(np.array([0, 0])), cp.ones((2, 3), np.float32))
    sites = dict(m.sites())
    assert any(site.startswith("minidl/kernels/basic.py:") and "scatter_add" in site for site in sites), sites
    assert any("test_gpu_cost.py" in site for site in sites), sites


def _gpu_cost(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "minidl.gpu_cost", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_command_prints_one_json_object_or_a_table_with_sites():
    costs = json.loads(_gpu_cost("--model", "cnn_b32", "--json"))
    assert list(costs) == ["cnn_b32"]
    keys = {"launches_per_step", "syncs_per_step", "float64_per_step", "h2d_bytes_per_step", "d2h_bytes_per_step",
            "peak_device_mib", "matmuls_per_step", "kernels_per_step"}
    assert keys <= set(costs["cnn_b32"]) and costs["cnn_b32"]["matmuls_per_step"] >= 6  # 2 Linear + 2 Conv, fwd + bwd
    table = _gpu_cost("--model", "cnn_b32", "--sites", "5")
    assert "cnn_b32: top launch sites" in table and "minidl/" in table
