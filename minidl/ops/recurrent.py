"""Recurrent ops: one cell step or a whole sequence, composed or fused.

The gate math of each cell (RNN tanh/relu, LSTM, GRU) lives in ``recurrent_cells``.
This file runs it in two ways that compute the same numbers:

* **composed**: the gate math in Tensor ops, one time step after another. Autograd
  records every op (about 20 per LSTM step) and differentiates them for us.
  ``composed_cell`` and ``composed_recurrence``; the readable reference.
* **fused**: a Function whose forward runs the gate math on raw arrays and whose
  backward is the hand-written derivative (``step_backward``, an entry of the backend
  table: a NumPy twin, or one CUDA kernel per step on a GPU): few kernels, little Python. ``FusedCell`` is one time step; ``FusedRecurrence`` is a whole sequence,
  with the loop over time inside its forward and backward (backprop through time),
  so a layer costs autograd one node instead of hundreds.

Backprop through time, as FusedRecurrence does it (state = (h,) or (h, c)):

    forward   gx = X W_ih^T + b_ih for all T*B rows at once (one matmul)
              for t = 0..T-1:  gh_t = h_{t-1} W_hh^T + b_hh;  state_t = cell(gx_t, gh_t, state_{t-1})
    backward  for t = T-1..0:  (dgx_t, dgh_t, d_direct) = cell'(d state_t)
                               d h_{t-1} = dgh_t W_hh + d_direct_h;  d c_{t-1} = d_direct_c
              dX = DGX W_ih,  dW_ih = DGX^T X,  dW_hh = DGH^T H_prev,  db = column sums
              (DGX stacks dgx_t for all t: each weight gradient is one matmul, not T)

Padded batches: ``lengths[b]`` counts the valid steps of sequence b, and mask[t, b] = t < lengths[b].
Where the mask is off, the state is carried over unchanged and the output is zero:

    state_t = where(mask_t, cell(...), state_{t-1}),   output_t = where(mask_t, h_t, 0)

so the final state of each sequence is its state at its own last valid step; backward
sends the gradient through the same switch. Every sequence runs all T steps (the mask does the
stopping), so nothing reads the lengths back from the GPU: no step waits for the device.

Double backward (``create_graph=True``): supported by the fused Functions, the slow way.
Their array backward records nothing, so each has a ``composed`` twin (the same forward in
Tensor ops: ``composed_cell`` or ``composed_recurrence``), which the engine re-runs and
differentiates instead when a graph of the gradient is wanted.
"""

from __future__ import annotations

import numpy

from minidl import amp, autograd, backend, kernels
from minidl.autograd import Function, is_anomaly_enabled, is_grad_enabled
from minidl.creation import as_tensor_like
from minidl.ops.arithmetic import where
from minidl.ops.linalg import matmul
from minidl.ops.recurrent_cells import CELLS
from minidl.ops.shape import stack, transpose
from minidl.tensor import Tensor


# --------------------------------------------------------------------------- #
# Composed: Tensor ops, differentiated by autograd
# --------------------------------------------------------------------------- #
def _affine(x, w_t, b):
    """x W^T + b, given W^T (b may be None)."""
    y = matmul(x, w_t)
    return y if b is None else y + b


def composed_cell(cell, x, state, w_ih, w_hh, b_ih=None, b_hh=None):
    """One step in Tensor ops: gx = x W_ih^T + b_ih, gh = h W_hh^T + b_hh, then the gate math."""
    return cell.composed(_affine(x, transpose(w_ih, 0, 1), b_ih), _affine(state[0], transpose(w_hh, 0, 1), b_hh), state)


def composed_recurrence(cell, x, state, w_ih, w_hh, b_ih=None, b_hh=None, mask=None):
    """All T steps of a time-major x (T, B, D) in Tensor ops; returns (output (T, B, H), *final state)."""
    w_ih_t, w_hh_t = transpose(w_ih, 0, 1), transpose(w_hh, 0, 1)
    outputs = []
    for t in range(x.shape[0]):
        new_state = cell.composed(_affine(x[t], w_ih_t, b_ih), _affine(state[0], w_hh_t, b_hh), state)
        if mask is None:
            state = new_state
            outputs.append(state[0])
        else:  # past a sequence's end: output zero, keep the old state
            outputs.append(where(mask[t], new_state[0], 0.0))
            state = tuple(where(mask[t], new, old) for new, old in zip(new_state, state))
    return (stack(outputs), *state)


# --------------------------------------------------------------------------- #
# Fused: forward on arrays, hand-written backward
# --------------------------------------------------------------------------- #
class FusedCell(Function):
    """One step of ``cell`` as one Function (the math is in ``recurrent_cells``).

    Inputs: x (B, D), the state (h,) or (h, c) each (B, H), W_ih, W_hh, b_ih, b_hh.
    Outputs: the new state. Backward, with (dgx, dgh) from the cell's ``step_backward``:

        dx = dgx W_ih,  dW_ih = dgx^T x,  db_ih = sum_b dgx
        dh = dgh W_hh + d_direct_h,  dW_hh = dgh^T h,  db_hh = sum_b dgh

    Double backward: the engine differentiates ``composed`` (``composed_cell``; slow).
    """

    def __init__(self, cell):
        self.cell = cell

    def forward(self, x, *rest):
        *state, w_ih, w_hh, b_ih, b_hh = rest
        cell, table, xp = self.cell, kernels.backend_for(x), backend.get_array_module(x)
        batch, hidden = state[0].shape
        gx = table.matmul(x, w_ih.T) + b_ih
        new_state = [xp.empty((batch, hidden), dtype=gx.dtype) for _ in state]
        self.saved = xp.empty((batch, cell.saved * hidden), dtype=gx.dtype)
        # the output of a single step is its new h: the step writes it twice, to the same place
        cell.step(table, gx, table.matmul(state[0], w_hh.T), b_hh, state, None, new_state, new_state[0], self.saved)
        return tuple(new_state)

    def backward(self, *d_new_state):
        cell, n = self.cell, self.cell.num_states
        x, *rest = (t.data for t in self.inputs)
        state, (w_ih, w_hh) = rest[:n], rest[n : n + 2]
        table, xp = kernels.backend_for(x), backend.get_array_module(x)
        zeros = [xp.zeros(state[0].shape, dtype=self.saved.dtype) for _ in range(2)]
        d_state = [zeros[0], *(xp.array(g.data, order="C") for g in d_new_state[1:])]  # dh' enters as d_output
        dgx = xp.empty((x.shape[0], w_ih.shape[0]), dtype=self.saved.dtype)
        dgh = xp.empty_like(dgx) if cell.separate_dgh else dgx
        cell.step_backward(table, d_new_state[0].data, zeros[1], d_state, state, self.saved, None, dgx, dgh)
        d_state[0] = d_state[0] + table.matmul(dgh, w_hh)
        grads = (table.matmul(dgx, w_ih), *d_state, table.matmul(dgx.T, x), table.matmul(dgh.T, state[0]),
                 dgx.sum(axis=0), dgh.sum(axis=0))
        return tuple(Tensor.wrap(g) for g in grads)

    def composed(self, x, *rest):
        """The same step in Tensor ops: ``composed_cell``."""
        n = self.cell.num_states
        return composed_cell(self.cell, x, rest[:n], *rest[n:])


class FusedRecurrence(Function):
    """All T steps of ``cell`` over a time-major sequence, as one Function (see the module
    docstring for the loop and its derivative).

    Inputs: x (T, B, D), the initial state (h0,) or (h0, c0) each (B, H), W_ih, W_hh, b_ih, b_hh.
    Outputs: output (T, B, H) (h_t at every step, zero past a sequence's length), then the
    final state. ``mask`` is a boolean array (T, B, 1), or None when every sequence is full.

    Per time step the work is one matmul and one ``step`` of the backend table forward (on a GPU:
    two launches), one ``step_backward`` and one matmul backward; everything else is done for all
    steps at once, before or after the loop. Nothing waits for the device: every sequence runs all
    T steps, and the mask stops the ones that have ended (their state is carried over).
    The buffers: states[k][t] holds state k before step t (t = 0..T), saved[t] what step t's
    derivative needs, dgx[t] and dgh[t] the gradients of its gx and gh.

    Double backward: the engine differentiates ``composed`` (``composed_recurrence``; slow).
    """

    def __init__(self, cell, mask=None):
        self.cell, self.mask = cell, mask

    def _valid(self, t):
        """valid[b] = step t of sequence b is inside its length (None: every sequence is full)."""
        return None if self.mask is None else self.mask[t, :, 0]

    def forward(self, x, *rest):
        *state, w_ih, w_hh, b_ih, b_hh = rest
        cell, table, xp = self.cell, kernels.backend_for(x), backend.get_array_module(x)
        steps, batch, _ = x.shape
        hidden = w_hh.shape[1]
        gx = table.matmul(x.reshape(steps * batch, -1), w_ih.T)  # x_t W_ih^T for every step at once
        gx += b_ih
        gx = gx.reshape(steps, batch, -1)
        self.states = [xp.empty((steps + 1, batch, hidden), dtype=gx.dtype) for _ in state]
        for buffer, initial in zip(self.states, state):
            buffer[0] = initial
        self.saved = xp.empty((steps, batch, cell.saved * hidden), dtype=gx.dtype)
        output = xp.empty((steps, batch, hidden), dtype=gx.dtype)
        w_hh_t = xp.ascontiguousarray(w_hh.T)  # (one copy: BLAS multiplies by it faster than by a transposed view)
        for t in range(steps):
            gh = table.matmul(self.states[0][t], w_hh_t)
            cell.step(table, gx[t], gh, b_hh, [s[t] for s in self.states], self._valid(t),
                      [s[t + 1] for s in self.states], output[t], self.saved[t])
        return (output, *(s[steps] for s in self.states))  # (backward never reads the final state)

    def backward(self, d_output, *d_final_state):
        cell, n = self.cell, self.cell.num_states
        x, *rest = (t.data for t in self.inputs)
        w_ih, w_hh = rest[n : n + 2]
        table, xp = kernels.backend_for(x), backend.get_array_module(x)
        steps, batch, _ = x.shape
        needs = [t.requires_grad for t in self.inputs]
        d_out = xp.ascontiguousarray(d_output.data)
        d_state = [xp.array(g.data, order="C") for g in d_final_state]  # updated in place, step by step
        d_hidden = xp.zeros_like(d_state[0])  # dgh_{t+1} W_hh: nothing after the last step
        dgx_all = xp.empty((steps, batch, w_ih.shape[0]), dtype=d_out.dtype)
        dgh_all = xp.empty_like(dgx_all) if cell.separate_dgh else dgx_all
        for t in reversed(range(steps)):
            cell.step_backward(table, d_out[t], d_hidden, d_state, [s[t] for s in self.states], self.saved[t],
                               self._valid(t), dgx_all[t], dgh_all[t])
            if t > 0 or needs[1]:
                d_hidden = table.matmul(dgh_all[t], w_hh)
        d_state[0] = d_state[0] + d_hidden if needs[1] else None

        rows = steps * batch
        dgx, dgh = dgx_all.reshape(rows, -1), dgh_all.reshape(rows, -1)
        h_prev = self.states[0][:steps].reshape(rows, -1)
        dx = table.matmul(dgx, w_ih).reshape(x.shape) if needs[0] else None
        dw_ih = table.matmul(dgx.T, x.reshape(rows, -1)) if needs[n + 1] else None
        dw_hh = table.matmul(dgh.T, h_prev) if needs[n + 2] else None
        grads = (dx, *d_state, dw_ih, dw_hh, dgx.sum(axis=0), dgh.sum(axis=0))
        return tuple(None if g is None else Tensor.wrap(g) for g in grads)

    def composed(self, x, *rest):
        """The same sequence in Tensor ops: ``composed_recurrence``."""
        n = self.cell.num_states
        return composed_recurrence(self.cell, x, rest[:n], *rest[n:], mask=self.mask)


# --------------------------------------------------------------------------- #
# Functional forms (PyTorch's torch.rnn_tanh_cell, torch.lstm_cell, ... plus whole layers)
# --------------------------------------------------------------------------- #
def rnn_tanh_cell(x, hx, w_ih, w_hh, b_ih=None, b_hh=None, implementation="fused"):
    """One Elman RNN step: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh); x (B, D), hx (B, H)."""
    return _cell_step("rnn_tanh_cell", "RNN_TANH", x, (hx,), w_ih, w_hh, b_ih, b_hh, implementation)[0]


def rnn_relu_cell(x, hx, w_ih, w_hh, b_ih=None, b_hh=None, implementation="fused"):
    """One Elman RNN step: h' = relu(x W_ih^T + b_ih + h W_hh^T + b_hh); x (B, D), hx (B, H)."""
    return _cell_step("rnn_relu_cell", "RNN_RELU", x, (hx,), w_ih, w_hh, b_ih, b_hh, implementation)[0]


def lstm_cell(x, hx, w_ih, w_hh, b_ih=None, b_hh=None, implementation="fused"):
    """One LSTM step: returns (h', c') from x (B, D) and hx = (h, c), each (B, H);
    W_ih (4H, D) and W_hh (4H, H) stack the gates i, f, g, o."""
    return _cell_step("lstm_cell", "LSTM", x, tuple(hx), w_ih, w_hh, b_ih, b_hh, implementation)


def gru_cell(x, hx, w_ih, w_hh, b_ih=None, b_hh=None, implementation="fused"):
    """One GRU step: h' from x (B, D) and hx (B, H); W_ih (3H, D), W_hh (3H, H) stack r, z, n."""
    return _cell_step("gru_cell", "GRU", x, (hx,), w_ih, w_hh, b_ih, b_hh, implementation)[0]


def recurrence(mode, x, hx, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, implementation="fused"):
    """One recurrent layer over a time-major sequence x (T, B, D).

    ``mode`` is 'RNN_TANH', 'RNN_RELU', 'LSTM' or 'GRU'; ``hx`` the initial state, a tuple
    (h0,) or (h0, c0) of (B, H) tensors; ``lengths`` (B integers, optional) the number of
    valid steps of each sequence. Returns (output (T, B, H), final state tuple).
    """
    op = f"recurrence({mode!r})"
    if mode not in CELLS:
        raise ValueError(f"recurrence: mode must be one of {sorted(CELLS)}, got {mode!r}")
    cell = CELLS[mode]
    x, hx, w_ih, w_hh, b_ih, b_hh = _check_arguments(op, cell, x, tuple(hx), w_ih, w_hh, b_ih, b_hh, 3, implementation)
    if x.shape[0] == 0:
        raise ValueError(f"{op}: expected at least one time step, got input of shape {x.shape}")
    mask = None if lengths is None else lengths_to_mask(lengths, x.shape[0], x.shape[1], x, op)
    if implementation == "composed":
        output, *state = composed_recurrence(cell, x, hx, w_ih, w_hh, b_ih, b_hh, mask)
    else:
        output, *state = FusedRecurrence(cell, mask)(x, *hx, w_ih, w_hh, *_biases(w_ih, b_ih, b_hh))
    return output, tuple(state)


def check_lengths(lengths, steps, batch, op="recurrence"):
    """``lengths`` (a list, array or Tensor of B integers in 0..T) checked, as an integer array:
    a host numpy int64 array, or the device array itself when it lives on a GPU.

    Nothing here waits for the GPU: the shape and the dtype of device lengths are checked, but
    their values (0 <= L <= T) only in anomaly mode (``minidl.autograd.detect_anomaly()``), since
    reading them means copying them to the host, a sync in every training step.
    """
    values = lengths.data if isinstance(lengths, Tensor) else lengths
    on_device = backend.is_cupy_array(values)
    array = values if on_device else numpy.asarray(values)
    if array.shape != (batch,) or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(
            f"{op}: lengths must be {batch} integers (one per sequence in the batch), "
            f"got {array.dtype} values of shape {array.shape}"
        )
    if on_device and not is_anomaly_enabled():
        return array
    host = numpy.asarray(backend.to_numpy(array))
    if host.size and (host.min() < 0 or host.max() > steps):
        raise ValueError(f"{op}: lengths must lie between 0 and the {steps} time steps, got {host.tolist()}")
    return array if on_device else host.astype(numpy.int64)


def lengths_to_mask(lengths, steps, batch, like, op="recurrence"):
    """mask[t, b, 0] = t < lengths[b]: a boolean array (T, B, 1) on ``like``'s device, or None
    when the lengths are host data and every sequence uses all ``steps`` steps (nothing to mask).
    Device lengths are compared on the device (no sync): a mask, even when nothing is masked."""
    valid = check_lengths(lengths, steps, batch, op)
    if not backend.is_cupy_array(valid) and (valid == steps).all():
        return None
    valid = backend.to_device(valid, like.device)  # (no copy when it is there already)
    return (like.xp.arange(steps)[:, None] < valid[None, :])[:, :, None]


def _cell_step(op, mode, x, state, w_ih, w_hh, b_ih, b_hh, implementation):
    cell = CELLS[mode]
    x, state, w_ih, w_hh, b_ih, b_hh = _check_arguments(op, cell, x, state, w_ih, w_hh, b_ih, b_hh, 2, implementation)
    if implementation == "composed":
        return composed_cell(cell, x, state, w_ih, w_hh, b_ih, b_hh)
    return FusedCell(cell)(x, *state, w_ih, w_hh, *_biases(w_ih, b_ih, b_hh))


def _biases(w_ih, b_ih, b_hh):
    """The fused Functions always take two biases: zeros (constants) stand in for missing ones."""
    zeros = None if b_ih is not None and b_hh is not None else Tensor.wrap(w_ih.xp.zeros(w_ih.shape[:1], dtype=w_ih.dtype))
    return (zeros if b_ih is None else b_ih), (zeros if b_hh is None else b_hh)


def _check_arguments(op, cell, x, state, w_ih, w_hh, b_ih, b_hh, x_ndim, implementation):
    """Shapes, dtypes and the implementation name, with messages that say what was expected."""
    if implementation not in ("fused", "composed"):
        raise ValueError(f"{op}: implementation must be 'fused' or 'composed', got {implementation!r}")
    w_ih = as_tensor_like(w_ih, (w_hh,))
    x, w_hh, b_ih, b_hh = (None if t is None else as_tensor_like(t, (w_ih,)) for t in (x, w_hh, b_ih, b_hh))
    state = tuple(as_tensor_like(s, (w_ih,)) for s in state)
    x, w_ih, w_hh, b_ih, b_hh, *state = amp.autocast_inputs(x, w_ih, w_hh, b_ih, b_hh, *state)  # float16 (autocast)
    state = tuple(state)
    layout = "(T, B, input_size)" if x_ndim == 3 else "(B, input_size)"
    if x.ndim != x_ndim:
        raise ValueError(f"{op}: expected the input to have shape {layout}, got shape {x.shape}")
    gates = cell.gates
    if w_ih.ndim != 2 or w_ih.shape[0] % gates or w_ih.shape[1] != x.shape[-1]:
        raise ValueError(
            f"{op}: expected w_ih of shape ({gates} * hidden_size, input_size={x.shape[-1]}), got {w_ih.shape}"
        )
    hidden = w_ih.shape[0] // gates
    if w_hh.shape != (gates * hidden, hidden):
        raise ValueError(f"{op}: expected w_hh of shape ({gates * hidden}, {hidden}) to match w_ih, got {w_hh.shape}")
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None and b.shape != (gates * hidden,):
            raise ValueError(f"{op}: expected {name} of shape ({gates * hidden},), got {b.shape}")
    if len(state) != cell.num_states:
        raise ValueError(f"{op}: expected a state of {cell.num_states} tensor(s), got {len(state)}")
    for s in state:
        if s.shape != (x.shape[-2], hidden):
            raise ValueError(f"{op}: expected each state tensor of shape (B={x.shape[-2]}, H={hidden}), got {s.shape}")
    dtypes = {str(t.dtype) for t in (x, *state, w_ih, w_hh, b_ih, b_hh) if t is not None}
    if len(dtypes) > 1 or not dtypes.pop().startswith("float"):
        raise TypeError(
            f"{op}: expected the input, state, weights and biases to share one floating dtype, "
            f"got {', '.join(str(t.dtype) for t in (x, *state, w_ih, w_hh) if t is not None)}"
        )
    return x, state, w_ih, w_hh, b_ih, b_hh
