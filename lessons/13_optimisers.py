# %% [markdown]
# # Lesson 13: optimisers. SGD, momentum, Nesterov, RMSprop and Adam, side by side.
#
# Every optimiser here is a rule for turning the gradient $g$ of the current batch into a step.
# With $\eta$ (`lr`) the learning rate (PyTorch's equations, as minidl.optim implements them):
#
# | optimiser | update |
# |---|---|
# | SGD | $p \leftarrow p - \eta\, g$ |
# | momentum | $b \leftarrow \mu b + g; \;\; p \leftarrow p - \eta\, b$ |
# | Nesterov | $b \leftarrow \mu b + g; \;\; p \leftarrow p - \eta\, (g + \mu b)$ (looks one step ahead) |
# | RMSprop | $v \leftarrow \alpha v + (1 - \alpha) g^2; \;\; p \leftarrow p - \eta\, g / (\sqrt{v} + \epsilon)$ |
# | Adam | $m \leftarrow \beta_1 m + (1 - \beta_1) g; \;\; v \leftarrow \beta_2 v + (1 - \beta_2) g^2;$ $\;\; p \leftarrow p - \eta\, \hat m / (\sqrt{\hat v} + \epsilon),$ $\;\; \hat m = m / (1 - \beta_1^t), \; \hat v = v / (1 - \beta_2^t)$ |
#
# Why Adam divides by $1 - \beta_1^t$ (the bias correction). $m$ starts at 0, so after $t$ steps
#
# $$m_t = (1 - \beta_1)\left(g_t + \beta_1 g_{t-1} + \dots + \beta_1^{t-1} g_1\right) = (1 - \beta_1) \sum_{i=1}^{t} \beta_1^{t-i} g_i.$$
#
# If the gradients are stationary (every $g_i$ has the same mean $E[g]$), taking expectations gives
#
# $$E[m_t] = E[g]\, (1 - \beta_1) \sum_{k=0}^{t-1} \beta_1^k = E[g]\, (1 - \beta_1^t)$$
#
# (a geometric sum). So $m_t$ is biased towards 0 by exactly the factor $1 - \beta_1^t$, and
# $m_t / (1 - \beta_1^t)$ has expectation $E[g]$: it is unbiased at every $t$, not only once $t$ is large.
# The same argument with $g^2$ makes $v_t / (1 - \beta_2^t)$ an unbiased estimate of $E[g^2]$. Without it,
# with $\beta_2 = 0.999$ the first $v$ is $0.001\, g^2$, and the first steps would be $\sqrt{1000}/10 \approx 3\times$ too
# large (uncorrected $m/\sqrt{v} = 0.1\, g / \sqrt{0.001\, g^2} = 3.16$ at $t = 1$). Section 1 measures both.
#
# This lesson measures:
#
# 1. Adam's moments on a stream of stationary random gradients, corrected and not, step by step;
# 2. weight decay vs an L2 penalty: the same thing for SGD, not for Adam (Adam(weight_decay) vs AdamW);
# 3. learning-rate schedules (StepLR, CosineAnnealingLR, OneCycleLR): lr against step;
# 4. the five optimisers' paths on the Rosenbrock function, drawn over its contours, with the steps
#    each needs to come within a tolerance of the minimum;
# 5. the same five on a real model (lesson 03's spiral MLP): one start, one batch order, five loss curves.
#
# Run:  python lessons/13_optimisers.py [--device cuda] [--smoke] [--epochs N] [--out DIR]

# %% [markdown]
# ## Setup: arguments, device, output folder

# %%
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # draws without a display

import common  # lessons/common.py: the flags and set-up every lesson shares
import minidl
import minidl.nn as nn
import minidl.nn.functional as F
from minidl import datasets, optim, plot
from minidl.data import ArrayDataset, DataLoader
from minidl.optim import lr_scheduler

flags = common.parser("Lesson 13: optimisers (SGD, momentum, Nesterov, RMSprop, Adam, AdamW, schedules)",
                      epochs=100, batch_size=32, out="runs/13_optimisers")
flags.add_argument("--rosenbrock-steps", type=int, default=5000, help="most steps on Rosenbrock (default: 5000)")
args, _ = flags.parse_known_args()
if args.smoke:
    args.epochs, args.rosenbrock_steps = min(args.epochs, 3), min(args.rosenbrock_steps, 30)
device = common.setup(args)  # seeds, checks the device, makes --out
out = Path(args.out)
lesson_start = time.perf_counter()


# %% [markdown]
# ## 1. Adam's bias correction, measured
#
# A stream of stationary gradients: each step, every one of n independent "weights" gets a gradient
# drawn from N(mean 1, std 0.5), so E[g] = 1 and E[g^2] = 1 + 0.25 = 1.25. We hand them to a real
# Adam (its state is what we read) and average m and v over the n weights.

# %%
n = 1000 if args.smoke else 100_000
beta1, beta2 = 0.9, 0.999
weights = nn.Parameter(minidl.zeros(n, device=device))
adam = optim.Adam([weights], lr=0.0, betas=(beta1, beta2))  # lr 0: we only watch the moments
print(f"\n1. Adam's moments on stationary gradients g ~ N(1, 0.5^2) (E[g] = 1, E[g^2] = 1.25), mean over "
      f"{n:,} weights")
print(f"{'t':>3} {'m_t':>8} {'m_t/(1-b1^t)':>13} {'v_t':>9} {'v_t/(1-b2^t)':>13} {'step/lr uncorrected':>20} "
      f"{'corrected':>10} {'ratio':>6}")
for t in range(1, 7):
    weights.grad = 1.0 + 0.5 * minidl.randn(n, device=device)
    adam.step()
    m, v = adam.state[weights]["exp_avg"], adam.state[weights]["exp_avg_sq"]
    m_mean, v_mean = m.mean().item(), v.mean().item()
    raw_step = (m / (v.sqrt() + 1e-8)).mean().item()  # m / sqrt(v): the step without correction, in units of lr
    fixed_step = ((m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + 1e-8)).mean().item()
    print(f"{t:>3} {m_mean:>8.4f} {m_mean / (1 - beta1**t):>13.4f} {v_mean:>9.5f} {v_mean / (1 - beta2**t):>13.4f} "
          f"{raw_step:>20.3f} {fixed_step:>10.3f} {raw_step / fixed_step:>6.2f}")
print("The uncorrected m_t and v_t start near 0 (m_1 = 0.1 E[g], v_1 = 0.001 E[g^2]); divided by 1 - beta^t both\n"
      "read E[g] = 1 and E[g^2] = 1.25 from the first step on, as the geometric sum says. The uncorrected step\n"
      "m/sqrt(v) is (1 - b1^t) / sqrt(1 - b2^t) times the corrected one: 3.16 at t = 1, and growing over these\n"
      "steps because v's factor 1 - b2^t grows far more slowly than m's. The corrected step stays near\n"
      "E[g] / sqrt(E[g^2]) = 1 / sqrt(1.25) = 0.89 (in units of lr).")


# %% [markdown]
# ## 2. Weight decay vs an L2 penalty
#
# An L2 penalty $\frac{\lambda}{2} \|p\|^2$ adds $\lambda p$ to the gradient. For SGD that is the same as shrinking $p$
# by $(1 - \eta \lambda)$ every step ("weight decay"). An adaptive method divides the gradient by sqrt(v):
# Adam(weight_decay) adds lambda p to g *before* that division, so a weight whose gradients are large
# (large sqrt(v)) is hardly decayed and one whose gradients are small is decayed a lot. AdamW (Loshchilov &
# Hutter) decays p by lr lambda p outside the moments, the same rate for every weight.
# The measurement: two weights start at 1; their data gradients are zero-mean noise, RMS 10 and RMS 0.1,
# the same noise for every optimiser. The shrink due to decay is p(without decay) - p(with decay).

# %%
steps, lr, lam = (50 if args.smoke else 500), 0.01, 0.01
rng = np.random.default_rng(args.seed)
noise = minidl.tensor(rng.standard_normal((steps, 2)) * np.array([10.0, 0.1]), device=device)


def final_weights(make):
    p = nn.Parameter(minidl.ones(2, device=device))
    opt = make([p])
    for i in range(steps):
        p.grad = noise[i] * 1.0
        opt.step()
    return p.numpy()


def sgd_with_l2_by_hand(params):
    """The L2 penalty written into the gradient ourselves, then plain SGD."""
    class L2SGD(optim.SGD):
        def update(self, p, grad, state, group):
            super().update(p, grad + lam * p.data, state, group)
    return L2SGD(params, lr=lr)


results = {
    "SGD, no decay": final_weights(lambda ps: optim.SGD(ps, lr=lr)),
    "SGD(weight_decay)": final_weights(lambda ps: optim.SGD(ps, lr=lr, weight_decay=lam)),
    "SGD + L2 in the gradient": final_weights(sgd_with_l2_by_hand),
    "Adam, no decay": final_weights(lambda ps: optim.Adam(ps, lr=lr)),
    "Adam(weight_decay) = L2": final_weights(lambda ps: optim.Adam(ps, lr=lr, weight_decay=lam)),
    "AdamW(weight_decay)": final_weights(lambda ps: optim.AdamW(ps, lr=lr, weight_decay=lam)),
}
print(f"\n2. Decay vs L2: lr {lr}, lambda {lam}, {steps} steps; (1 - lr lambda)^steps = {(1 - lr * lam)**steps:.4f}")
print(f"{'':<27} {'weight, grad RMS 10':>20} {'weight, grad RMS 0.1':>21}")
for name, p in results.items():
    print(f"{name:<27} {p[0]:>20.5f} {p[1]:>21.5f}")
sgd_gap = np.abs(results["SGD(weight_decay)"] - results["SGD + L2 in the gradient"]).max()
adam_shrink = results["Adam, no decay"] - results["Adam(weight_decay) = L2"]
adamw_shrink = results["Adam, no decay"] - results["AdamW(weight_decay)"]
print(f"SGD: weight decay and L2 agree to {sgd_gap:.1e}.")
print(f"shrink caused by the decay term (no decay - with decay), RMS-10 weight / RMS-0.1 weight:\n"
      f"  Adam(L2) {adam_shrink[0]:.5f} / {adam_shrink[1]:.5f};  AdamW {adamw_shrink[0]:.5f} / {adamw_shrink[1]:.5f};  "
      f"Adam(L2) / AdamW: {adam_shrink[0] / adamw_shrink[0]:.2f}x / {adam_shrink[1] / adamw_shrink[1]:.1f}x")
print("Adam's L2 term is divided by sqrt(v): the weight with large gradients is barely decayed and the one with\n"
      "small gradients is decayed far more than AdamW decays it; AdamW takes lr * lambda * p from each weight\n"
      "every step whatever its gradients, so both shrink by similar amounts (they differ as their p differ).")


# %% [markdown]
# ## 3. Learning-rate schedules: lr against step

# %%
def lr_curve(make_scheduler, total, momentum=0.0):
    opt = optim.SGD([nn.Parameter(minidl.zeros(1, device=device))], lr=0.1, momentum=momentum)
    scheduler = make_scheduler(opt)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradients: nothing moves, only the schedule advances
        scheduler.step()
    return lrs


total = 100
schedules = {
    "StepLR(step_size=30, gamma=0.1)": lr_curve(lambda o: lr_scheduler.StepLR(o, step_size=30, gamma=0.1), total),
    "CosineAnnealingLR(T_max=100)": lr_curve(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=total), total),
    "OneCycleLR(max_lr=0.1, total_steps=100)": lr_curve(
        lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=total), total, momentum=0.9),
}
print(f"\n3. Schedules, base lr 0.1, {total} steps: lr at steps 0, 29, 30, 50, 99")
for name, lrs in schedules.items():
    print(f"{name:<40} " + "  ".join(f"{lrs[i]:.5f}" for i in (0, 29, 30, 50, 99)))
print(f"saved {common.show(plot.lines(schedules, out / 'lr_schedules.png', xlabel='step', ylabel='lr', title='Learning-rate schedules'))}")


# %% [markdown]
# ## 4. Paths on the Rosenbrock function $f(x, y) = (1 - x)^2 + 100\, (y - x^2)^2$
#
# A long, curved, narrow valley with its minimum at (1, 1): steep across the valley (curvature ~1000 near the
# minimum), nearly flat along it (~0.4). Plain SGD must keep lr below about 2/1000 to stay stable across the
# valley, so along it each step shrinks the distance by only ~lr * 0.4; momentum adds up its steps along the
# valley (at the same lr its steady-direction step is 10x larger); RMSprop and Adam divide each coordinate's
# step by that coordinate's gradient RMS. Each gets a learning rate that suits it (a coarse hand sweep:
# SGD 1e-3..2e-3, momentum 1e-4..1e-3, RMSprop 1e-3..1e-2, Adam 1e-2..1e-1; the fastest stable one kept).

# %%
def rosenbrock(p):
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


start_point, tolerance = [-1.2, 1.0], 1e-2
path_optimizers = {
    "SGD (lr 1.5e-3)": lambda ps: optim.SGD(ps, lr=1.5e-3),
    "momentum 0.9 (lr 1e-3)": lambda ps: optim.SGD(ps, lr=1e-3, momentum=0.9),
    "Nesterov 0.9 (lr 1e-3)": lambda ps: optim.SGD(ps, lr=1e-3, momentum=0.9, nesterov=True),
    "RMSprop (lr 3e-3)": lambda ps: optim.RMSprop(ps, lr=3e-3),
    "Adam (lr 5e-2)": lambda ps: optim.Adam(ps, lr=5e-2),
}
paths = {}
print(f"\n4. Rosenbrock from {tuple(start_point)}, at most {args.rosenbrock_steps} steps; "
      f"'steps' = first step with |p - (1, 1)| < {tolerance}")
print(f"{'optimizer':<24} {'steps':>6} {'final f':>10} {'final |p - (1,1)|':>18}")
for name, make in path_optimizers.items():
    p = nn.Parameter(minidl.tensor(start_point, dtype=np.float64, device=device))
    opt = make([p])
    visited = [p.detach() * 1.0]  # copies stay on the device; one transfer at the end
    for _ in range(args.rosenbrock_steps):
        opt.zero_grad()
        rosenbrock(p).backward()
        opt.step()
        visited.append(p.detach() * 1.0)
    path = minidl.stack(visited, dim=0).numpy()
    paths[name] = path
    distance = np.linalg.norm(path - 1.0, axis=1)
    reached = np.flatnonzero(distance < tolerance)
    final_f = (1 - path[-1, 0]) ** 2 + 100 * (path[-1, 1] - path[-1, 0] ** 2) ** 2
    print(f"{name:<24} {str(reached[0]) if len(reached) else 'never':>6} {final_f:>10.2e} {distance[-1]:>18.2e}")
print("SGD's lr is capped by the steep direction, so it never gets there in these steps; momentum, Nesterov\n"
      "and Adam reach the tolerance and end at the minimum to float64 rounding; RMSprop (no momentum, no bias\n"
      "correction, constant lr) reaches it last and stops furthest from the minimum of the four (final columns).")

gx, gy = np.meshgrid(np.linspace(-2, 2, 300), np.linspace(-1, 3, 300))
fig = Figure(figsize=(7, 6))
ax = fig.subplots()
ax.contour(gx, gy, np.log10((1 - gx) ** 2 + 100 * (gy - gx**2) ** 2 + 1e-3), levels=25, cmap="Greys", linewidths=0.6)
for name, path in paths.items():
    ax.plot(path[:, 0], path[:, 1], lw=1.2, label=name)
ax.plot([1], [1], "k*", ms=12)
ax.plot([start_point[0]], [start_point[1]], "ko", ms=5)
ax.set_xlabel("x")
ax.set_ylabel("y")
ax.legend(fontsize=8, loc="upper left")
ax.set_title(f"Rosenbrock: {args.rosenbrock_steps} steps from {tuple(start_point)} (contours of log10 f)")
fig.savefig(out / "rosenbrock_paths.png", dpi=110)
print(f"saved {common.show(out / 'rosenbrock_paths.png')}")


# %% [markdown]
# ## 5. A real model: lesson 03's spiral MLP, one start, one batch order, five optimisers

# %%
X, y = datasets.spiral(20 if args.smoke else 100, classes=3, noise=0.2, seed=args.seed)
inputs, targets = minidl.tensor(X, device=device), minidl.tensor(y, device=device)


def mlp():
    return nn.Sequential(nn.Linear(2, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 3)).to(device)


def train(model, optimizer, epochs):
    """Mean loss of each epoch; the loader's fixed seed gives every optimiser the same batches."""
    loader = DataLoader(ArrayDataset(X, y), batch_size=args.batch_size, shuffle=True, device=device,
                        generator=args.seed)
    losses = []
    for _ in range(epochs):
        total = minidl.zeros((), device=device)
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total = total + loss.detach() * len(yb)
        losses.append(total / len(y))
    return minidl.stack(losses, dim=0).numpy()  # one transfer, after training


model_optimizers = {
    "SGD (lr 0.1)": lambda ps: optim.SGD(ps, lr=0.1),
    "momentum 0.9 (lr 0.05)": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
    "Nesterov 0.9 (lr 0.05)": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    "RMSprop (lr 1e-3)": lambda ps: optim.RMSprop(ps, lr=1e-3),
    "Adam (lr 1e-2)": lambda ps: optim.Adam(ps, lr=1e-2),
}
start = mlp().state_dict()
histories, accuracies = {}, {}
print(f"\n5. Spiral MLP 2 -> 100 -> 100 -> 3, {len(y)} points, {args.epochs} epochs, batch {args.batch_size}")
print(f"{'optimizer':<24} {'final loss':>10} {'train acc':>10} {'epochs to loss < 0.3':>21} {'time':>7}")
for name, make in model_optimizers.items():
    model = mlp()
    model.load_state_dict(start)
    began = time.perf_counter()
    losses = train(model, make(model.parameters()), args.epochs)
    seconds = time.perf_counter() - began
    with minidl.no_grad():
        accuracies[name] = (model(inputs).argmax(dim=1) == targets).float().mean().item()
    histories[name] = losses
    below = next((str(i + 1) for i, v in enumerate(losses) if v < 0.3), "never")
    print(f"{name:<24} {losses[-1]:>10.4f} {accuracies[name]:>10.1%} {below:>21} {seconds:>6.1f}s")
print(f"saved {common.show(plot.lines(histories, out / 'spiral_loss_curves.png', xlabel='epoch', ylabel='mean training loss', title='Spiral MLP: one start, five optimisers', logy=True))}")

# %% [markdown]
# ## Measurements for the results table

# %%
common.synchronize(device)
best = max(accuracies, key=accuracies.get)
print(f"\nlesson 13 | best spiral training accuracy {accuracies[best]:.1%} ({best}) | wall time "
      f"{time.perf_counter() - lesson_start:.1f} s | peak memory {common.peak_memory(device)} | device {device}")
