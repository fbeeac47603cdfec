"""Exercise: the backward of one LSTM cell step (PyTorch's nn.LSTMCell, gate order i, f, g, o).

The forward is written for you:

    a = x @ weight_ih.T + h @ weight_hh.T + bias         (N, 4H)   the gate preactivations
    a_i, a_f, a_g, a_o = the four (N, H) column blocks of a, in this order
    i = sigmoid(a_i)    f = sigmoid(a_f)    g = tanh(a_g)    o = sigmoid(a_o)
    c_new = f * c + i * g
    h_new = o * tanh(c_new)

(``bias`` is PyTorch's bias_ih + bias_hh as one vector.) forward kept i, f, g, o and
tanh(c_new) for you on ``self`` (arrays, each (N, H)).

backward receives TWO gradients, gh = dL/dh_new and gc = dL/dc_new (each (N, H)), and
returns six, one per input: (dx, dh, dc, dweight_ih, dweight_hh, dbias). Derive them,
in this order: the total gradient of c_new (it reaches L directly AND through h_new),
the gradients of the four gates i, f, g, o, the gradient for the old state c, the
gradient da (N, 4H) of the preactivations (blocks in the order i, f, g, o), and from da
the gradients of x, h, the two weights and the bias.

Shapes: x (N, I); h, c (N, H); weight_ih (4H, I); weight_hh (4H, H); bias (4H,).
``self.inputs`` is (x, h, c, weight_ih, weight_hh, bias), as Tensors. Tensor ops mix
with arrays (``gh * self.o``); ``minidl.cat([...], dim=1)`` joins Tensors.

Check it:  python -m minidl.exercises check lstm_cell
"""

from minidl import Function
from minidl.backend import get_array_module


class LSTMCell(Function):
    def forward(self, x, h, c, weight_ih, weight_hh, bias):
        xp = get_array_module(x)
        a = x @ weight_ih.T + h @ weight_hh.T + bias
        a_i, a_f, a_g, a_o = xp.split(a, 4, axis=1)
        self.i, self.f, self.o = (1 / (1 + xp.exp(-t)) for t in (a_i, a_f, a_o))
        self.g = xp.tanh(a_g)
        c_new = self.f * c + self.i * self.g
        self.tanh_c = xp.tanh(c_new)
        return self.o * self.tanh_c, c_new

    def backward(self, gh, gc):
        raise NotImplementedError(
            "LSTMCell.backward: from gh and gc derive the gradient of c_new, then of the gates i, f, g, o, "
            "then da (N, 4H); return (dx, dh, dc, dweight_ih, dweight_hh, dbias) shaped like the six inputs"
        )


def lstm_cell(x, h, c, weight_ih, weight_hh, bias):
    """One step: returns (h_new, c_new)."""
    return LSTMCell()(x, h, c, weight_ih, weight_hh, bias)
