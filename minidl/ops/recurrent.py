"""Recurrent ops: one cell step or a whole sequence, composed or fused.

The gate math of each cell (RNN tanh/relu, LSTM, GRU) lives in ``recurrent_cells``.
This file runs it in two ways that compute the same numbers:

* **composed**: the gate math in Tensor ops, one time step after another. Autograd
  records every op (about 20 per LSTM step) and differentiates them for us.
  ``composed_cell`` and ``composed_recurrence``; the readable reference.
* **fused**: a Function whose forward runs the gate math on raw arrays and whose
  backward is the hand-written derivative (``step_backward``): few kernels, little
  Python. ``FusedCell`` is one time step; ``FusedRecurrence`` is a whole sequence,
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
sends the gradient through the same switch.

Double backward (``create_graph=True``): supported by the fused Functions, the slow way.
Their array backward records nothing, so each has a ``composed`` twin (the same forward in
Tensor ops: ``composed_cell`` or ``composed_recurrence``), which the engine re-runs and
differentiates instead when a graph of the gradient is wanted.
"""

from __future__ import annotations

import numpy

from minidl import amp, autograd, backend
from minidl.autograd import Function, is_grad_enabled
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
        new_state, self.saved = self.cell.step(x @ w_ih.T + b_ih, state[0] @ w_hh.T + b_hh, tuple(state))
        return new_state

    def backward(self, *d_new_state):
        cell, n = self.cell, self.cell.num_states
        x, *rest = (t.data for t in self.inputs)
        state, (w_ih, w_hh) = rest[:n], rest[n : n + 2]
        dgx, dgh, d_direct = cell.step_backward([g.data for g in d_new_state], tuple(state), self.saved)
        d_state = _add_hidden_path(d_direct, dgh @ w_hh)
        grads = (dgx @ w_ih, *d_state, dgx.T @ x, dgh.T @ state[0], dgx.sum(axis=0), dgh.sum(axis=0))
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
    Backward (backprop through time, derived in the module docstring): for t = T-1..0 the cell's
    ``step_backward`` turns d state_t into (dgx_t, dgh_t), and d h_{t-1} = dgh_t W_hh + its direct term;
    then dX = DGX W_ih,  dW_ih = DGX^T X,  dW_hh = DGH^T H_prev,  db_ih = sum DGX,  db_hh = sum DGH.

    Double backward: the engine differentiates ``composed`` (``composed_recurrence``; slow).
    """

    def __init__(self, cell, mask=None):
        self.cell, self.mask = cell, mask

    def forward(self, x, *rest):
        *state, w_ih, w_hh, b_ih, b_hh = rest
        xp = backend.get_array_module(x)
        steps, batch, _ = x.shape
        gx = (x.reshape(steps * batch, -1) @ w_ih.T + b_ih).reshape(steps, batch, -1)
        w_hh_t = w_hh.T
        output = xp.empty((steps, batch, w_hh.shape[1]), dtype=gx.dtype)
        zero = xp.zeros((), dtype=gx.dtype)  # a 0-d array: cupy's where wants arrays
        state = tuple(state)
        self.states, self.saved = [state], []  # state_{t-1} and the cell's saved arrays, per step
        for t in range(steps):
            new_state, saved = self.cell.step(gx[t], state[0] @ w_hh_t + b_hh, state)
            if self.mask is None:
                output[t] = new_state[0]
            else:
                output[t] = xp.where(self.mask[t], new_state[0], zero)
                new_state = tuple(xp.where(self.mask[t], new, old) for new, old in zip(new_state, state))
            state = new_state
            self.states.append(state)
            self.saved.append(saved)
        return (output, *state)

    def backward(self, d_output, *d_final_state):
        cell, mask, n = self.cell, self.mask, self.cell.num_states
        x, *rest = (t.data for t in self.inputs)
        w_ih, w_hh = rest[n : n + 2]
        xp = backend.get_array_module(x)
        steps, batch, _ = x.shape
        d_out, d_state = d_output.data, [g.data for g in d_final_state]
        dgx_all = xp.empty((steps, batch, w_ih.shape[0]), dtype=d_out.dtype)
        dgh_all = xp.empty_like(dgx_all)
        zero = xp.zeros((), dtype=d_out.dtype)
        for t in reversed(range(steps)):
            d_new = [d_state[0] + d_out[t], *d_state[1:]]  # h_t feeds both output_t and step t+1
            if mask is not None:  # masked steps pass the gradient straight to the state before
                carried = [xp.where(mask[t], zero, d) for d in d_state]
                d_new = [xp.where(mask[t], d, zero) for d in d_new]
            dgx_all[t], dgh_all[t], d_direct = cell.step_backward(d_new, self.states[t], self.saved[t])
            d_state = _add_hidden_path(d_direct, dgh_all[t] @ w_hh)
            if mask is not None:
                d_state = [d + c for d, c in zip(d_state, carried)]

        rows = steps * batch
        dgx, dgh = dgx_all.reshape(rows, -1), dgh_all.reshape(rows, -1)
        h_prev = xp.stack([state[0] for state in self.states[:-1]]).reshape(rows, -1)
        needs = [t.requires_grad for t in self.inputs]
        dx = (dgx @ w_ih).reshape(x.shape) if needs[0] else None
        dw_ih = dgx.T @ x.reshape(rows, -1) if needs[n + 1] else None
        dw_hh = dgh.T @ h_prev if needs[n + 2] else None
        grads = (dx, *d_state, dw_ih, dw_hh, dgx.sum(axis=0), dgh.sum(axis=0))
        return tuple(None if g is None else Tensor.wrap(g) for g in grads)

    def composed(self, x, *rest):
        """The same sequence in Tensor ops: ``composed_recurrence``."""
        n = self.cell.num_states
        return composed_recurrence(self.cell, x, rest[:n], *rest[n:], mask=self.mask)


def _add_hidden_path(d_direct, d_h_through_gh):
    """d state_{t-1}: the cell's direct terms, plus dgh W_hh on the hidden state."""
    d_h = d_h_through_gh if d_direct[0] is None else d_direct[0] + d_h_through_gh
    return [d_h, *d_direct[1:]]


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
    """``lengths`` (a list, array or Tensor of B integers in 0..T) as a host numpy int64 array."""
    host = numpy.asarray(backend.to_numpy(lengths.data if isinstance(lengths, Tensor) else lengths))
    if host.shape != (batch,) or (host.size and host.dtype.kind not in "iu"):
        raise ValueError(
            f"{op}: lengths must be {batch} integers (one per sequence in the batch), "
            f"got {host.dtype} values of shape {host.shape}"
        )
    if host.size and (host.min() < 0 or host.max() > steps):
        raise ValueError(f"{op}: lengths must lie between 0 and the {steps} time steps, got {host.tolist()}")
    return host.astype(numpy.int64)


def lengths_to_mask(lengths, steps, batch, like, op="recurrence"):
    """mask[t, b, 0] = t < lengths[b]: a boolean array (T, B, 1) on ``like``'s device,
    or None when every sequence uses all ``steps`` steps (nothing to mask)."""
    host = check_lengths(lengths, steps, batch, op)
    if (host == steps).all():
        return None
    valid = backend.to_device(host, like.device)
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
