# %% [markdown]
# # Lesson 07: a recurrent network, and backpropagation through time (BPTT).
#
# An RNN reads a sequence one step at a time and keeps a hidden state $h_t$,
#
# $$h_t = \tanh\left(x_t W_{ih}^\top + b_{ih} + h_{t-1} W_{hh}^\top + b_{hh}\right),$$
#
# so the same weights are applied $T$ times. Unrolled over $T$ steps it is a $T$-layer network
# whose layers share their weights, and backprop through that unrolled network is BPTT:
#
# $$\frac{\partial L}{\partial h_{t-1}} = \left(\frac{\partial L}{\partial h_t} \odot \left(1 - h_t^2\right)\right) W_{hh} \qquad \text{(one factor per step)}$$
#
# With the loss at the last step, $T - 1$, the gradient reaching step $t$ has been multiplied by
# $T - 1 - t$ such factors (none at $t = T - 1$, $T - 1$ at $t = 0$):
#
# $$\frac{\partial L}{\partial h_t} = \frac{\partial L}{\partial h_{T-1}} \left[\operatorname{diag}\left(1 - h_{T-1}^2\right) W_{hh}\right] \left[\operatorname{diag}\left(1 - h_{T-2}^2\right) W_{hh}\right] \cdots \left[\operatorname{diag}\left(1 - h_{t+1}^2\right) W_{hh}\right].$$
#
# When they are smaller than 1 it shrinks exponentially (vanishing gradients: the network cannot
# learn what happened long ago); larger than 1, it grows exponentially (exploding gradients).
#
# The task (the same in lesson 08), "remember the marked sign": a stream of random values
# $\pm 1$ and a second channel that flags one of the first 10 steps; after $T$ steps the
# network must say whether the flagged value was $+1$ or $-1$ (chance: 50 %). Everything after
# the flagged step is noise it must ignore, and the answer lies $T - 10$ to $T - 1$ steps before
# the end: the longer $T$, the longer the dependency. (Chosen over the classic "adding problem" because
# it is a classification with an accuracy to read, and fast to learn when learnable.)
#
# This lesson measures:
#
# 1. the task, and an RNN unrolled by hand with `nn.RNNCell` in a Python loop over time,
#    checked against `nn.RNN` (which fuses the whole loop into one op) with the same weights;
# 2. $\|\partial L / \partial h_t\|$ at every step of the unrolled RNN (`retain_grad` on each $h_t$), for
#    recurrent weights of growing size: vanishing and exploding gradients, on a log scale;
# 3. the same RNN trained on the task for growing $T$: it learns $T = 10$ and stays near chance
#    (50 %) at $T = 20$ and $T = 40$ within its 600 updates (at $T = 20$, seeds 0 to 4 all failed on
#    the 2-core build machine, 2026-12-06: run with --lengths 20 --seed N to try others);
# 4. truncated BPTT: detach $h$ every $k$ steps. The gradient stops at the cut (dependencies
#    longer than $k$ cannot be learned), but each update costs $k$ steps instead of $T$, so on a
#    long stream with a loss at every step it makes $T / k$ updates for about the compute of one.
#
# Choices: Adam (lr 1e-2) with gradient-norm clipping at 1 (clipping keeps a rare exploding
# step from throwing the weights away; Adam rescales each weight's step, but that does not
# rescue gradients this small: $T = 40$ stays at chance); 32 hidden units; fresh random sequences
# every step, so there is no overfitting to talk about; PyTorch's initialisation, $U(-1/\sqrt{H}, 1/\sqrt{H})$.
#
# Run:  python lessons/07_rnn_bptt.py [--device cuda] [--smoke] [--steps N] [--out DIR]

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
from minidl import datasets, optim, plot  # noqa: E402

p = common.parser("Lesson 07: an RNN, backprop through time, vanishing gradients, truncated BPTT",
                  batch_size=64, out="runs/07_rnn_bptt")
p.add_argument("--hidden", type=int, default=32, help="hidden units (default: 32)")
p.add_argument("--steps", type=int, default=600, help="training updates per sequence length (default: 600)")
p.add_argument("--lengths", default="10,20,40", help="sequence lengths T to train on (default: 10,20,40)")
p.add_argument("--truncate", type=int, default=25, help="k, the steps per truncated-BPTT chunk (default: 25)")
args, _ = p.parse_known_args()
lengths = [int(n) for n in args.lengths.split(",")]
if args.smoke:
    args.steps, lengths = min(args.steps, 20), [5, 10]
device = common.setup(args)  # seeds, checks the device, makes --out
out = Path(args.out)
rng = np.random.default_rng(args.seed)
lesson_start = time.perf_counter()
H, B = args.hidden, args.batch_size


# %% [markdown]
# ## 1. The task: remember the marked sign

# %%
def marked_sign(rng, batch, length):
    """The task as tensors on the device (minidl.datasets.marked_sign makes the arrays: read it)."""
    x, y = datasets.marked_sign(batch, length, window=10, seed=rng)
    return minidl.tensor(x, device=device), minidl.tensor(y, device=device)


x, y = marked_sign(rng, 2, 12)
print("\nremember the marked sign: two sequences of T = 12 (rows: value, mark)")
for b in range(2):
    print(f"  values {x.numpy()[:, b, 0].astype(int).tolist()}\n  marks  {x.numpy()[:, b, 1].astype(int).tolist()}"
          f"  -> label {y.numpy()[b]} ({'+1' if y.numpy()[b] else '-1'} was marked)")


# %% [markdown]
# ## 2. An RNN unrolled by hand, checked against nn.RNN
#
# The cell is one step; the loop over time is ours. Every $h_t$ stays in the graph, so
# loss.backward() walks back through all T steps: that walk IS backprop through time.

# %%
def unroll(cell, x, h=None, truncate=None):
    """Run ``cell`` over x (T, B, D); returns the list of hidden states [h_0 ... h_{T-1}].
    ``truncate=k``: cut the graph (h.detach()) before every k-th step: truncated BPTT."""
    states = []
    for t in range(x.shape[0]):
        if truncate and h is not None and t % truncate == 0:
            h = h.detach()  # same values, no history: gradients stop here
        h = cell(x[t], h)
        states.append(h)
    return states


T = 40 if not args.smoke else 10
cell = nn.RNNCell(2, H).to(device)
head = nn.Linear(H, 2).to(device)
x, y = marked_sign(rng, B, T)
loss = F.cross_entropy(head(unroll(cell, x)[-1]), y)
loss.backward()

rnn = nn.RNN(2, H).to(device)  # the same weights, under nn.RNN's names
rnn.load_state_dict({"weight_ih_l0": cell.weight_ih, "weight_hh_l0": cell.weight_hh,
                     "bias_ih_l0": cell.bias_ih, "bias_hh_l0": cell.bias_hh})
output, h_n = rnn(x)
fused_loss = F.cross_entropy(head(h_n[0]), y)
fused_loss.backward()
print(f"\nT = {T}: loss of the hand-unrolled RNNCell loop {loss.item():.7f}, of nn.RNN {fused_loss.item():.7f}")
print(f"max |dL/dW_hh (loop) - dL/dW_hh (nn.RNN)| = "
      f"{np.abs(cell.weight_hh.grad.numpy() - rnn.weight_hh_l0.grad.numpy()).max():.1e}")

print("nn.RNN runs the loop over time inside one op with a hand-written backward (minidl.ops.recurrent):")
print("autograd records one node instead of one per step. The training below uses it; lesson 08 times both.")


# %% [markdown]
# ## 3. $\|\partial L / \partial h_t\|$ over time: vanishing and exploding gradients
#
# retain_grad() asks backward to keep .grad on a non-leaf tensor (normally only leaves keep it).
# We set $W_{hh} \sim \mathcal{N}(0, g^2 / H)$: its spectral radius is then close to the gain $g$, and each step
# back multiplies the gradient by roughly $g \cdot \overline{\tanh'}$ (the mean of $\tanh'$), so $g < 1$ vanishes, $g > 1$ can explode.

# %%
def gradient_norms(cell, x, y, truncate=None):
    """Mean over the batch of ||dL/dh_t||, for t = 0 .. T-1 (0 where the graph was cut)."""
    states = unroll(cell, x, truncate=truncate)
    for h in states:
        if h.requires_grad:
            h.retain_grad()
    F.cross_entropy(head(states[-1]), y).backward()
    return np.array([0.0 if h.grad is None else np.linalg.norm(h.grad.numpy(), axis=1).mean() for h in states])


norms = {}
default_rho = np.abs(np.linalg.eigvals(cell.weight_hh.numpy().astype(np.float64))).max()
norms[f"PyTorch init U(-1/sqrt(H), 1/sqrt(H)), radius {default_rho:.2f}"] = gradient_norms(cell, x, y)
for gain in (0.5, 1.0, 2.0, 3.0):
    scaled = nn.RNNCell(2, H).to(device)
    scaled.weight_hh.data = minidl.tensor(gain * rng.standard_normal((H, H)) / np.sqrt(H), dtype=np.float32,
                                       device=device).data
    rho = np.abs(np.linalg.eigvals(scaled.weight_hh.numpy().astype(np.float64))).max()
    norms[f"W_hh ~ N(0, g^2/H), g = {gain}, radius {rho:.2f}"] = gradient_norms(scaled, x, y)

print(f"\n||dL/dh_t||, mean over the batch, loss at the last step t = {T - 1}:")
print(f"{'recurrent weights':<52} {'t = 0':>9} {f't = {T // 2}':>9} {f't = {T - 1}':>9} {'t=0 / t=T-1':>12}"
      f" {'per factor':>11}")
for name, n in norms.items():
    print(f"{name:<52} {n[0]:>9.1e} {n[T // 2]:>9.1e} {n[-1]:>9.1e} {n[0] / n[-1]:>12.1e}"
          f" {(n[0] / n[-1]) ** (1 / (T - 1)):>11.2f}")
print(f"(t = 0 is T - 1 = {T - 1} factors back from the loss; 'per factor': the ratio's {T - 1}th root, "
      "the mean change per step back)")
default = next(iter(norms.values()))
print(f"With PyTorch's initialisation the gradient reaching step 0 is {default[0] / default[-1]:.0e} times the one at")
print("the last step: what the loss says about the first steps is drowned by what it says about the recent ones.")

fig = Figure(figsize=(7, 4.3))
ax = fig.subplots()
for name, n in norms.items():
    ax.semilogy(np.arange(T), n, marker=".", label=name)
ax.set_xlabel("time step t (the loss is computed at the last step)")
ax.set_ylabel("||dL/dh_t||  (log scale)")
ax.set_title("Backprop through time: the gradient shrinks or grows by a factor per step")
ax.grid(True, which="major", alpha=0.3)
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(out / "gradient_norms_over_time.png", dpi=120)
print(f"saved {common.show(out / 'gradient_norms_over_time.png')}")


# %% [markdown]
# ## 4. Train the RNN on the task for growing T

# %%
class SignReader(nn.Module):
    """RNN over the sequence, then a linear layer on the last hidden state: 2 logits."""

    def __init__(self, hidden):
        super().__init__()
        self.rnn = nn.RNN(2, hidden)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x):
        _, h_n = self.rnn(x)
        return self.head(h_n[0])


def accuracy(model, x, y):
    with minidl.no_grad():
        return float((model(x).argmax(axis=1) == y).numpy().mean())


def train(model, length, steps):
    """Adam on fresh batches; returns the training loss of every step."""
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        x, y = marked_sign(rng, B, length)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        losses.append(loss.item())
    return losses


print(f"\nnn.RNN(2, {H}) + Linear({H}, 2), {args.steps} Adam steps of {B} fresh sequences, tested on 2000 new ones")
print(f"{'T':>4} {'test accuracy':>14} {'last loss (mean of 50)':>23} {'time':>7}")
curves, rnn_accuracy = {}, {}
for length in lengths:
    model = SignReader(H).to(device)
    with common.Stopwatch(device) as watch:
        losses = train(model, length, args.steps)
    rnn_accuracy[length] = accuracy(model, *marked_sign(np.random.default_rng(1000 + length), 2000, length))
    curves[f"T = {length}"] = common.smooth(losses)
    print(f"{length:>4} {rnn_accuracy[length]:>14.1%} {np.mean(losses[-50:]):>23.3f} {watch.seconds:>6.1f}s")
learned = [n for n, a in rnn_accuracy.items() if a > 0.9]
failed = [n for n in lengths if n not in learned]
print(f"learned (test accuracy > 90 %) at T = {learned or 'none'}; not at T = {failed or 'none'}.")
print("Where it fails, the loss stays near log 2 = 0.693 (chance): the gradient from the label barely reaches")
print("the flagged step, T - 10 or more steps back. Lesson 08 trains an LSTM on the same task.")
path = plot.lines(curves, out / "rnn_training_loss.png", xlabel="training step", ylabel="cross-entropy (running mean)",
                  title="A plain RNN on 'remember the marked sign'")
print(f"saved {common.show(path)}")


# %% [markdown]
# ## 5. Truncated BPTT: cut the graph every k steps
#
# (a) What it does to the gradient: with a cut before every $k$-th step, $\partial L / \partial h_t$ is exactly 0
#     before the last cut. The loss here is at the last step, so only the last chunk learns.

# %%
k = T // 4  # 10 for T = 40: three cuts
full, truncated = gradient_norms(cell, x, y), gradient_norms(cell, x, y, truncate=k)
last_cut = (T - 1) // k * k
print(f"\ntruncated BPTT, k = {k}, T = {T}: dL/dh_t is non-zero for t >= {int(np.flatnonzero(truncated)[0])} only "
      f"(the last cut is before step {last_cut}); where it is non-zero it equals full BPTT's: "
      f"max difference {np.abs(full - truncated)[last_cut:].max():.1e}")
print(f"So a dependency longer than k = {k} steps can never be learned with it.")

fig = Figure(figsize=(7, 4))
ax = fig.subplots()
ax.semilogy(np.arange(T), full, marker=".", label="full BPTT")
ax.semilogy(np.arange(T)[truncated > 0], truncated[truncated > 0], marker="x", linestyle="--",
            label=f"truncated, k = {k} (zero before the cut)")
for cut in range(k, T, k):
    ax.axvline(cut - 0.5, color="gray", linewidth=0.8, linestyle=":")
ax.set_xlabel("time step t")
ax.set_ylabel("||dL/dh_t||  (log scale)")
ax.set_title("Truncated BPTT: the gradient stops at the last detach")
ax.grid(True, which="major", alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out / "truncated_bptt_gradients.png", dpi=120)
print(f"saved {common.show(out / 'truncated_bptt_gradients.png')}")

# (b) What it is for: a long stream with a loss at every step. Predict the next value of a
#     sine wave (each sequence its own frequency and phase; a few steps tell which).
#     Full BPTT: one update per pass over the stream, its backward through all L steps.
#     Truncated: the stream in chunks of k; the hidden state is carried from chunk to chunk
#     (detached), so the forward still sees the whole past, and there are L / k updates per
#     pass for the same compute. The price: no gradient across chunk borders.
stream_length, passes = (60, 3) if args.smoke else (500, 30)
k = min(args.truncate, stream_length)
train_x, train_y = datasets.sine_waves(B, stream_length, task="next", seed=args.seed)
test_x, test_y = datasets.sine_waves(256, stream_length, task="next", seed=args.seed + 1)
time_major = [minidl.tensor(a.transpose(1, 0, 2), device=device) for a in (train_x, train_y, test_x, test_y)]
train_x, train_y, test_x, test_y = time_major


class NextValue(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.rnn = nn.RNN(1, hidden)
        self.readout = nn.Linear(hidden, 1)

    def forward(self, x, h=None):
        output, h_n = self.rnn(x, h)
        return self.readout(output), h_n


def train_stream(model, chunk):
    """``passes`` passes over the stream, one Adam step per chunk of ``chunk`` steps."""
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    test_losses = []
    for _ in range(passes):
        h = None
        for start in range(0, stream_length, chunk):
            prediction, h = model(train_x[start:start + chunk], h)
            h = h.detach()  # carry the state, cut the graph
            loss = F.mse_loss(prediction, train_y[start:start + chunk])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
        with minidl.no_grad():
            test_losses.append(F.mse_loss(model(test_x)[0], test_y).item())
    return test_losses


start_weights = NextValue(H).to(device).state_dict()
stream_curves = {}
print(f"\nnext value of {B} sine streams of {stream_length} steps, {passes} passes, test on 256 new streams:")
print(f"{'method':<22} {'updates':>8} {'test MSE':>9} {'time':>7}")
for name, chunk in ((f"full BPTT (k = {stream_length})", stream_length), (f"truncated, k = {k}", k)):
    model = NextValue(H).to(device)
    model.load_state_dict(start_weights)
    with common.Stopwatch(device) as watch:
        stream_curves[name] = train_stream(model, chunk)
    updates = passes * -(-stream_length // chunk)
    print(f"{name:<22} {updates:>8} {stream_curves[name][-1]:>9.5f} {watch.seconds:>6.1f}s")
full_mse, truncated_mse = (curve[-1] for curve in stream_curves.values())
print(f"Both compute every step of the stream once per pass; truncated BPTT turns that into {-(-stream_length // k)}x "
      f"as many updates\n(each with its own optimizer step: see the time column). Test MSE after {passes} passes: "
      f"full {full_mse:.5f}, truncated {truncated_mse:.5f}.")
print("The hidden state still carries the whole past forward; only the gradient is cut.")
print(f"(predicting 'no change', y_t = x_t, scores {F.mse_loss(test_x, test_y).item():.5f})")
path = plot.lines(stream_curves, out / "truncated_bptt_sine.png", xlabel="pass over the stream",
                  ylabel="test MSE (log scale)", title="Next-value prediction: full vs truncated BPTT", logy=True)
print(f"saved {common.show(path)}")

# %% [markdown]
# ## Measurements for the results table

# %%
common.synchronize(device)
summary = ", ".join(f"T={n}: {a:.1%}" for n, a in rnn_accuracy.items())
print(f"\nlesson 07 | RNN test accuracy {summary} | wall time {time.perf_counter() - lesson_start:.1f} s | "
      f"peak memory {common.peak_memory(device)} | device {device}")
