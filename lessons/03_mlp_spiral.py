# %% [markdown]
# # Lesson 03: a multi-layer perceptron on the spiral set, and three ways to descend.
#
# Three arms of points wind around the centre, one arm per class. No straight line
# separates them, so a linear classifier gets far fewer of them right than a network does
# (it prints its training accuracy next to chance, 1/3, and the networks'); two hidden
# layers of ReLU units bend the decision boundary around the arms. This lesson measures:
#
# 1. softmax cross-entropy written out by hand against `F.cross_entropy`, value and
#    gradient ((softmax - onehot) / N, the gradient every classifier starts from);
# 2. a linear classifier (no hidden layer) as the baseline it beats;
# 3. the same network from the same initial weights trained three times, with plain SGD,
#    SGD with momentum and Adam: their loss curves in one plot, their accuracies;
# 4. the decision boundary each one learned (the class it predicts at every point of the
#    plane), with the training points on top.
#
# The goal: more than 95 % training accuracy. Training accuracy is all we ask here: the
# spiral is a toy for watching optimisation, not generalisation (that starts in lesson 05).
#
# Run:  python lessons/03_mlp_spiral.py [--device cuda] [--smoke] [--epochs N] [--out DIR]

# %% [markdown]
# ## Setup: arguments, device, output folder

# %%
import time
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure  # draws without a display

import common  # lessons/common.py: the flags and set-up every lesson shares
import minidl
import minidl.nn as nn
import minidl.nn.functional as F
from minidl import datasets, optim, plot
from minidl.data import ArrayDataset, DataLoader

flags = common.parser("Lesson 03: an MLP on the spiral set; SGD vs momentum vs Adam",
                  epochs=300, batch_size=32, out="runs/03_mlp_spiral")
flags.add_argument("--hidden", type=int, default=100, help="hidden units per layer (default: 100)")
args, _ = flags.parse_known_args()
if args.smoke:
    args.epochs = min(args.epochs, 5)
device = common.setup(args)  # seeds, checks the device, makes --out
out = Path(args.out)
lesson_start = time.perf_counter()

# %% [markdown]
# ## 1. The data: 3 spiral arms of 100 points (CS231n's toy set)

# %%
classes = 3
X, y = datasets.spiral(20 if args.smoke else 100, classes=classes, noise=0.2, seed=args.seed)
print(f"\nspiral: X {X.shape} {X.dtype}, y {y.shape} {y.dtype}, {classes} classes, "
      f"{np.bincount(y).tolist()} points per class")
inputs = minidl.tensor(X, device=device)  # the whole set, for measuring
targets = minidl.tensor(y, device=device)


# %% [markdown]
# ## 2. Softmax cross-entropy, written out
#
# A network gives each class a score (a "logit") $z_k$. Softmax turns scores into probabilities
# $$p_k = \frac{e^{z_k}}{\sum_j e^{z_j}}$$
# and the loss is the mean negative log-probability of the true class $t$:
# $$L = -\frac{1}{N} \sum_n \log p_{n, t_n} = \frac{1}{N} \sum_n \left(\operatorname{logsumexp}(z_n) - z_{n, t_n}\right).$$
# Its gradient is the simplest in deep learning: $\partial L / \partial z = (p - \operatorname{onehot}(t)) / N$.
# (logsumexp is computed as $m + \log \sum_j e^{z_j - m}$ with $m = \max_j z_j$: exp never overflows.)

# %%
def cross_entropy_by_hand(logits, onehot):
    shifted = logits - logits.amax(dim=1, keepdim=True).detach()  # the max only guards exp
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    picked = (log_probs * onehot).sum(dim=1)  # log p[n, t_n]: the onehot row keeps the true class
    return -picked.mean()


rng = np.random.default_rng(args.seed)
logits_np = rng.standard_normal((6, classes)) * 3
labels_np = rng.integers(0, classes, size=6)
logits = minidl.tensor(logits_np, dtype=np.float64, device=device, requires_grad=True)
labels = minidl.tensor(labels_np, device=device)
onehot = minidl.tensor(np.eye(classes)[labels_np], dtype=np.float64, device=device)
ours, theirs = cross_entropy_by_hand(logits, onehot), F.cross_entropy(logits, labels)
ours.backward()
grad_by_hand = logits.grad.numpy()
logits.grad = None
theirs.backward()
probs = np.exp(logits_np - logits_np.max(1, keepdims=True))
probs /= probs.sum(1, keepdims=True)
formula = (probs - np.eye(classes)[labels_np]) / len(labels_np)
print(f"\ncross-entropy of 6 random logit rows: by hand {ours.item():.10f}, F.cross_entropy {theirs.item():.10f}")
print(f"max |dL/dz by hand - dL/dz of F.cross_entropy| = {np.abs(grad_by_hand - logits.grad.numpy()).max():.1e}")
print(f"max |dL/dz - (softmax - onehot) / N|            = {np.abs(logits.grad.numpy() - formula).max():.1e}")
print(f"(uniform guessing scores log({classes}) = {np.log(classes):.4f}: about where training starts, "
      "as section 4 prints)")


# %% [markdown]
# ## 3. The models, and one training loop for every optimizer

# %%
def mlp():
    """2 -> hidden -> hidden -> 3, ReLU between: two hidden layers (section 4 prints the weight count)."""
    return nn.Sequential(
        nn.Linear(2, args.hidden), nn.ReLU(),
        nn.Linear(args.hidden, args.hidden), nn.ReLU(),
        nn.Linear(args.hidden, classes),
    ).to(device)


def accuracy(model):
    with minidl.no_grad():
        return float((model(inputs).argmax(dim=1) == targets).numpy().mean())


def train(model, optimizer, epochs):
    """Mini-batch training; returns the mean loss of each epoch. The batch order comes from
    a fixed seed, so every optimizer sees the same batches in the same order."""
    loader = DataLoader(ArrayDataset(X, y), batch_size=args.batch_size, shuffle=True,
                        device=device, generator=args.seed)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
        losses.append(total / len(y))
    return losses


# A linear classifier first: softmax regression straight on (x1, x2).
linear = nn.Linear(2, classes).to(device)
train(linear, optim.Adam(linear.parameters(), lr=1e-2), args.epochs)
linear_accuracy = accuracy(linear)
print(f"\nlinear classifier (no hidden layer), Adam, {args.epochs} epochs: "
      f"training accuracy {linear_accuracy:.1%} (chance: {1 / classes:.0%})")


# %% [markdown]
# ## 4. Same network, same start, three optimizers
#
# - SGD: $p \leftarrow p - \eta\, g$ (learning rate $\eta$, gradient $g$)
# - momentum: $b \leftarrow 0.9\, b + g$, $\;p \leftarrow p - \eta\, b$ (a ball rolling downhill: steady
#   directions add up, zig-zags cancel; the step along a steady direction grows to $\eta / (1 - 0.9) = 10\,\eta$)
# - Adam: $m, v \leftarrow$ running means of $g$ and $g^2$; $\;p \leftarrow p - \eta\, m / (\sqrt{v} + \epsilon)$
#   (each weight gets its own step size, about $\eta$ whatever the scale of its gradient)
# Each gets the learning rate that suits it (tuned by hand once, not searched per run).

# %%
reference = mlp()
start = reference.state_dict()  # the shared initial weights
with minidl.no_grad():
    initial_loss = F.cross_entropy(reference(inputs), targets).item()
weights = sum(p.numel() for p in reference.parameters())
print(f"\nMLP 2 -> {args.hidden} -> {args.hidden} -> {classes} (two hidden layers, ReLU): {weights:,} weights "
      f"for {len(y)} points; loss at the initial weights {initial_loss:.4f} (log({classes}) = {np.log(classes):.4f})")
optimizers = {
    "SGD (lr 0.1)": lambda params: optim.SGD(params, lr=0.1),
    "SGD + momentum 0.9 (lr 0.05)": lambda params: optim.SGD(params, lr=0.05, momentum=0.9),
    "Adam (lr 0.01)": lambda params: optim.Adam(params, lr=0.01),
}
histories, models = {}, {}
print(f"\n{'optimizer':<29} {'final loss':>10} {'train acc':>10} {'epochs to loss < 0.3':>21} {'time':>7}")
for name, make_optimizer in optimizers.items():
    model = mlp()
    model.load_state_dict(start)
    began = time.perf_counter()
    losses = train(model, make_optimizer(model.parameters()), args.epochs)
    seconds = time.perf_counter() - began
    histories[name], models[name] = losses, model
    below = next((str(i + 1) for i, v in enumerate(losses) if v < 0.3), "never")
    print(f"{name:<29} {losses[-1]:>10.4f} {accuracy(model):>10.1%} {below:>21} {seconds:>6.1f}s")

best_name = max(models, key=lambda n: accuracy(models[n]))
best_accuracy = accuracy(models[best_name])
verdict = "above" if best_accuracy > 0.95 else "NOT above"
print(f"\nbest: {best_name}, training accuracy {best_accuracy:.1%}: {verdict} the 95 % goal"
      + (" (a --smoke run trains only a few epochs)" if args.smoke else ""))
print("The race is the 'epochs to loss < 0.3' column: momentum adds up its steps along directions that stay\n"
      "steady, Adam gives every weight a step of about lr, and both cross it in fewer epochs than plain SGD\n"
      "here (the plot shows it).")

path = plot.lines(histories, out / "loss_curves.png", xlabel="epoch", ylabel="mean training loss (log scale)",
                  title="Spiral MLP: one start, three optimizers", logy=True)
print(f"saved {common.show(path)}")


# %% [markdown]
# ## 5. Decision boundaries: the class predicted at every point of the plane

# %%
def predicted_classes(model, grid_points):
    with minidl.no_grad():
        return model(minidl.tensor(grid_points, device=device)).argmax(dim=1).numpy()


steps = 60 if args.smoke else 300
low, high = X.min(axis=0) - 0.2, X.max(axis=0) + 0.2
gx, gy = np.meshgrid(np.linspace(low[0], high[0], steps), np.linspace(low[1], high[1], steps))
grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
panels = {"linear (Adam)": linear, **models}
# One colour per class, shared by the regions and the points: region k and the points of class k match.
class_colours = np.array(matplotlib.colormaps["Set2"].colors[:classes])
fig = Figure(figsize=(4.2 * len(panels), 4.2))
for ax, (name, model) in zip(fig.subplots(1, len(panels)), panels.items()):
    regions = predicted_classes(model, grid).reshape(gx.shape)
    ax.contourf(gx, gy, regions, levels=np.arange(classes + 1) - 0.5, colors=class_colours, alpha=0.5)
    ax.scatter(X[:, 0], X[:, 1], c=class_colours[y], edgecolors="black", linewidths=0.5, s=14)
    ax.set_title(f"{name}\ntraining accuracy {accuracy(model):.1%}", fontsize=9)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("Decision boundaries on the spiral set")
fig.tight_layout()
fig.savefig(out / "decision_boundaries.png", dpi=110)
print(f"saved {common.show(out / 'decision_boundaries.png')}")

# %% [markdown]
# ## Measurements for the results table

# %%
common.synchronize(device)
print(f"\nlesson 03 | best training accuracy {best_accuracy:.1%} ({best_name}) | wall time "
      f"{time.perf_counter() - lesson_start:.1f} s | peak memory {common.peak_memory(device)} | device {device}")
