# %% [markdown]
# # Lesson 08: the LSTM, a recurrent cell whose memory is added to, not multiplied by weights.
#
# Lesson 07 showed why a plain RNN forgets: going back one step multiplies the gradient by
# $\operatorname{diag}(\tanh')\, W_{hh}$, so it shrinks (or grows) exponentially with the distance. The LSTM
# (Hochreiter and Schmidhuber, 1997; forget gate: Gers et al., 2000) keeps a second state,
# the cell $c$, that is updated by addition and decayed by a gate the network controls
# ($\sigma$ the sigmoid, $\odot$ the elementwise product):
#
# $$\begin{aligned}
# i &= \sigma(x W_{ii}^\top + h W_{hi}^\top + b_i) && \text{input gate: how much of the candidate to write} \\
# f &= \sigma(x W_{if}^\top + h W_{hf}^\top + b_f) && \text{forget gate: how much of the old cell to keep} \\
# g &= \tanh(x W_{ig}^\top + h W_{hg}^\top + b_g) && \text{the candidate} \\
# o &= \sigma(x W_{io}^\top + h W_{ho}^\top + b_o) && \text{output gate: how much of the cell to show} \\
# c' &= f \odot c + i \odot g \\
# h' &= o \odot \tanh(c')
# \end{aligned}$$
#
# Along the cell, $\partial L / \partial c = \partial L / \partial c' \odot f$: one factor per step, elementwise, between 0 and 1, and
# chosen by the network. With $f$ near 1 the gradient (and the memory) survives many steps.
#
# This lesson measures:
#
# 1. those equations written as code with Tensor ops, against `nn.LSTMCell` in its
#    'composed' form (the same math, PyTorch's gate order i, f, g, o) and its 'fused' form
#    (one Function with a hand-written backward): forward and gradients, max abs difference;
# 2. `gradcheck` of the cell in float64: ours, and the fused one's hand-written backward;
# 3. what fusing buys: time and autograd nodes of a whole sequence, composed vs fused;
# 4. $\|\partial L / \partial x_t\|$, how much the loss at the end can still "hear" of the input at step $t$,
#    for an RNN and an LSTM at initialisation: with PyTorch's init ($b = 0$ on average, so
#    $f$ is about $0.5$) and with the forget-gate bias set to 3 ($f$ about $0.95$);
# 5. lesson 07's task, "remember the marked sign", at $T = 40$, where the RNN stayed at chance:
#    RNN vs LSTM vs LSTM with forget bias 3; then we read the trained LSTM's cells and gates,
#    lined up at the marked step, to see where it keeps the answer.
#
# Choices: the forget bias. PyTorch initialises every bias $U(-1/\sqrt{H}, 1/\sqrt{H})$; then
# $f$ is about $\sigma(0) = 0.5$ and the cell halves every step: at initialisation an LSTM
# forgets as fast as the RNN. Starting $f$ near 1 (Gers et al. 2000; Jozefowicz et al. 2015
# use $b_f = 1$) lets the first gradients reach far back. A cell kept with forget gate $f$ loses
# $1 - f$ of itself a step, so it remembers for about $1 / (1 - f)$ steps; Tallec and Ollivier
# (2018) choose $b_f$ so that this matches the dependency lengths. We use $b_f = 3$: $f = 0.95$, a
# memory of about 20 steps, for dependencies of 30 to 40 ($b_f = 2$, $f = 0.88$, 8 steps, learned
# the task too within 600 updates, seeds 0, 1 and 2, on the 2-core build machine, 2026-12-06: try
# --forget-bias 2 or 1 yourself). PyTorch has two
# biases per gate, $b_{ih}$ and $b_{hh}$; only their sum matters, so each gets half.
# Training as in lesson 07 (Adam lr 1e-2, clipping at norm 1, 64 fresh sequences a step).
#
# Run:  python lessons/08_lstm.py [--device cuda] [--smoke] [--steps N] [--length T] [--out DIR]

# %% [markdown]
# ## Setup: arguments, device, output folder

# %%
import time
from pathlib import Path

import matplotlib

import common  # noqa: E402  (lessons/common.py: the flags and set-up every lesson shares)

common.use_agg_unless_notebook()  # Agg (image files, no window) in a script; inline figures in a notebook
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import minidl  # noqa: E402
import minidl.nn as nn  # noqa: E402
import minidl.nn.functional as F  # noqa: E402
from minidl import datasets, gradcheck, optim, plot  # noqa: E402

p = common.parser("Lesson 08: LSTM gates, composed vs fused, and a long dependency learned",
                  batch_size=64, out="runs/08_lstm")
p.add_argument("--hidden", type=int, default=32, help="hidden units (default: 32)")
p.add_argument("--steps", type=int, default=600, help="training updates per model (default: 600)")
p.add_argument("--length", type=int, default=40, help="sequence length T of the task (default: 40)")
p.add_argument("--forget-bias", type=float, default=3.0, help="initial b_f = b_if + b_hf (default: 3.0)")
args, _ = p.parse_known_args()
if args.smoke:
    args.steps, args.length = min(args.steps, 20), min(args.length, 12)
device = common.setup(args)  # seeds, checks the device, makes --out
out = Path(args.out)
rng = np.random.default_rng(args.seed)
lesson_start = time.perf_counter()
H, B, T = args.hidden, args.batch_size, args.length


def on_device(values, dtype=np.float32, requires_grad=False):
    return minidl.tensor(np.asarray(values), dtype=dtype, device=device, requires_grad=requires_grad)


# %% [markdown]
# ## 1. The LSTM equations as code
#
# PyTorch stacks the four gates' weights in one matrix, $W_{ih}$ `(4H, D)` $= [W_{ii}; W_{if}; W_{ig}; W_{io}]$,
# $W_{hh}$ `(4H, H)` likewise, so one matmul each computes all four pre-activations at once.

# %%
def lstm_cell_by_hand(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One LSTM step in Tensor ops: returns (h', c'). Autograd differentiates it."""
    hidden = h.shape[-1]
    a = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # (B, 4H): every gate's pre-activation
    i = minidl.sigmoid(a[:, 0 * hidden:1 * hidden])  # input gate
    f = minidl.sigmoid(a[:, 1 * hidden:2 * hidden])  # forget gate
    g = minidl.tanh(a[:, 2 * hidden:3 * hidden])  # candidate
    o = minidl.sigmoid(a[:, 3 * hidden:4 * hidden])  # output gate
    c_new = f * c + i * g
    h_new = o * minidl.tanh(c_new)
    return h_new, c_new


D, small_h, batch = 3, 5, 4
fused_cell = nn.LSTMCell(D, small_h).to(device)  # implementation='fused' is the default
composed_cell = nn.LSTMCell(D, small_h, implementation="composed").to(device)
composed_cell.load_state_dict(fused_cell.state_dict())
x0, h0, c0 = (rng.standard_normal((batch, n)) for n in (D, small_h, small_h))
v_h, v_c = on_device(rng.standard_normal((batch, small_h))), on_device(rng.standard_normal((batch, small_h)))


def run(name):
    """Forward one step, backward L = sum(v_h * h') + sum(v_c * c'); returns outputs and gradients."""
    x, h, c = (on_device(a, requires_grad=True) for a in (x0, h0, c0))
    if name == "by hand":
        cell = fused_cell
        h_new, c_new = lstm_cell_by_hand(x, h, c, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    else:
        cell = fused_cell if name == "fused" else composed_cell
        h_new, c_new = cell(x, (h, c))
    cell.zero_grad()
    ((v_h * h_new).sum() + (v_c * c_new).sum()).backward()
    grads = [t.grad.numpy() for t in (x, h, c, cell.weight_ih, cell.weight_hh, cell.bias_ih)]
    return [h_new.numpy(), c_new.numpy()], grads


results = {name: run(name) for name in ("by hand", "composed", "fused")}
print(f"\none LSTM step, B = {batch}, D = {D}, H = {small_h}, float32: max |difference| from the code above")
print(f"{'implementation':<28} {'forward (h, c)':>15} {'gradients (x, h, c, W_ih, W_hh, b)':>36}")
for name in ("composed", "fused"):
    forward = max(np.abs(a - b).max() for a, b in zip(results[name][0], results["by hand"][0]))
    backward = max(np.abs(a - b).max() for a, b in zip(results[name][1], results["by hand"][1]))
    print(f"nn.LSTMCell, {name:<15} {forward:>15.1e} {backward:>36.1e}")
print("(float32 keeps about 7 digits: differences near 1e-7 are rounding, in a different order of operations)")


# %% [markdown]
# ## 2. gradcheck of the cell, in float64
#
# Every input and weight nudged, one element at a time, both ways: 2 forward passes per element.

# %%
def cell_inputs():
    shapes = [(batch, D), (batch, small_h), (batch, small_h), (4 * small_h, D), (4 * small_h, small_h),
              (4 * small_h,), (4 * small_h,)]
    return [on_device(rng.standard_normal(s) * 0.5, np.float64, requires_grad=True) for s in shapes]


names = ["x", "h", "c", "w_ih", "w_hh", "b_ih", "b_hh"]
inputs = cell_inputs()
elements = sum(t.numel() for t in inputs)
for label, fn in (
    ("lstm_cell_by_hand (autograd)", lstm_cell_by_hand),
    ("fused cell (hand-written backward)",
     lambda x, h, c, *w: minidl.lstm_cell(x, (h, c), *w, implementation="fused")),
):
    began = time.perf_counter()
    passed = gradcheck(fn, inputs, names=names)
    print(f"gradcheck {label:<35}: {passed}  ({elements} elements, {time.perf_counter() - began:.2f} s)")
print("The fused backward is NumpyRecurrent.lstm_backward in minidl/kernels/recurrent.py (lstm_backward in recurrent.cu on a GPU): the derivative")
print("written out by hand (dc = dc' + dh' o (1 - tanh(c')^2), di = dc g, df = dc c, ...).")


# %% [markdown]
# ## 3. Composed vs fused over a whole sequence
#
# 'composed' runs the step above T times: autograd records ~20 ops a step and walks them back.
# 'fused' (nn.LSTM's default) runs the whole loop inside one Function, forward and backward.

# %%
def seconds_per_call(fn, repeats):
    fn()  # warm up
    with common.Stopwatch(device) as watch:
        for _ in range(repeats):
            fn()
    return watch.seconds / repeats


x = on_device(rng.standard_normal((T, B, 2)))
lstms = {name: nn.LSTM(2, H, implementation=name).to(device) for name in ("composed", "fused")}
lstms["composed"].load_state_dict(lstms["fused"].state_dict())
print(f"\nnn.LSTM(2, {H}) over T = {T}, B = {B}: forward + backward of the sum of the outputs")
print(f"{'implementation':<15} {'autograd nodes':>15} {'time':>10}")
outputs, times = {}, {}
for name, lstm in lstms.items():
    output, _ = lstm(x)
    nodes = len(minidl.autograd.topological_order([output.sum().grad_fn]))
    outputs[name] = output.numpy()
    times[name] = seconds_per_call(lambda lstm=lstm: lstm(x)[0].sum().backward(), 2 if args.smoke else 5)
    print(f"{name:<15} {nodes:>15} {times[name] * 1e3:>8.1f} ms")
print(f"same outputs: max |composed - fused| = {np.abs(outputs['composed'] - outputs['fused']).max():.1e}")
print("Fusing saves the Python and autograd work of every step (and, on a GPU, kernel launches); the fused")
print("backward then gets each weight gradient from one large matmul over all T * B rows.")
if times["fused"] > times["composed"]:
    print("Here it was not faster: on a CPU busy with other processes, a multi-threaded BLAS can stall on those")
    print("large matmuls (try OPENBLAS_NUM_THREADS=1, or a quiet machine).")


# %% [markdown]
# ## 4. How far back does the gradient reach? $\|\partial L / \partial x_t\|$ at initialisation
#
# `x.grad[t]` $= \partial L / \partial x_t$ says how much the loss at the last step changes with the input at step $t$:
# the signal that training would use to learn a dependency on step $t$.

# %%
def marked_sign(rng, batch, length):
    """Lesson 07's task (minidl.datasets.marked_sign), as tensors on the device."""
    x, y = datasets.marked_sign(batch, length, window=10, seed=rng)
    return on_device(x), minidl.tensor(y, device=device)


class SignReader(nn.Module):
    """A recurrent layer over the sequence, then a linear layer on the last hidden state."""

    def __init__(self, kind, hidden, forget_bias=None):
        super().__init__()
        self.recurrent = nn.LSTM(2, hidden) if kind == "LSTM" else nn.RNN(2, hidden)
        self.head = nn.Linear(hidden, 2)
        if forget_bias is not None:  # rows H..2H of each bias are the forget gate's
            for bias in (self.recurrent.bias_ih_l0, self.recurrent.bias_hh_l0):
                bias.data[hidden:2 * hidden] = forget_bias / 2

    def forward(self, x):
        output, _ = self.recurrent(x)
        return self.head(output[-1])


def input_gradient_norms(model, x, y):
    """Mean over the batch of ||dL/dx_t||, t = 0 .. T-1."""
    x = x.detach().requires_grad_()
    F.cross_entropy(model(x), y).backward()
    return np.linalg.norm(x.grad.numpy(), axis=2).mean(axis=1)


fb = args.forget_bias
configurations = {"RNN": ("RNN", None), "LSTM (PyTorch init)": ("LSTM", None),
                  f"LSTM, forget bias {fb:g}": ("LSTM", fb)}
models = {name: SignReader(kind, H, bias).to(device) for name, (kind, bias) in configurations.items()}
start_weights = {name: model.state_dict() for name, model in models.items()}
x, y = marked_sign(rng, B, T)
at_init = {name: input_gradient_norms(model, x, y) for name, model in models.items()}
print(f"\n||dL/dx_t|| at initialisation, T = {T}, loss at the last step:")
print(f"{'model':<24} {'t = 0':>9} {f't = {T // 2}':>9} {f't = {T - 1}':>9} {'t=0 / t=T-1':>12}")
for name, n in at_init.items():
    print(f"{name:<24} {n[0]:>9.1e} {n[T // 2]:>9.1e} {n[-1]:>9.1e} {n[0] / n[-1]:>12.1e}")
f_default, f_biased = 1 / (1 + np.exp(0)), 1 / (1 + np.exp(-fb))
print(f"f = sigmoid(b_f) is about {f_default:.2f} at PyTorch's init and {f_biased:.2f} with b_f = {fb:g}: "
      f"over {T} steps the cell keeps {f_default ** T:.0e} vs {f_biased ** T:.0e} of what was written at step 0.")

# With the forget bias, is the gradient at t = 0 smaller than at t = T-1, as the cell's f**(T-1) would say?
# Two paths carry it back: along the cell (times f, a step) and from c_t through h_t and W_hh into the
# next step's gates. Setting W_hh = 0 leaves only the first. Shuffling the labels asks whether the task
# matters (at initialisation nothing about the mark is stored yet). Fresh initialisations show the spread.
# (Own random numbers, so that the training below sees the same data with or without this probe.)
probe_rng = np.random.default_rng(args.seed + 1)
biased = f"LSTM, forget bias {fb:g}"


def end_ratio(norms):
    return norms[0] / norms[-1]


no_recurrence = SignReader("LSTM", H, fb).to(device)
no_recurrence.load_state_dict(start_weights[biased])
no_recurrence.recurrent.weight_hh_l0.data[:] = 0
ratio = end_ratio(at_init[biased])
ratio_cell_only = end_ratio(input_gradient_norms(no_recurrence, x, y))
shuffled = minidl.tensor(probe_rng.permutation(y.numpy()), device=device)
ratio_shuffled = end_ratio(input_gradient_norms(models[biased], x, shuffled))
ratios_fresh = [end_ratio(input_gradient_norms(SignReader("LSTM", H, fb).to(device), x, y)) for _ in range(5)]
print(f"\n{biased}: ||dL/dx_0|| / ||dL/dx_{T - 1}|| = {ratio:.2f}. Along the cell alone it would shrink by "
      f"about f a step,")
print(f"f^{T - 1} = {f_biased ** (T - 1):.2f}; with W_hh = 0 (only that path left) it is {ratio_cell_only:.2f}, "
      f"{ratio_cell_only ** (1 / (T - 1)):.3f} a step. The path from c_t")
print(f"through h_t and W_hh into the next step's gates adds to it every step back: {ratio ** (1 / (T - 1)):.3f} "
      "a step with it" + (", so here" if ratio > 1 else "."))
if ratio > 1:
    print("the gradient grows going back, like lesson 07's RNN with g > 1, only far more slowly.")
print(f"It is not the task: with the labels shuffled the ratio is {ratio_shuffled:.2f}. Five fresh initialisations "
      f"give {min(ratios_fresh):.2f} to {max(ratios_fresh):.2f}:")
print(f"larger or smaller, within a few times 1, where the RNN's is {end_ratio(at_init['RNN']):.0e}: "
      "the loss can hear the first steps.")


# %% [markdown]
# ## 5. Train all three on the task, at the length where the RNN failed

# %%
def accuracy(model, x, y):
    with minidl.no_grad():
        return float((model(x).argmax(axis=1) == y).numpy().mean())


def train(model, steps):
    """Adam on fresh batches, as in lesson 07; returns the training loss of every step."""
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        x, y = marked_sign(rng, B, T)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        losses.append(loss.item())
    return losses


test_x, test_y = marked_sign(np.random.default_rng(1000 + T), 2000, T)
curves, test_accuracy = {}, {}
print(f"\nremember the marked sign, T = {T}: {args.steps} Adam steps of {B} fresh sequences, tested on 2000 new ones")
print(f"{'model':<24} {'parameters':>10} {'test accuracy':>14} {'last loss (mean of 50)':>23} {'time':>7}")
for name, model in models.items():
    model.load_state_dict(start_weights[name])
    with common.Stopwatch(device) as watch:
        losses = train(model, args.steps)
    test_accuracy[name] = accuracy(model, test_x, test_y)
    curves[name] = common.smooth(losses)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"{name:<24} {parameters:>10} {test_accuracy[name]:>14.1%} {np.mean(losses[-50:]):>23.3f} "
          f"{watch.seconds:>6.1f}s")
path = plot.lines(curves, out / "training_loss.png", xlabel="training step", ylabel="cross-entropy (running mean)",
                  title=f"'Remember the marked sign', T = {T}")
print(f"saved {common.show(path)}")

# What did the LSTM learn? Read its cells and gates on the test set, lined up at each marked step.
def cells_and_gates(lstm, x):
    """Cell state, input gate and forget gate of a trained nn.LSTM at every step, each (T, B, H)."""
    w_ih, w_hh, b_ih, b_hh = lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0
    h = c = minidl.zeros(x.shape[1], H, device=device)
    cells, inputs, forgets = [], [], []
    with minidl.no_grad():
        for t in range(x.shape[0]):
            a = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # section 1's equations, gates kept this time
            inputs.append(minidl.sigmoid(a[:, :H]).numpy())
            forgets.append(minidl.sigmoid(a[:, H:2 * H]).numpy())
            h, c = lstm_cell_by_hand(x[t], h, c, w_ih, w_hh, b_ih, b_hh)
            cells.append(c.numpy())
    return np.stack(cells), np.stack(inputs), np.stack(forgets)


lstm_name = f"LSTM, forget bias {fb:g}"
cells, input_gate, forget_gate = cells_and_gates(models[lstm_name].recurrent, test_x)
label_sign = 2.0 * test_y.numpy() - 1  # +1 or -1: the flagged value
correlation = np.array([np.corrcoef(cells[-1][:, u], label_sign)[0, 1] for u in range(H)])
correlation = np.nan_to_num(correlation)  # a unit whose cell never varies
unit = int(np.argmax(np.abs(correlation)))  # the cell that best tells the answer at the last step
stored = np.sign(correlation[unit]) * label_sign * cells[:, :, unit]  # > 0 where the cell agrees with the label
flagged = test_x.numpy()[:, :, 1].argmax(axis=0)  # the marked step of each test sequence
since_mark = np.arange(T)[:, None] - flagged[None, :]  # (T, batch)
offsets = np.arange(-min(5, T - 1), T - 10)  # every test sequence has a step at these offsets but the first few


def mean_at(values, k):
    return values[since_mark == k].mean(axis=0)


kept = forget_gate[:, :, unit][since_mark > 0].mean()
print(f"\n{lstm_name}, trained: at the last step, {int((np.abs(correlation) > 0.9).sum())} of {H} cells tell the "
      f"label (|correlation with +-1| > 0.9); the best is unit {unit} ({correlation[unit]:+.3f}).")
print(f"Its cell, signed by the label (> 0: agrees): {mean_at(stored, -1):+.2f} the step before the mark, "
      f"{mean_at(stored, 0):+.2f} at it, {mean_at(stored, 1):+.2f} one step after, {mean_at(stored, offsets[-1]):+.2f} "
      f"{offsets[-1]} steps after.")
print(f"Its input gate is {mean_at(input_gate[:, :, unit], 0):.2f} at the mark and "
      f"{input_gate[:, :, unit][since_mark > 0].mean():.2f} after it; its forget gate {kept:.3f} after it "
      f"(a memory of 1 / (1 - f) = {1 / (1 - kept):.0f} steps; {1 / (1 - f_biased):.0f} at init).")
if mean_at(stored, offsets[-1]) > 2 * mean_at(stored, 1) > 0:
    print("The stored value keeps growing after the mark, although every later input is noise that says nothing")
    print("about the label: those later writes can depend on the label only through h, so the cells refresh one")
    print("another, and the flagged sign becomes a state the network stays in.")

fig = Figure(figsize=(11, 4.2))
left, right = fig.subplots(1, 2)
for name, n in at_init.items():
    left.semilogy(np.arange(T), n, marker=".", label=name)
left.set_xlabel("time step t (the loss is computed at the last step)")
left.set_ylabel("||dL/dx_t||  (log scale)")
left.set_title("At initialisation: how much the loss hears of step t")
left.grid(True, which="major", alpha=0.3)
left.legend(fontsize=8)
for gate, label in ((input_gate, "input gate i"), (forget_gate, "forget gate f")):
    right.plot(offsets, [mean_at(gate[:, :, unit], k) for k in offsets], marker=".", label=label)
right.axvline(0, color="gray", linestyle=":")
right.set_ylim(-0.02, 1.02)
right.set_xlabel("steps since the marked step")
right.set_ylabel("gate value (mean over test sequences)")
right.legend(fontsize=8, loc="center left")
cell_axis = right.twinx()
cell_axis.plot(offsets, [mean_at(stored, k) for k in offsets], color="black", marker="x", label="cell c, x label sign")
cell_axis.set_ylabel("cell value, signed by the label")
cell_axis.legend(fontsize=8, loc="lower right")
right.set_title(f"After training: LSTM unit {unit}, around the marked step")
fig.tight_layout()
fig.savefig(out / "lstm_gradients_and_cells.png", dpi=120)
print(f"saved {common.show(out / 'lstm_gradients_and_cells.png')}")

solved = [name for name, a in test_accuracy.items() if a > 0.9]
print(f"\nsolved (test accuracy > 90 %) at T = {T}: {solved or 'none'}; "
      f"not solved: {[n for n in test_accuracy if n not in solved] or 'none'}")
print("The cell is written through the input gate and kept through the forget gate, both chosen by the network")
print("at every step; the RNN's state has no such path. Without the forget bias the LSTM starts nearly as forgetful")
print(f"as the RNN and its first gradients are nearly as small (t=0 / t=T-1 at init: "
      f"{end_ratio(at_init['LSTM (PyTorch init)']):.0e}, the RNN's {end_ratio(at_init['RNN']):.0e}):")
print("the gates are learnable, but the start decides whether they get learned.")

# %% [markdown]
# ## Measurements for the results table

# %%
common.synchronize(device)
summary = ", ".join(f"{n}: {a:.1%}" for n, a in test_accuracy.items())
print(f"\nlesson 08 | T = {T} test accuracy {summary} | wall time {time.perf_counter() - lesson_start:.1f} s | "
      f"peak memory {common.peak_memory(device)} | device {device}")
