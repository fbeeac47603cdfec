"""The gate math of the recurrent cells: RNN (tanh, relu), LSTM, GRU.

Every cell starts from the same two affine maps of one time step (computed by the caller):

    gx = x_t W_ih^T + b_ih      (B, G*H)   the input's contribution to every gate
    gh = h   W_hh^T + b_hh      (B, G*H)   the previous hidden state's contribution

with PyTorch's weight shapes W_ih (G*H, D), W_hh (G*H, H) and its gate order
(G = 1 for RNN; 4 for LSTM: i, f, g, o; 3 for GRU: r, z, n). What follows differs per
cell, and each class below writes it down:

* ``composed(gx, gh, state)``: in Tensor ops; autograd differentiates it. Read this first.
* ``step(table, ...)`` and ``step_backward(table, ...)``: the same math and its hand-written
  derivative, pointwise on raw arrays, as entries of the backend table (``minidl.kernels.recurrent``:
  a NumPy twin that spells the math out, and a CUDA kernel that does a step in one launch).
  ``step`` adds b_hh itself (gh comes without it) and writes the new state, the output and what
  the derivative needs (``saved``: that many blocks of H columns) into arrays it is given;
  ``step_backward`` turns the gradients reaching the new state into dL/dgx and dL/dgh (one array
  unless ``separate_dgh``) and the gradient reaching the old state directly. The caller adds the
  path through gh: dL/dh += dL/dgh @ W_hh.

A state is a tuple of arrays with the hidden state h first: (h,) or, for the LSTM, (h, c).
The fused Functions in ``minidl.ops.recurrent`` drive ``step`` and ``step_backward``; their
arguments are described in ``minidl.kernels.recurrent``.
"""

from __future__ import annotations

from minidl.ops.activation import relu, sigmoid, tanh
from minidl.ops.shape import chunk


class RNNTanhGates:
    """h' = tanh(gx + gh);  da = dh' * (1 - h'**2)"""

    mode, gates, num_states, saved, separate_dgh = "RNN_TANH", 1, 1, 1, False

    @staticmethod
    def composed(gx, gh, state):
        return (tanh(gx + gh),)

    @staticmethod
    def step(table, gx, gh, b_hh, state, valid, new_state, output, saved):
        table.rnn_forward(gx, gh, b_hh, *state, valid, *new_state, output, saved, relu=False)

    @staticmethod
    def step_backward(table, d_output, d_hidden, d_state, state, saved, valid, dgx, dgh):
        table.rnn_backward(d_output, d_hidden, *d_state, saved, valid, dgx, relu=False)


class RNNReluGates:
    """h' = max(gx + gh, 0);  da = dh' where h' > 0, else 0"""

    mode, gates, num_states, saved, separate_dgh = "RNN_RELU", 1, 1, 1, False

    @staticmethod
    def composed(gx, gh, state):
        return (relu(gx + gh),)

    @staticmethod
    def step(table, gx, gh, b_hh, state, valid, new_state, output, saved):
        table.rnn_forward(gx, gh, b_hh, *state, valid, *new_state, output, saved, relu=True)

    @staticmethod
    def step_backward(table, d_output, d_hidden, d_state, state, saved, valid, dgx, dgh):
        table.rnn_backward(d_output, d_hidden, *d_state, saved, valid, dgx, relu=True)


class LSTMGates:
    """Long short-term memory (PyTorch's equations and gate order i, f, g, o):

        a = gx + gh = [a_i, a_f, a_g, a_o]       (four blocks of H columns)
        i = sigmoid(a_i)    input gate: how much of the candidate to write
        f = sigmoid(a_f)    forget gate: how much of the old cell to keep
        g = tanh(a_g)       the candidate values
        o = sigmoid(a_o)    output gate: how much of the cell to show
        c' = f * c + i * g
        h' = o * tanh(c')

    Derivative, from dh' and dc' (the gradient reaching c' from later steps):

        dc  = dc' + dh' * o * (1 - tanh(c')**2)      total gradient at c'
        di  = dc * g,   df = dc * c,   dg = dc * i,   do = dh' * tanh(c')
        da_i = di * i (1 - i),  da_f = df * f (1 - f),  da_g = dg * (1 - g**2),  da_o = do * o (1 - o)
        dc_old = dc * f                               (h reaches a only through gh)
    """

    mode, gates, num_states, saved, separate_dgh = "LSTM", 4, 2, 5, False

    @staticmethod
    def composed(gx, gh, state):
        h, c = state
        i, f, g, o = chunk(gx + gh, 4, axis=-1)
        i, f, g, o = sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
        c = f * c + i * g
        h = o * tanh(c)
        return h, c

    @staticmethod
    def step(table, gx, gh, b_hh, state, valid, new_state, output, saved):
        """saved = [i, f, g, o, tanh(c')]"""
        table.lstm_forward(gx, gh, b_hh, *state, valid, *new_state, output, saved)

    @staticmethod
    def step_backward(table, d_output, d_hidden, d_state, state, saved, valid, dgx, dgh):
        table.lstm_backward(d_output, d_hidden, *d_state, state[1], saved, valid, dgx)


class GRUGates:
    """Gated recurrent unit (PyTorch's equations and gate order r, z, n):

        r = sigmoid(gx_r + gh_r)          reset gate
        z = sigmoid(gx_z + gh_z)          update gate: how much of the old state to keep
        n = tanh(gx_n + r * gh_n)         the candidate (b_hn stays inside the r * (...))
        h' = (1 - z) * n + z * h

    Derivative, from dh':

        dn = dh' (1 - z),  dz = dh' (h - n),  dh_old = dh' z  (plus the path through gh)
        da_n = dn (1 - n**2);  dgx_n = da_n,  dgh_n = da_n * r,  dr = da_n * gh_n
        da_r = dr r (1 - r),   da_z = dz z (1 - z)
    """

    mode, gates, num_states, saved, separate_dgh = "GRU", 3, 1, 4, True

    @staticmethod
    def composed(gx, gh, state):
        (h,) = state
        x_r, x_z, x_n = chunk(gx, 3, axis=-1)
        h_r, h_z, h_n = chunk(gh, 3, axis=-1)
        r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
        n = tanh(x_n + r * h_n)
        return ((1 - z) * n + z * h,)

    @staticmethod
    def step(table, gx, gh, b_hh, state, valid, new_state, output, saved):
        """saved = [r, z, n, gh_n + b_hn]"""
        table.gru_forward(gx, gh, b_hh, *state, valid, *new_state, output, saved)

    @staticmethod
    def step_backward(table, d_output, d_hidden, d_state, state, saved, valid, dgx, dgh):
        table.gru_backward(d_output, d_hidden, *d_state, state[0], saved, valid, dgx, dgh)


CELLS = {cell.mode: cell for cell in (RNNTanhGates, RNNReluGates, LSTMGates, GRUGates)}
