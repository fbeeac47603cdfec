"""The recurrent family of the backend table: the pointwise half of one time step of a cell.

A recurrent layer spends its time in two kinds of work per step: one matmul (h W_hh^T forward,
dgh W_hh backward) and the gate math, which is pointwise. Written as array code the gate math
is some twenty passes over (B, H) arrays per step; here it is one entry each way, which the CUDA
kernels in ``recurrent.cu`` do in one launch. The caller (``minidl.ops.recurrent``) does the
matmuls and keeps the buffers; every entry writes its results into arrays it is given.

Arguments, for a batch of B sequences, H hidden units and G gates (LSTM 4, GRU 3, RNN 1):

    gx, gh      (B, G*H)  x_t W_ih^T + b_ih and h W_hh^T (no bias); b_hh (G*H,) is added here
    h, c        (B, H)    the state before the step; h_new, c_new, output (B, H) after it
    saved       (B, S*H)  what backward needs, written by forward (LSTM: i, f, g, o, tanh(c');
                          GRU: r, z, n, gh_n + b_hn; RNN: h')
    valid       (B,) bool, or None when every sequence runs: where valid[b] is False the sequence
                has ended, its state is carried over (h_new = h), its output is 0, and backward
                sends the gradient straight through to the state before
    d_output    (B, H)    the gradient of output_t
    d_hidden    (B, H)    the gradient reaching h_t through the next step's gh (dgh_{t+1} W_hh)
    d_h, d_c    (B, H)    read: the gradient reaching h_t, c_t directly; overwritten with the one
                          reaching h_{t-1}, c_{t-1} directly (not through gh: the caller adds dgh W_hh)
    dgx, dgh    (B, G*H)  the gradients of gx and gh (the same for the LSTM and RNN: one array)

The NumPy twins below are the readable math; the CuPy versions launch one kernel (float32; other
dtypes run the twin, which is written against ``xp`` and so runs on cupy arrays too).
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.kernels import launch


def _sigmoid(a):
    """sigmoid(a) = 1 / (1 + exp(-a)) = (1 + tanh(a / 2)) / 2 (one call, never overflows)."""
    return 0.5 * backend.get_array_module(a).tanh(0.5 * a) + 0.5


def _blocks(array, count):
    """The ``count`` blocks of H columns of a (B, count*H) array, as views."""
    width = array.shape[-1] // count
    return [array[:, k * width : (k + 1) * width] for k in range(count)]


def _write(valid, target, running, ended):
    """target = running for the sequences still running, ``ended`` for those that have ended."""
    if valid is None:
        target[...] = running
    else:
        target[...] = backend.get_array_module(target).where(valid[:, None], running, ended)


class NumpyRecurrent:
    @staticmethod
    def lstm_forward(gx, gh, b_hh, h, c, valid, h_new, c_new, output, saved):
        """LSTM step (PyTorch's gate order i, f, g, o):

            a = gx + gh + b_hh = [a_i, a_f, a_g, a_o]
            i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
            c' = f c + i g,  h' = o tanh(c');   saved = [i, f, g, o, tanh(c')]
        """
        xp = backend.get_array_module(gx)
        a = gx + gh
        a += b_hh
        i, f, g, o, tanh_c = _blocks(saved, 5)
        saved[:, : a.shape[1]] = _sigmoid(a)  # i, f and o are sigmoids ...
        xp.tanh(_blocks(a, 4)[2], out=g)  # ... and g a tanh
        cell = f * c + i * g
        xp.tanh(cell, out=tanh_c)
        hidden = o * tanh_c
        _write(valid, c_new, cell, c)
        _write(valid, h_new, hidden, h)
        _write(valid, output, hidden, 0)

    @staticmethod
    def lstm_backward(d_output, d_hidden, d_h, d_c, c, saved, valid, dgx):
        """LSTM step backward, from the gradients reaching h' and c':

            dh = d_hidden + d_h + d_output              (h' feeds the next gh, the next state, the output)
            dc = d_c + dh o (1 - tanh(c')^2)             (the total gradient at c')
            d a_i = dc g i (1 - i),  d a_f = dc c f (1 - f),  d a_g = dc i (1 - g^2),  d a_o = dh tanh(c') o (1 - o)
            d_c <- dc f,  d_h <- 0                      (h reaches the gates only through gh)
        An ended sequence: d a = 0, d_h <- d_hidden + d_h, d_c unchanged.
        """
        i, f, g, o, tanh_c = _blocks(saved, 5)
        da_i, da_f, da_g, da_o = _blocks(dgx, 4)
        dh = d_hidden + d_h + d_output
        dc = d_c + dh * o * (1 - tanh_c * tanh_c)
        _write(valid, da_i, dc * g * i * (1 - i), 0)
        _write(valid, da_f, dc * c * f * (1 - f), 0)
        _write(valid, da_g, dc * i * (1 - g * g), 0)
        _write(valid, da_o, dh * tanh_c * o * (1 - o), 0)
        _write(valid, d_c, dc * f, d_c)
        _write(valid, d_h, 0, d_hidden + d_h)

    @staticmethod
    def gru_forward(gx, gh, b_hh, h, valid, h_new, output, saved):
        """GRU step (PyTorch's gate order r, z, n; b_hn stays inside the r * (...)):

            r = sigmoid(gx_r + gh_r + b_hr),  z = sigmoid(gx_z + gh_z + b_hz)
            n = tanh(gx_n + r (gh_n + b_hn)),  h' = (1 - z) n + z h;   saved = [r, z, n, gh_n + b_hn]
        """
        xp = backend.get_array_module(gx)
        a = gh + b_hh
        x_r, x_z, x_n = _blocks(gx, 3)
        h_r, h_z, h_n = _blocks(a, 3)
        r, z, n, gh_n = _blocks(saved, 4)
        r[...], z[...], gh_n[...] = _sigmoid(x_r + h_r), _sigmoid(x_z + h_z), h_n
        xp.tanh(x_n + r * gh_n, out=n)
        hidden = n + z * (h - n)
        _write(valid, h_new, hidden, h)
        _write(valid, output, hidden, 0)

    @staticmethod
    def gru_backward(d_output, d_hidden, d_h, h, saved, valid, dgx, dgh):
        """GRU step backward:

            dh = d_hidden + d_h + d_output
            d a_n = dh (1 - z)(1 - n^2),  d a_r = d a_n gh_n r (1 - r),  d a_z = dh (h - n) z (1 - z)
            dgx = [d a_r, d a_z, d a_n],  dgh = [d a_r, d a_z, d a_n r],  d_h <- dh z
        An ended sequence: dgx = dgh = 0, d_h <- d_hidden + d_h.
        """
        r, z, n, gh_n = _blocks(saved, 4)
        dh = d_hidden + d_h + d_output
        da_n = dh * (1 - z) * (1 - n * n)
        da_r = da_n * gh_n * r * (1 - r)
        da_z = dh * (h - n) * z * (1 - z)
        for gradient, values in zip(_blocks(dgx, 3) + _blocks(dgh, 3), (da_r, da_z, da_n, da_r, da_z, da_n * r)):
            _write(valid, gradient, values, 0)
        _write(valid, d_h, dh * z, d_hidden + d_h)

    @staticmethod
    def rnn_forward(gx, gh, b_hh, h, valid, h_new, output, saved, relu):
        """Elman RNN step:  h' = tanh(gx + gh + b_hh), or max(., 0) if ``relu``;  saved = h'."""
        xp = backend.get_array_module(gx)
        a = gx + gh
        a += b_hh
        saved[...] = xp.maximum(a, 0) if relu else xp.tanh(a)
        _write(valid, h_new, saved, h)
        _write(valid, output, saved, 0)

    @staticmethod
    def rnn_backward(d_output, d_hidden, d_h, saved, valid, dgx, relu):
        """Elman RNN step backward:  da = dh (1 - h'^2) (tanh) or dh [h' > 0] (relu);  d_h <- 0."""
        dh = d_hidden + d_h + d_output
        _write(valid, dgx, dh * (saved > 0) if relu else dh * (1 - saved * saved), 0)
        _write(valid, d_h, 0, d_hidden + d_h)


class CupyRecurrent(NumpyRecurrent):  # pragma: no cover - GPU (or fakecupy)
    @staticmethod
    def lstm_forward(gx, gh, b_hh, h, c, valid, h_new, c_new, output, saved):
        """One launch of ``lstm_forward`` (recurrent.cu)."""
        if gx.dtype != numpy.float32:
            return NumpyRecurrent.lstm_forward(gx, gh, b_hh, h, c, valid, h_new, c_new, output, saved)
        _launch("lstm_forward", h.shape, _in(gx, gh, b_hh, h, c), _valid(valid, h), _out(h_new, c_new, output, saved))

    @staticmethod
    def lstm_backward(d_output, d_hidden, d_h, d_c, c, saved, valid, dgx):
        """One launch of ``lstm_backward`` (recurrent.cu)."""
        if dgx.dtype != numpy.float32:
            return NumpyRecurrent.lstm_backward(d_output, d_hidden, d_h, d_c, c, saved, valid, dgx)
        _launch("lstm_backward", c.shape, _in(d_output, d_hidden), _out(d_h, d_c), _in(c, saved), _valid(valid, c),
                _out(dgx))

    @staticmethod
    def gru_forward(gx, gh, b_hh, h, valid, h_new, output, saved):
        """One launch of ``gru_forward`` (recurrent.cu)."""
        if gx.dtype != numpy.float32:
            return NumpyRecurrent.gru_forward(gx, gh, b_hh, h, valid, h_new, output, saved)
        _launch("gru_forward", h.shape, _in(gx, gh, b_hh, h), _valid(valid, h), _out(h_new, output, saved))

    @staticmethod
    def gru_backward(d_output, d_hidden, d_h, h, saved, valid, dgx, dgh):
        """One launch of ``gru_backward`` (recurrent.cu)."""
        if dgx.dtype != numpy.float32:
            return NumpyRecurrent.gru_backward(d_output, d_hidden, d_h, h, saved, valid, dgx, dgh)
        _launch("gru_backward", h.shape, _in(d_output, d_hidden), _out(d_h), _in(h, saved), _valid(valid, h),
                _out(dgx, dgh))

    @staticmethod
    def rnn_forward(gx, gh, b_hh, h, valid, h_new, output, saved, relu):
        """One launch of ``rnn_forward`` (recurrent.cu)."""
        if gx.dtype != numpy.float32:
            return NumpyRecurrent.rnn_forward(gx, gh, b_hh, h, valid, h_new, output, saved, relu)
        _launch("rnn_forward", h.shape, _in(gx, gh, b_hh, h), _valid(valid, h), _out(h_new, output, saved),
                relu=relu)

    @staticmethod
    def rnn_backward(d_output, d_hidden, d_h, saved, valid, dgx, relu):
        """One launch of ``rnn_backward`` (recurrent.cu)."""
        if dgx.dtype != numpy.float32:
            return NumpyRecurrent.rnn_backward(d_output, d_hidden, d_h, saved, valid, dgx, relu)
        _launch("rnn_backward", d_h.shape, _in(d_output, d_hidden), _out(d_h), _in(saved), _valid(valid, d_h),
                _out(dgx), relu=relu)


def _in(*arrays):  # pragma: no cover - GPU (or fakecupy)
    """Inputs, C-contiguous (free when they already are)."""
    return [backend.cupy.ascontiguousarray(a) for a in arrays]


def _out(*arrays):  # pragma: no cover - GPU (or fakecupy)
    """Outputs are written in place, so they must already be C-contiguous."""
    for a in arrays:
        if not a.flags.c_contiguous:
            raise ValueError(f"recurrent kernels: outputs must be C-contiguous, got shape {a.shape} "
                             f"strides {a.strides}")
    return list(arrays)


_all_valid: dict = {}  # (the cupy module, device, B) -> an all-True (B,) array, made once per process


def _valid(valid, like):  # pragma: no cover - GPU (or fakecupy)
    """``valid`` as a contiguous bool array; None (every sequence runs) becomes a cached all-True one."""
    cupy = backend.cupy
    if valid is not None:
        return [cupy.ascontiguousarray(valid)]
    key = (id(cupy), str(getattr(like, "device", "")), like.shape[0])
    if key not in _all_valid:
        _all_valid[key] = cupy.ones(like.shape[0], dtype=bool)
    return [_all_valid[key]]


def _launch(name, shape, *groups, relu=None):  # pragma: no cover - GPU (or fakecupy)
    """Launch ``name`` over B*H threads: the arrays of ``groups`` in order, then B, H (and the relu flag)."""
    batch, hidden = shape
    scalars = [numpy.int64(batch), numpy.int32(hidden)] + ([] if relu is None else [numpy.int32(bool(relu))])
    launch.launch("recurrent.cu", name, batch * hidden, tuple(a for group in groups for a in group) + tuple(scalars))


def _emulate(twin, relu=False):
    """An adapter for the CPU stand-in: the kernel's arguments (numpy payloads, scalars as numbers)
    -> the NumPy twin (B and H come from the arrays; the relu flag is the last scalar)."""
    def run(*args):
        arrays = args[:-3] if relu else args[:-2]
        return twin(*arrays, bool(args[-1])) if relu else twin(*arrays)
    return run


EMULATE = {
    "lstm_forward": _emulate(NumpyRecurrent.lstm_forward),
    "lstm_backward": _emulate(NumpyRecurrent.lstm_backward),
    "gru_forward": _emulate(NumpyRecurrent.gru_forward),
    "gru_backward": _emulate(NumpyRecurrent.gru_backward),
    "rnn_forward": _emulate(NumpyRecurrent.rnn_forward, relu=True),
    "rnn_backward": _emulate(NumpyRecurrent.rnn_backward, relu=True),
}


# --------------------------------------------------------------------------- #
# Cases for minidl.gpu_check: each kernel against its twin on a GPU (outputs written in place)
# --------------------------------------------------------------------------- #
def _check_arrays(rng, gates, saved, batch=37, hidden=45):
    """Inputs of one step (B = 37, H = 45: no multiple of a block), a third of the sequences ended."""
    def normal(*shape):
        return (rng.standard_normal(shape) * 1.5).astype(numpy.float32)

    def zeros(*shape):
        return numpy.zeros(shape, numpy.float32)

    return dict(gx=normal(batch, gates * hidden), gh=normal(batch, gates * hidden), b_hh=normal(gates * hidden),
                h=normal(batch, hidden), c=normal(batch, hidden), valid=rng.random(batch) < 0.67,
                outs=[zeros(batch, hidden) for _ in range(3)], saved=zeros(batch, saved * hidden),
                grads=[normal(batch, hidden) for _ in range(4)], dgx=zeros(batch, gates * hidden),
                dgh=zeros(batch, gates * hidden))


def _check_lstm_forward(rng):
    a = _check_arrays(rng, 4, 5)
    return a["gx"], a["gh"], a["b_hh"], a["h"], a["c"], a["valid"], *a["outs"], a["saved"]


def _check_lstm_backward(rng):
    a = _check_arrays(rng, 4, 5)
    NumpyRecurrent.lstm_forward(a["gx"], a["gh"], a["b_hh"], a["h"], a["c"], a["valid"], *a["outs"], a["saved"])
    return (*a["grads"], a["c"], a["saved"], a["valid"], a["dgx"])


def _check_gru_forward(rng):
    a = _check_arrays(rng, 3, 4)
    return a["gx"], a["gh"], a["b_hh"], a["h"], None, *a["outs"][:2], a["saved"]


def _check_gru_backward(rng):
    a = _check_arrays(rng, 3, 4)
    NumpyRecurrent.gru_forward(a["gx"], a["gh"], a["b_hh"], a["h"], a["valid"], *a["outs"][:2], a["saved"])
    return (*a["grads"][:3], a["h"], a["saved"], a["valid"], a["dgx"], a["dgh"])


def _check_rnn_forward_relu(rng):
    a = _check_arrays(rng, 1, 1)
    return a["gx"], a["gh"], a["b_hh"], a["h"], a["valid"], *a["outs"][:2], a["saved"], True


def _check_rnn_backward_tanh(rng):
    a = _check_arrays(rng, 1, 1)
    NumpyRecurrent.rnn_forward(a["gx"], a["gh"], a["b_hh"], a["h"], a["valid"], *a["outs"][:2], a["saved"], False)
    return (*a["grads"][:3], a["saved"], None, a["dgx"], False)


CHECK_CASES = [
    ("lstm_forward", _check_lstm_forward),
    ("lstm_backward", _check_lstm_backward),
    ("gru_forward", _check_gru_forward),
    ("gru_backward", _check_gru_backward),
    ("rnn_forward", _check_rnn_forward_relu),
    ("rnn_backward", _check_rnn_backward_tanh),
]
