# %% [markdown]
# # Lesson 12: initialisation, and the statistics of activations and gradients layer by layer.
#
# A deep network multiplies its input by one weight matrix after another. If each layer
# scales the signal by a factor a little below 1, ten layers scale it by that factor to the
# tenth power, and the last layers see (almost) nothing; a little above 1 and a tanh
# saturates at $\pm 1$, where its slope, and so every gradient through it, is 0. Which factor
# a layer gets is decided by how its weights are drawn: the initialisation.
#
# The variance argument. A unit of a linear layer computes $y = \sum_i w_i x_i$ over $n_\text{in}$
# inputs. With the $w_i$ independent of the $x_i$ and of each other, mean 0, variance $\mathrm{Var}(w)$:
#
# $$\mathrm{Var}(y) = \sum_i \mathrm{Var}(w_i x_i) = n_\text{in}\, \mathrm{Var}(w)\, E[x^2]$$
#
# ($\mathrm{Var}(w x) = E[w^2]\, E[x^2] - (E[w]\, E[x])^2 = \mathrm{Var}(w)\, E[x^2]$ since $E[w] = 0$.) So the signal
# keeps its size from layer to layer when $n_\text{in}\, \mathrm{Var}(w)\, E[x^2] = \mathrm{Var}(\text{previous } y)$:
#
# * tanh is the identity near 0 (slope 1), so while the signal is small $E[x^2] = \mathrm{Var}(y)$ (of
#   the layer before), and $\mathrm{Var}(w) = 1 / n_\text{in}$ keeps it (Xavier/Glorot takes
#   $\mathrm{Var}(w) = 2 / (n_\text{in} + n_\text{out})$, the same for a square layer, a compromise with the backward pass,
#   whose variance goes with $n_\text{out}$; PyTorch's gain for tanh, $5/3$, pushes back against the
#   squashing of tanh away from 0).
# * ReLU zeroes the negative half of a symmetric $y$: $E[\mathrm{relu}(y)^2] = \mathrm{Var}(y) / 2$. To keep
#   $\mathrm{Var}(y)$ steady, $n_\text{in}\, \mathrm{Var}(w) / 2 = 1$, so $\mathrm{Var}(w) = 2 / n_\text{in}$: Kaiming/He initialisation
#   (`kaiming_normal_(w, nonlinearity="relu")`: $\mathrm{std} = \sqrt{2 / n_\text{in}}$). Xavier with ReLU
#   ($\mathrm{Var}(w) = 1 / n_\text{in}$ for a square layer) halves $E[x^2]$ at every layer.
#
# The backward pass obeys the same rule with $n_\text{out}$ in place of $n_\text{in}$
# ($\partial L / \partial x = W^\top\, \partial L / \partial y$), times the slope of the nonlinearity:
# a tanh stuck at $\pm 1$ passes no gradient back.
#
# This lesson builds one deep MLP (3072 -> 256 -> ... -> 256 -> 10: ten hidden layers of
# 256 units) on CIFAR-10 images, flattened and normalised per channel, and records, with
# module hooks, the output of every nonlinearity (`register_forward_hook`) and the
# gradient of the loss with respect to it (`register_full_backward_hook`) on one batch:
#
# 1. tanh with too-small weights (std $0.5 / \sqrt{n_\text{in}}$): activations collapse towards 0,
#    and so do the gradients;
# 2. tanh with too-large weights (std $3 / \sqrt{n_\text{in}}$): saturation, the fraction of
#    $|a| > 0.99$ per layer;
# 3. tanh with Xavier (gain 1 and PyTorch's gain $5/3$ for tanh);
# 4. ReLU with Xavier (the std shrinks layer by layer) vs ReLU with Kaiming (kept);
# 5. dead ReLUs: units that are never active on the batch, from a bias of -1 at
#    initialisation, and from one SGD step with a far too large learning rate;
# 6. batch norm after every linear layer, with the bad initialisations of 1 and 2: the
#    per-layer statistics are restored, because batch norm rescales every unit to mean 0
#    and std 1 over the batch, whatever the weights before it did.
#
# It prints per-layer tables of activation std and gradient std, saves histograms of every
# layer and the std-vs-depth curves, and finishes with a short training race (the same
# steps for every initialisation) to show what the statistics mean for learning.
#
# What it measured (full run on the CPU of a 2-core build machine, one BLAS thread, 58 s;
# 99 s under heavier load; batch of 512 random training images, seed 0):
#
# * tanh, too small: the activation std halves at every layer (0.495 per layer: 0.41 at
#   layer 1, 7e-4 at layer 10) and $\partial L / \partial a$ halves going back (5.9e-5 at layer 10, 1.1e-7 at
#   layer 1); after 300 SGD steps the loss is still 2.299 (chance: $\log 10 = 2.303$).
# * tanh, too large: 28-35 % of the activations in every layer have $|a| > 0.99$, where the
#   slope $1 - a^2$ is below 0.02 and almost no gradient passes back. ($\partial L / \partial a$ as a whole still
#   grows 16x from layer 10 back to layer 1: $W^\top$ multiplies it by about 3 per layer, more
#   than the flattened tanh takes away.) The loss over the first 20 steps averages 3.77,
#   above chance: confident, wrong outputs.
# * tanh, Xavier (gain 1): std 0.69 at layer 1 down to 0.23 at layer 10; with gain $5/3$ it
#   settles at 0.65, about 1.5 % saturated (layer 1, with 3072 inputs, gets 5.8 % and 22 %:
#   Xavier's $2 / (n_\text{in} + n_\text{out})$ is larger than $1 / n_\text{in}$ when $n_\text{out} < n_\text{in}$).
# * ReLU: Xavier loses 0.709 of the std per layer ($1/\sqrt{2} = 0.707$), 0.81 down to 0.038;
#   Kaiming keeps 0.80-0.92 in every layer (1.013 per layer) and $\partial L / \partial a$ flat at 1.8-2.0e-4.
# * dead ReLUs: with a bias of -1, 24 % of layer 3's units, 93 % of layer 4's and all of
#   layers 5-10 never fire on the batch, and no gradient reaches layers 1-9. Kaiming at
#   initialisation already has up to 13 % in the deeper layers; one SGD step at lr 0.3
#   raises that to 23-42 % in layers 5-10.
# * batch norm: std 0.62-0.64 in every layer for both bad initialisations, the two tables
#   equal to 1.7e-5.
# * the race (training loss over the last 20 of 300 steps, test accuracy on 2,000 images):
#   too small 2.299 / 10.8 %, too large 2.073 / 24.7 %; tanh Xavier 1.320 / 40.3 %, gain $5/3$
#   1.297 / 34.5 %; ReLU Xavier 1.464 / 41.2 %, Kaiming 1.426 / 41.0 %; batch norm after the
#   too-small init 1.519 / 41.2 %, after the too-large one 1.226 / 35.5 %. The two bad
#   initialisations are the ones that fall behind; batch norm rescues both. Between the
#   good ones, at this depth and in 300 steps, the differences are small and not one-sided
#   (lower training loss does not mean higher test accuracy here).
#
# Run:  python lessons/12_initialisation.py [--device cuda] [--smoke] [--steps N] [--out DIR]

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
import minidl.nn.init as init
from minidl import optim

flags = common.parser("Lesson 12: initialisation and the statistics of activations and gradients",
                      batch_size=128, out="runs/12_initialisation")
flags.add_argument("--depth", type=int, default=10, help="hidden layers (default: 10)")
flags.add_argument("--width", type=int, default=256, help="units per hidden layer (default: 256)")
flags.add_argument("--steps", type=int, default=300, help="SGD steps in the training race (default: 300)")
flags.add_argument("--big-lr", type=float, default=0.3,
                   help="the far too large learning rate of section 5 (default: 0.3)")
args, _ = flags.parse_known_args()
if args.smoke:
    args.steps = min(args.steps, 5)
device = common.setup(args)  # seeds, checks the device, makes --out
out = Path(args.out)
lesson_start = time.perf_counter()

# %% [markdown]
# ## 1. The data: CIFAR-10 images as vectors of 3 * 32 * 32 = 3072 numbers

# %%
# Normalised per colour channel with the training images' mean and std, so the input has
# E[x^2] = 1 per channel: the first layer starts from the same footing as the others.
train_x, train_y, test_x, test_y, classes = common.cifar10(
    args, train_size=1024 if args.smoke else 10_000, test_size=256 if args.smoke else 2_000)
mean = train_x.mean(axis=(0, 2, 3), keepdims=True)
std = train_x.std(axis=(0, 2, 3), keepdims=True)


def to_vectors(images):
    return ((images - mean) / std).reshape(len(images), -1).astype(np.float32)


train_x, test_x = to_vectors(train_x), to_vectors(test_x)
measure_n = 512  # the batch every statistic below is measured on: 512 images drawn at random
shuffled = np.random.default_rng(args.seed).permutation(len(train_x))  # (the files are sorted by class)
batch_x = minidl.tensor(train_x[shuffled[:measure_n]], device=device)
batch_y = minidl.tensor(train_y[shuffled[:measure_n]], device=device)
print(f"inputs: {train_x.shape[1]} numbers per image, mean {train_x.mean():.3f}, std {train_x.std():.3f}; "
      f"statistics measured on a batch of {measure_n}")


# %% [markdown]
# ## 2. The network, and the initialisations

# %%
def make_mlp(activation: str, weight_init, bias: float = 0.0, batch_norm: bool = False):
    """3072 -> width (x depth) -> 10, `activation` after every hidden Linear (and BatchNorm1d
    before it, if asked). `weight_init(w)` fills every Linear weight; biases are set to `bias`."""
    layers, n_in = [], train_x.shape[1]
    for _ in range(args.depth):
        linear = nn.Linear(n_in, args.width)
        weight_init(linear.weight)
        init.constant_(linear.bias, bias)
        layers += [linear, nn.BatchNorm1d(args.width)] if batch_norm else [linear]
        layers.append(nn.Tanh() if activation == "tanh" else nn.ReLU())
        n_in = args.width
    head = nn.Linear(n_in, len(classes))
    weight_init(head.weight)
    init.zeros_(head.bias)
    return nn.Sequential(*layers, head).to(device)


def scaled_normal(c):
    """w ~ N(0, (c / sqrt(n_in))^2): c = 1 keeps the variance of a linear layer (Var(w) = 1 / n_in)."""
    return lambda w: init.normal_(w, 0.0, c / np.sqrt(w.shape[1]))


tanh_gain = init.calculate_gain("tanh")  # 5/3
settings = {  # name: (activation, weight init, bias, batch norm)
    "tanh, N(0, 0.5^2/n_in): too small": ("tanh", scaled_normal(0.5), 0.0, False),
    "tanh, N(0, 3^2/n_in): too large": ("tanh", scaled_normal(3.0), 0.0, False),
    "tanh, Xavier uniform": ("tanh", init.xavier_uniform_, 0.0, False),
    "tanh, Xavier uniform, gain 5/3": ("tanh", lambda w: init.xavier_uniform_(w, gain=tanh_gain), 0.0, False),
    "ReLU, Xavier uniform": ("relu", init.xavier_uniform_, 0.0, False),
    "ReLU, Kaiming normal": ("relu", lambda w: init.kaiming_normal_(w, nonlinearity="relu"), 0.0, False),
    "ReLU, Kaiming normal, bias -1": ("relu", lambda w: init.kaiming_normal_(w, nonlinearity="relu"), -1.0, False),
    "tanh, too small + batch norm": ("tanh", scaled_normal(0.5), 0.0, True),
    "tanh, too large + batch norm": ("tanh", scaled_normal(3.0), 0.0, True),
}


# %% [markdown]
# ## 3. Hooks: what every nonlinearity outputs, and the gradient that comes back to it

# %%
def measure(model, x=batch_x, y=batch_y):
    """One forward and backward pass on a batch (the measuring batch unless told). Returns, per hidden layer, the
    activation a (output of its nonlinearity) and dL/da, as tensors on the device.

    A forward hook `hook(module, args, output)` sees each output; a full backward hook
    `hook(module, grad_input, grad_output)` sees grad_output[0] = dL/da. Both are removed
    through their handles at the end, so the model is left as it was."""
    acts, grads, handles = {}, {}, []
    nonlinear = [m for m in model.modules() if isinstance(m, (nn.Tanh, nn.ReLU))]
    for depth, module in enumerate(nonlinear):
        def keep_output(module, inputs, output, depth=depth):
            acts[depth] = output.detach()

        def keep_grad(module, grad_input, grad_output, depth=depth):
            grads[depth] = grad_output[0].detach()

        handles.append(module.register_forward_hook(keep_output))
        handles.append(module.register_full_backward_hook(keep_grad))
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for handle in handles:
        handle.remove()
    return [acts[d] for d in range(len(nonlinear))], [grads[d] for d in range(len(nonlinear))]


def layer_stats(acts, grads):
    """Per layer: activation std, gradient std, fraction |a| > 0.99, fraction of units never > 0."""
    rows = []
    for a, g in zip(acts, grads):
        saturated = (a.abs() > 0.99).float().mean()
        dead = 1 - (a > 0).float().amax(dim=0).mean()  # a unit is dead if it is 0 for every sample
        rows.append((a.std().item(), g.std().item(), saturated.item(), dead.item()))
    return np.array(rows)


def print_table(name, stats):
    print(f"\n{name}")
    print("  layer       " + "".join(f"{k + 1:>9}" for k in range(len(stats))))
    print("  act std     " + "".join(f"{v:>9.3g}" for v in stats[:, 0]))
    print("  grad std    " + "".join(f"{v:>9.1e}" for v in stats[:, 1]))
    if "tanh" in name:
        print("  |a| > 0.99  " + "".join(f"{v:>9.1%}" for v in stats[:, 2]))
    else:
        print("  dead units  " + "".join(f"{v:>9.1%}" for v in stats[:, 3]))


# %% [markdown]
# ## 4. Every setting, measured on the same batch

# %%
# The gradient std is that of dL/da for a loss averaged over the 512 samples of the batch:
# compare it between layers (and settings), not with the activations.
results, histograms = {}, {}
for name, (activation, weight_init, bias, batch_norm) in settings.items():
    minidl.manual_seed(args.seed)
    model = make_mlp(activation, weight_init, bias, batch_norm)
    acts, grads = measure(model)
    results[name] = layer_stats(acts, grads)
    histograms[name] = ([a.numpy().ravel() for a in acts], [g.numpy().ravel() for g in grads])
    print_table(name, results[name])



# What the derivation predicts, against the tables. From hidden layer 2 on, every layer is a
# square 256 x 256, so the factor per layer is the same: (std at layer L / std at layer 2)^(1/(L-2)).
def per_layer_factor(name, column):
    column = results[name][:, column]
    return (column[-1] / column[1]) ** (1 / (len(column) - 2))


print("\nper-layer factor of the std, from layer 2 to layer", args.depth, "(what the variance argument predicts):")
print(f"  tanh, too small, activations: {per_layer_factor(list(settings)[0], 0):.3f} per layer "
      "(0.5: tanh is the identity near 0, so each layer multiplies the std by c = 0.5)")
print(f"  tanh, too small, dL/da:       {1 / per_layer_factor(list(settings)[0], 1):.3f} per layer going back "
      "(0.5: the backward pass multiplies by W^T, std c / sqrt(n_in) times sqrt(n_out))")
print(f"  ReLU, Xavier, activations:    {per_layer_factor('ReLU, Xavier uniform', 0):.3f} per layer "
      f"(1/sqrt(2) = {1 / np.sqrt(2):.3f}: n_in Var(w) = 1 and ReLU keeps half of E[y^2])")
print(f"  ReLU, Kaiming, activations:   {per_layer_factor('ReLU, Kaiming normal', 0):.3f} per layer "
      "(1: n_in Var(w) = 2 makes up for the half)")
# (Their dL/da rows differ: the last Linear layer has no batch norm after it, and in the
# second network its weights are 6x larger.)
bn_small, bn_large = results["tanh, too small + batch norm"], results["tanh, too large + batch norm"]
print(f"  the two batch-norm networks: activation std differs by at most "
      f"{np.abs(bn_small[:, 0] - bn_large[:, 0]).max():.1e} "
      "(batch norm divides out the scale of the weights before it; their weights differ only by the factor 6)")

# %% [markdown]
# ## 5. Dead ReLUs from one step too far

# %%
# A large step moves the biases and weights so far that, for some units, w.x + b < 0 for
# every input: such a unit outputs 0 and its slope is 0, so no gradient from this batch
# reaches its weights. One plain SGD step with lr 0.3 (30x the rate of the race in section 7)
# on the Kaiming ReLU network of section 4, taken on another batch of 512; the measuring
# batch measured again: compare its "dead units" row with the one before.
minidl.manual_seed(args.seed)
model = make_mlp("relu", lambda w: init.kaiming_normal_(w, nonlinearity="relu"))
step = optim.SGD(model.parameters(), lr=args.big_lr)
other = shuffled[measure_n:2 * measure_n]  # a different batch to step on
other_x, other_y = minidl.tensor(train_x[other], device=device), minidl.tensor(train_y[other], device=device)
measure(model, other_x, other_y)  # fills the .grad of every parameter
step.step()
name = f"ReLU, Kaiming normal, after one SGD step at lr {args.big_lr:g}"
acts, grads = measure(model)
results[name] = layer_stats(acts, grads)
histograms[name] = ([a.numpy().ravel() for a in acts], [g.numpy().ravel() for g in grads])
print_table(name, results[name])


# %% [markdown]
# ## 6. The pictures: histograms per layer, and std against depth

# %%
def histogram_grid(index, path, title):
    names = list(histograms)
    cols = 2
    rows = (len(names) + cols - 1) // cols
    fig = Figure(figsize=(6 * cols, 2.6 * rows))
    axes = fig.subplots(rows, cols).ravel()
    for ax, name in zip(axes, names):
        for depth, values in enumerate(histograms[name][index]):
            if index == 0:
                edges = np.linspace(-1.05, 1.05, 85) if "tanh" in name else np.linspace(0, 4, 81)
                counts, edges = np.histogram(values, bins=edges, density=True)
            else:
                scale = np.abs(values).max() or 1.0
                counts, edges = np.histogram(values, bins=np.linspace(-scale, scale, 81), density=True)
            ax.plot((edges[1:] + edges[:-1]) / 2, counts, color=matplotlib_colour(depth), lw=1,
                    label=f"layer {depth + 1}")
        ax.set_title(name, fontsize=9)
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"saved {common.show(path)}")


def matplotlib_colour(depth):
    return matplotlib.colormaps["viridis"](depth / max(args.depth - 1, 1))


print()
histogram_grid(0, out / "activation_histograms.png", "activations per layer (density, log scale; early layers dark)")
histogram_grid(1, out / "gradient_histograms.png", "dL/da per layer (density, log scale; each panel its own range)")

fig = Figure(figsize=(13, 4.8))
axes = fig.subplots(1, 2)
layers = np.arange(1, args.depth + 1)
for name, stats in results.items():
    style = "--" if "batch norm" in name else "-"
    axes[0].plot(layers, stats[:, 0], style, marker="o", ms=3, label=name)
    axes[1].plot(layers, stats[:, 1], style, marker="o", ms=3, label=name)
for ax, what in zip(axes, ["std of the activations", "std of dL/da"]):
    ax.set_yscale("log")
    ax.set_xlabel("hidden layer")
    ax.set_ylabel(what)
    ax.grid(alpha=0.3)
axes[0].legend(fontsize=7)
fig.suptitle("std against depth, one batch of CIFAR-10 at initialisation")
fig.tight_layout()
fig.savefig(out / "std_vs_depth.png", dpi=110)
print(f"saved {common.show(out / 'std_vs_depth.png')}")

# %% [markdown]
# ## 7. What it means for training: the same steps for every initialisation

# %%
# SGD with momentum 0.9, lr 0.01, batches of 128 in the same order for every setting.
race = [n for n in settings if "bias -1" not in n]
rng = np.random.default_rng(args.seed)
order = rng.integers(0, len(train_x), size=(args.steps, args.batch_size))  # the same batches for all
train_x_dev, train_y_dev = minidl.tensor(train_x, device=device), minidl.tensor(train_y, device=device)
test_x_dev, test_y_dev = minidl.tensor(test_x, device=device), minidl.tensor(test_y, device=device)
order_dev = minidl.tensor(order, device=device)
curves, finals = {}, {}
print(f"\ntraining race: {args.steps} SGD steps (momentum 0.9, lr 0.01, batch {args.batch_size}) per setting")
print(f"{'setting':<34} {'loss, first 20 steps':>21} {'loss, last 20 steps':>20} {'test acc':>9} {'time':>7}")
for name in race:
    activation, weight_init, bias, batch_norm = settings[name]
    minidl.manual_seed(args.seed)
    model = make_mlp(activation, weight_init, bias, batch_norm)
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    with common.Stopwatch(device) as clock:
        for k in range(args.steps):
            index = order_dev[k]
            loss = F.cross_entropy(model(train_x_dev[index]), train_y_dev[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())  # on the device: no wait per step
    losses = np.array([float(v.item()) for v in losses])
    model.eval()
    with minidl.no_grad():
        accuracy = float((model(test_x_dev).argmax(dim=1) == test_y_dev).float().mean().item())
    curves[name], finals[name] = losses, (losses[:20].mean(), losses[-20:].mean(), accuracy)
    print(f"{name:<34} {finals[name][0]:>21.3f} {finals[name][1]:>20.3f} {accuracy:>9.1%} {clock.seconds:>6.1f}s")
print(f"(chance: loss log(10) = {np.log(10):.3f}, accuracy 10 %)")

fig = Figure(figsize=(7.5, 4.5))
ax = fig.subplots()
for name, losses in curves.items():
    ax.plot(common.smooth(losses, 20), "--" if "batch norm" in name else "-", label=name)
ax.set_xlabel("step")
ax.set_ylabel("training loss (running mean of 20 batches)")
ax.grid(alpha=0.3)
ax.legend(fontsize=7)
ax.set_title(f"{args.steps} SGD steps from each initialisation")
fig.tight_layout()
fig.savefig(out / "training_race.png", dpi=110)
print(f"saved {common.show(out / 'training_race.png')}")

# %% [markdown]
# ## Measurements for the results table

# %%
last = args.depth - 1
best = min(finals, key=lambda n: finals[n][1])
summary = (f"layer {args.depth} act std: tanh too small {results[race[0]][last, 0]:.1e}, "
           f"Xavier {results['tanh, Xavier uniform'][last, 0]:.2f}; "
           f"ReLU Xavier {results['ReLU, Xavier uniform'][last, 0]:.3f}, "
           f"Kaiming {results['ReLU, Kaiming normal'][last, 0]:.2f}; best after {args.steps} steps: {best} "
           f"(loss {finals[best][1]:.3f})")
common.synchronize(device)
print(f"\nlesson 12 | {summary} | wall time {time.perf_counter() - lesson_start:.1f} s | "
      f"peak memory {common.peak_memory(device)} | device {device}")
