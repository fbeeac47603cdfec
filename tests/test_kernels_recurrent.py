"""The recurrent family of the backend table (minidl/kernels/recurrent.py): one cell step, pointwise.

* the NumPy twins (forward and backward, with ended sequences) against the math written out in
  NumPy and its gradient by central differences (float64, hypothesis draws B, H and which
  sequences have ended);
* the CUDA kernels' glue (CupyRecurrent) run on the CPU: ``launch`` is replaced by a stand-in that
  checks every argument against the kernel's C signature in recurrent.cu and calls the kernel's
  EMULATE adapter; float32 launches one kernel, other dtypes run the twin;
* the CUDA source itself: recurrent.cu compiled for the CPU by g++ (one "thread" walks the grid),
  run on the arguments the glue passes, against the twins (the cases minidl.gpu_check runs on a GPU);
* on the 'cuda' device (a GPU, or MINIDL_FAKE_CUDA=1): float32 layers (the kernels) against the CPU,
  device lengths (no sync; their values checked in anomaly mode), and on the CPU stand-in the cost
  of lesson 10's LSTM per time step (launches, syncs, float64 arrays) counted by minidl.fakecupy.meter.
"""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.nn as nn
from minidl import backend
from minidl.kernels import recurrent as kr
from minidl.ops.recurrent import recurrence
from kernel_harness import KernelFamily, c_arguments, single_thread_library  # (tests/ is on sys.path)

seeds = st.integers(0, 2**32 - 1)
GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
SAVED = {"LSTM": 5, "GRU": 4, "RNN_TANH": 1, "RNN_RELU": 1}


# --------------------------------------------------------------------------- #
# The math written out (NumPy, float64): new state and output of one step
# --------------------------------------------------------------------------- #
def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def reference_step(mode, gx, gh, b_hh, h, c, valid):
    """(h', c', output) with PyTorch's equations; ended sequences keep (h, c) and output 0."""
    H = h.shape[1]
    a = gh + b_hh
    if mode == "LSTM":
        pre = gx + a
        i, f, o = sigmoid(pre[:, :H]), sigmoid(pre[:, H : 2 * H]), sigmoid(pre[:, 3 * H :])
        g = np.tanh(pre[:, 2 * H : 3 * H])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
    elif mode == "GRU":
        r = sigmoid(gx[:, :H] + a[:, :H])
        z = sigmoid(gx[:, H : 2 * H] + a[:, H : 2 * H])
        n = np.tanh(gx[:, 2 * H :] + r * a[:, 2 * H :])
        h_new, c_new = (1 - z) * n + z * h, c
    else:
        pre = gx + a
        h_new, c_new = (np.tanh(pre) if mode == "RNN_TANH" else np.maximum(pre, 0)), c
    v = np.asarray(valid)[:, None]
    return np.where(v, h_new, h), np.where(v, c_new, c), np.where(v, h_new, 0.0)


def reference_loss(mode, a, valid):
    """L = <d_hidden + d_h, h'> + <d_output, output> + <d_c, c'>: backward's results are its gradients."""
    h_new, c_new, output = reference_step(mode, a["gx"], a["gh"], a["b_hh"], a["h"], a["c"], valid)
    loss = ((a["d_hidden"] + a["d_h"]) * h_new).sum() + (a["d_output"] * output).sum()
    return loss + (a["d_c"] * c_new).sum() if mode == "LSTM" else loss


def central_difference(mode, a, valid, name, eps=1e-6):
    """dL/d a[name] by central differences, element by element (float64)."""
    grad = np.zeros_like(a[name])
    for index in np.ndindex(grad.shape):
        original = a[name][index]
        a[name][index] = original + eps
        plus = reference_loss(mode, a, valid)
        a[name][index] = original - eps
        minus = reference_loss(mode, a, valid)
        a[name][index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def draw_step(mode, seed, batch, hidden):
    rng = np.random.default_rng(seed)
    G = GATES[mode]
    arrays = {name: rng.uniform(-2, 2, shape) for name, shape in
              (("gx", (batch, G * hidden)), ("gh", (batch, G * hidden)), ("b_hh", (G * hidden,)),
               ("h", (batch, hidden)), ("c", (batch, hidden)), ("d_output", (batch, hidden)),
               ("d_hidden", (batch, hidden)), ("d_h", (batch, hidden)), ("d_c", (batch, hidden)))}
    return arrays


def twin_forward(table, mode, a, valid):
    """Run ``table``'s forward entry; returns (h', c', output, saved)."""
    batch, hidden = a["h"].shape
    like = a["h"]
    h_new, c_new, output = (np.empty_like(like) for _ in range(3))
    saved = np.empty((batch, SAVED[mode] * hidden), dtype=like.dtype)
    if mode == "LSTM":
        table.lstm_forward(a["gx"], a["gh"], a["b_hh"], a["h"], a["c"], valid, h_new, c_new, output, saved)
    elif mode == "GRU":
        table.gru_forward(a["gx"], a["gh"], a["b_hh"], a["h"], valid, h_new, output, saved)
        c_new = a["c"]
    else:
        table.rnn_forward(a["gx"], a["gh"], a["b_hh"], a["h"], valid, h_new, output, saved, mode == "RNN_RELU")
        c_new = a["c"]
    return h_new, c_new, output, saved


def twin_backward(table, mode, a, saved, valid):
    """Run ``table``'s backward entry; returns (dgx, dgh, d_h after, d_c after)."""
    d_h, d_c = a["d_h"].copy(), a["d_c"].copy()
    dgx = np.empty_like(a["gx"])
    dgh = dgx
    if mode == "LSTM":
        table.lstm_backward(a["d_output"], a["d_hidden"], d_h, d_c, a["c"], saved, valid, dgx)
    elif mode == "GRU":
        dgh = np.empty_like(dgx)
        table.gru_backward(a["d_output"], a["d_hidden"], d_h, a["h"], saved, valid, dgx, dgh)
    else:
        table.rnn_backward(a["d_output"], a["d_hidden"], d_h, saved, valid, dgx, mode == "RNN_RELU")
    return dgx, dgh, d_h, d_c


@pytest.mark.parametrize("mode", list(GATES))
@settings(deadline=None, max_examples=40)
@given(seed=seeds, batch=st.integers(1, 4), hidden=st.integers(1, 5), data=st.data())
def test_twins_match_the_math_and_its_gradient(mode, seed, batch, hidden, data):
    a = draw_step(mode, seed, batch, hidden)
    valid = data.draw(st.none() | st.lists(st.booleans(), min_size=batch, max_size=batch).map(np.array))
    mask = np.ones(batch, dtype=bool) if valid is None else valid

    h_new, c_new, output, saved = twin_forward(kr.NumpyRecurrent, mode, a, valid)
    dgx, dgh, d_h, d_c = twin_backward(kr.NumpyRecurrent, mode, a, saved, valid)

    rh, rc, rout = reference_step(mode, a["gx"], a["gh"], a["b_hh"], a["h"], a["c"], mask)
    np.testing.assert_allclose(h_new, rh, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(output, rout, rtol=1e-12, atol=1e-12)
    if mode == "LSTM":
        np.testing.assert_allclose(c_new, rc, rtol=1e-12, atol=1e-12)

    for got, name in ((dgx, "gx"), (dgh, "gh"), (d_h, "h")) + (((d_c, "c"),) if mode == "LSTM" else ()):
        np.testing.assert_allclose(got, central_difference(mode, a, mask, name), rtol=1e-6, atol=1e-7,
                                   err_msg=f"{mode}: dL/d{name}")


def test_ended_sequences_get_no_gradient_and_pass_theirs_on():
    a = draw_step("LSTM", 0, 3, 2)
    valid = np.array([True, False, True])
    h_new, c_new, output, saved = twin_forward(kr.NumpyRecurrent, "LSTM", a, valid)
    assert (h_new[1] == a["h"][1]).all() and (c_new[1] == a["c"][1]).all() and (output[1] == 0).all()
    dgx, _, d_h, d_c = twin_backward(kr.NumpyRecurrent, "LSTM", a, saved, valid)
    assert (dgx[1] == 0).all() and (d_c[1] == a["d_c"][1]).all()
    np.testing.assert_array_equal(d_h[1], a["d_hidden"][1] + a["d_h"][1])
    assert (d_h[[0, 2]] == 0).all()  # a running LSTM's h reaches its gates only through gh


# --------------------------------------------------------------------------- #
# Running CupyRecurrent on the CPU: a launch that checks the C signature and calls the adapter
# --------------------------------------------------------------------------- #
def one_thread_per_cell(name, threads, params, unpacked):
    """recurrent.cu's kernels take (..., long long batch, int hidden, ...): one thread per (b, j)."""
    batch = unpacked[params.index("long long")]
    assert threads == batch * unpacked[params.index("long long") + 1], f"{name}: {threads} threads"


RECURRENT = KernelFamily({"recurrent.cu": kr.EMULATE}, ["float*", "bool*", "long long", "int"],
                         check=one_thread_per_cell)
SIGNATURES = RECURRENT.signatures


kernel_launches = RECURRENT.launches_fixture()


def test_the_signatures_were_read():
    assert set(SIGNATURES) == set(kr.EMULATE)
    assert SIGNATURES["lstm_forward"][5] == "bool*" and SIGNATURES["lstm_forward"][-2:] == ["long long", "int"]
    assert SIGNATURES["rnn_backward"][-3:] == ["long long", "int", "int"]


@pytest.mark.parametrize("mode", list(GATES))
@settings(deadline=None, max_examples=15)
@given(seed=seeds, batch=st.integers(1, 4), hidden=st.integers(1, 5), data=st.data())
def test_kernels_glue_matches_the_twins(kernel_launches, mode, seed, batch, hidden, data):
    kernel_launches.clear()
    a = {k: v.astype(np.float32) for k, v in draw_step(mode, seed, batch, hidden).items()}
    valid = data.draw(st.none() | st.lists(st.booleans(), min_size=batch, max_size=batch).map(np.array))
    expected = twin_forward(kr.NumpyRecurrent, mode, a, valid)
    got = twin_forward(kr.CupyRecurrent, mode, a, valid)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    expected_back = twin_backward(kr.NumpyRecurrent, mode, a, expected[3], valid)
    got_back = twin_backward(kr.CupyRecurrent, mode, a, got[3], valid)
    for g, e in zip(got_back, expected_back):
        np.testing.assert_array_equal(g, e)
    kernel = {"LSTM": "lstm", "GRU": "gru"}.get(mode, "rnn")
    assert kernel_launches == [f"{kernel}_forward", f"{kernel}_backward"]


def test_inputs_of_any_layout_other_dtypes_and_outputs_that_must_be_contiguous(kernel_launches):
    a = {k: v.astype(np.float32) for k, v in draw_step("LSTM", 1, 3, 2).items()}
    expected = twin_forward(kr.NumpyRecurrent, "LSTM", a, None)
    a["gx"] = np.asfortranarray(a["gx"])  # made contiguous on the way in
    got = twin_forward(kr.CupyRecurrent, "LSTM", a, None)
    np.testing.assert_array_equal(got[0], expected[0])
    assert kernel_launches == ["lstm_forward"]
    a64 = {k: v.astype(np.float64) for k, v in a.items()}
    twin_forward(kr.CupyRecurrent, "LSTM", a64, None)  # float64: the twin, no launch
    assert kernel_launches == ["lstm_forward"]
    out = np.empty((2, 3), dtype=np.float32).T  # (3, 2), not C-contiguous
    with pytest.raises(ValueError, match="outputs must be C-contiguous"):
        kr.CupyRecurrent.rnn_forward(a["h"], a["h"], a["b_hh"][:2], a["h"], None, out, out, out, True)


# --------------------------------------------------------------------------- #
# The CUDA source, compiled for the CPU: the kernels' own indexing and math, run without a GPU
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def cuda_on_cpu(tmp_path_factory):
    return single_thread_library(tmp_path_factory, "recurrent.cu")


@pytest.mark.parametrize("case", kr.CHECK_CASES, ids=lambda case: case[1].__name__)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cuda_source_matches_the_twins(cuda_on_cpu, monkeypatch, case, seed):
    entry, make = case[:2]
    args = make(np.random.default_rng(seed))
    twin_args, kernel_args = copy.deepcopy(args), copy.deepcopy(args)
    getattr(kr.NumpyRecurrent, entry)(*twin_args)
    _, [(name, arguments)] = RECURRENT.launched_by(
        monkeypatch, lambda: getattr(kr.CupyRecurrent, entry)(*kernel_args))  # the glue: what it would launch
    assert name == entry
    cuda_on_cpu[name](*c_arguments(arguments))  # writes kernel_args' outputs in place
    for k, (got, expected) in enumerate(zip(kernel_args, twin_args)):
        if isinstance(got, np.ndarray):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=f"{entry} argument {k}")


def test_every_cupy_entry_has_gpu_check_cases():
    assert {case[0] for case in kr.CHECK_CASES} == set(kr.EMULATE)


# --------------------------------------------------------------------------- #
# The layers on the 'cuda' device: float32 (the kernels) against the CPU
# --------------------------------------------------------------------------- #
@pytest.mark.gpu
@pytest.mark.skipif(not minidl.cuda.is_available(), reason="needs cupy and a GPU (or MINIDL_FAKE_CUDA=1)")
@pytest.mark.parametrize("mode", list(GATES))
@pytest.mark.parametrize("lengths", [None, [5, 2, 0, 4]])
def test_float32_layers_on_the_device_match_the_cpu(mode, lengths):
    rng = np.random.default_rng(3)
    G, H = GATES[mode], 3
    x = rng.uniform(-1, 1, (5, 4, 2)).astype(np.float32)
    state = [rng.uniform(-1, 1, (4, H)).astype(np.float32) for _ in range(2 if mode == "LSTM" else 1)]
    weights = [rng.uniform(-0.5, 0.5, s).astype(np.float32) for s in ((G * H, 2), (G * H, H), (G * H,), (G * H,))]
    results = {}
    for device in ("cpu", "cuda"):
        xt, *rest = (minidl.tensor(a, device=device, requires_grad=True) for a in (x, *state, *weights))
        n = len(state)
        dev_lengths = None if lengths is None else minidl.tensor(np.array(lengths), device=device)
        output, final = recurrence(mode, xt, tuple(rest[:n]), *rest[n:], lengths=dev_lengths)
        ((output * output).sum() + sum((f * f).sum() for f in final)).backward()
        results[device] = [output.numpy(), *(f.numpy() for f in final), xt.grad.numpy(),
                           *(t.grad.numpy() for t in rest)]
    for c, g in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(g, c, rtol=2e-5, atol=2e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not minidl.cuda.is_available(), reason="needs cupy and a GPU (or MINIDL_FAKE_CUDA=1)")
@pytest.mark.parametrize("mode", list(GATES))
def test_float32_cells_on_the_device_match_the_cpu(mode):
    from minidl import ops

    cell_op = {"LSTM": ops.lstm_cell, "GRU": ops.gru_cell, "RNN_TANH": ops.rnn_tanh_cell,
               "RNN_RELU": ops.rnn_relu_cell}[mode]
    rng = np.random.default_rng(5)
    G, H = GATES[mode], 3
    arrays = [rng.uniform(-1, 1, s).astype(np.float32) for s in
              ((4, 2), (4, H), (4, H), (G * H, 2), (G * H, H), (G * H,), (G * H,))]
    results = {}
    for device in ("cpu", "cuda"):
        x, h, c, *weights = (minidl.tensor(a, device=device, requires_grad=True) for a in arrays)
        new = cell_op(x, (h, c) if mode == "LSTM" else h, *weights)
        new = new if mode == "LSTM" else (new,)
        sum((s * s).sum() for s in new).backward()
        results[device] = [s.numpy() for s in new] + [t.grad.numpy() for t in (x, h, *weights)]
    for c, g in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(g, c, rtol=2e-5, atol=2e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not minidl.cuda.is_available(), reason="needs cupy and a GPU (or MINIDL_FAKE_CUDA=1)")
def test_device_lengths_bidirectional_and_their_values_checked_in_anomaly_mode():
    rng = np.random.default_rng(4)
    lstm = nn.LSTM(3, 2, num_layers=2, bidirectional=True, batch_first=True)
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    lengths = np.array([6, 1, 3, 0])
    expected, (h, c) = lstm(minidl.tensor(x), lengths=lengths.tolist())
    lstm.to("cuda")
    got, (h2, c2) = lstm(minidl.tensor(x, device="cuda"), lengths=minidl.tensor(lengths, device="cuda"))
    for e, g in ((expected, got), (h, h2), (c, c2)):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=2e-5, atol=2e-6)
    bad = minidl.tensor(np.array([7, 1, 1, 1]), device="cuda")
    with minidl.autograd.detect_anomaly():
        with pytest.raises(ValueError, match=r"LSTM: lengths must lie between 0 and the 6 time steps, got \[7, 1"):
            lstm(minidl.tensor(x, device="cuda"), lengths=bad)


@pytest.mark.gpu
@pytest.mark.skipif(getattr(backend.cupy, "__name__", "") != "minidl.fakecupy", reason="counts on the CPU stand-in")
def test_lesson_10_lstm_costs_few_launches_per_time_step_and_no_sync():
    """Lesson 10's LSTM(40 -> 128) on padded batches of 64 with device lengths: forward and backward
    take about 4 launches per time step (one matmul and one kernel each way), no sync, no float64."""
    from minidl.fakecupy import meter

    steps, batch = 76, 64
    rng = np.random.default_rng(0)
    lstm = nn.LSTM(40, 128, batch_first=True).to("cuda")
    x = minidl.tensor(rng.standard_normal((batch, steps, 40)).astype(np.float32), device="cuda")
    lengths = minidl.tensor(rng.integers(steps // 3, steps + 1, batch), device="cuda")
    with meter.measure() as m:
        _, (h, _) = lstm(x, lengths=lengths)
        h.sum().backward()
    cost = m.report()
    assert cost["syncs"] == 0 and cost["float64_arrays"] == 0 and cost["d2h_bytes"] == 0
    assert cost["launches"] / steps <= 5, cost  # (20 is the budget; 4 per step + a few per layer)
    assert cost["kernels"] == 2 * steps and cost["matmuls"] <= 2 * steps + 6, cost
