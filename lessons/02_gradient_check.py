# %% [markdown]
# # Lesson 02: gradient checking. Is the backward you wrote the derivative of the forward?
#
# A backward pass can be wrong and still train a little, so "the loss went down" proves
# nothing. The derivative has a definition we can compute without any calculus,
#
# $$f'(x) = \lim_{\epsilon \to 0} \frac{f(x + \epsilon) - f(x - \epsilon)}{2 \epsilon},$$
#
# and comparing it with the backward catches almost every bug. This lesson measures:
#
# 1. the error of forward and central differences as eps shrinks, in float32 and float64
#    (why gradient checks use central differences and float64);
# 2. absolute versus relative error (why a check needs both, like gradcheck's atol + rtol);
# 3. a passing `minidl.gradcheck` on a small network;
# 4. an op with a deliberately wrong backward, and gradcheck's report naming the element;
# 5. a NaN loss, and anomaly mode naming the op and the line behind it.
#
# Run:  python lessons/02_gradient_check.py [--device cuda] [--smoke] [--out DIR] [--seed N]
# Then try the exercises:  python -m minidl.exercises --list

# %% [markdown]
# ## Setup: arguments, device, output folder

# %%
import time
from pathlib import Path

import matplotlib

import common  # noqa: E402  (lessons/common.py: the flags and set-up every lesson shares)

common.use_agg_unless_notebook()  # Agg (image files, no window) in a script; inline figures in a notebook
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import minidl  # noqa: E402
from minidl import Function, GradcheckError, gradcheck  # noqa: E402

args, _ = common.parser("Lesson 02: gradient checking", out="runs/02_gradient_check").parse_known_args()
device = common.setup(args)  # seeds, checks the device, makes --out
rng = np.random.default_rng(args.seed)
out = Path(args.out)


def on_device(values, dtype=np.float64, requires_grad=False):
    return minidl.tensor(np.asarray(values), dtype=dtype, device=device, requires_grad=requires_grad)


# %% [markdown]
# ## 1. Finite differences: forward vs central, float32 vs float64
#
# $f(x) = \tanh x$, whose derivative we know exactly: $f'(x) = 1 - \tanh^2 x$.
#
# - forward difference $\frac{f(x + \epsilon) - f(x)}{\epsilon}$: error $\approx \epsilon f''/2$ (truncation)
# - central difference $\frac{f(x + \epsilon) - f(x - \epsilon)}{2\epsilon}$: error $\approx \epsilon^2 f'''/6$ (the $\epsilon$ terms cancel)
#
# Both also suffer rounding: $f$ is stored with relative precision $u$ (machine epsilon),
# so the difference of two nearby values is off by about $u |f| / \epsilon$, which GROWS as $\epsilon$ shrinks.
# (Below $\epsilon \approx 10^{-8}$ in float32, $x + \epsilon$ rounds back to $x$: the difference is 0, the error the whole derivative.)

# %%
x0 = 0.5
exact = 1 - np.tanh(x0) ** 2
steps = np.logspace(-12, -0.5, 12 if args.smoke else 46)
errors = {}
for dtype in (np.float32, np.float64):
    x = on_device(np.full(steps.shape, x0), dtype)
    eps = on_device(steps, dtype)
    f = minidl.tanh
    forward_diff = ((f(x + eps) - f(x)) / eps).numpy().astype(np.float64)
    central_diff = ((f(x + eps) - f(x - eps)) / (2 * eps)).numpy().astype(np.float64)
    name = np.dtype(dtype).name
    errors[f"forward, {name}"] = np.abs(forward_diff - exact)
    errors[f"central, {name}"] = np.abs(central_diff - exact)

print(f"\nd tanh(x)/dx at x = {x0}: exact {exact:.12f}")
print(f"{'difference, dtype':<18} {'best eps':>9} {'theory':>8} {'its error':>10} {'error at eps=1e-6':>18}")
at_1e6 = np.argmin(np.abs(np.log(steps / 1e-6)))
for label, err in errors.items():
    best = int(np.argmin(err))
    u = np.finfo(label.split(", ")[1]).eps  # machine epsilon
    theory = u ** (1 / 2) if label.startswith("forward") else u ** (1 / 3)  # where truncation = rounding
    print(f"{label:<18} {steps[best]:>9.1e} {theory:>8.0e} {err[best]:>10.1e} {err[at_1e6]:>18.1e}")
print("(theory: the best eps balances truncation against rounding: sqrt(u) forward, u**(1/3) central)")
print(f"Central differences in float64 get within {errors['central, float64'].min():.0e} of the exact value; "
      f"in float32 no eps does better than {errors['central, float32'].min():.0e},")
print(f"and at eps = 1e-6 float32 is off by {errors['central, float32'][at_1e6]:.0e}: rounding swamps the signal. "
      "So gradient checks use central differences in float64.")

fig, ax = plt.subplots(figsize=(6.5, 4.2))
for label, err in errors.items():
    ax.loglog(steps, np.maximum(err, 1e-17), marker=".", label=label)
ax.set_xlabel("step eps")
ax.set_ylabel("|finite difference - exact derivative|")
ax.set_title("Truncation error falls with eps, rounding error rises")
ax.legend()
ax.grid(True, which="major", alpha=0.3)
fig.tight_layout()
fig.savefig(out / "finite_difference_error.png", dpi=120)
plt.close(fig)
print(f"saved {common.show(out / 'finite_difference_error.png')}")


# %% [markdown]
# ## 2. The numerical gradient of a whole function, and absolute vs relative error
#
# For a scalar L(x) with many inputs, nudge one element at a time:
# $$\frac{\partial L}{\partial x_i} \approx \frac{L(x + \epsilon e_i) - L(x - \epsilon e_i)}{2 \epsilon}$$

# %%
def numerical_gradient(loss, x, eps=1e-6):
    """Central differences, element by element (x a float64 Tensor; loss returns a scalar Tensor)."""
    grad = np.zeros(x.shape)
    flat = x.data.reshape(-1)  # a view: writing into it nudges x
    with minidl.no_grad():
        for i in range(flat.size):
            original = flat[i].item()
            flat[i] = original + eps
            plus = loss(x).item()
            flat[i] = original - eps
            minus = loss(x).item()
            flat[i] = original
            grad.reshape(-1)[i] = (plus - minus) / (2 * eps)
    return grad


n, d, c = (3, 4, 3) if args.smoke else (8, 6, 5)
inputs = on_device(rng.standard_normal((n, d)))
weight = on_device(rng.standard_normal((d, c)), requires_grad=True)
v = on_device(rng.standard_normal((n, c)))

print("\nL = scale * sum(v * softmax(inputs @ W)): backward vs central differences for dL/dW")
print(f"{'scale':>8} {'max |analytic|':>15} {'max abs error':>14} {'max rel error':>14}")
for scale in (1.0, 1e3, 1e6):

    def loss(w, scale=scale):
        return (minidl.softmax(inputs @ w, dim=1) * v).sum() * scale

    weight.grad = None
    loss(weight).backward()
    analytic = weight.grad.numpy()
    numerical = numerical_gradient(loss, weight)
    absolute = np.abs(analytic - numerical)
    relative = absolute / np.maximum(np.maximum(np.abs(analytic), np.abs(numerical)), 1e-300)
    print(f"{scale:>8.0e} {np.abs(analytic).max():>15.3g} {absolute.max():>14.2e} {relative.max():>14.2e}")
print("The absolute error grows with the size of the gradient; the relative error stays tiny.")
print("A fixed absolute tolerance would fail the big ones and wave through a wrong tiny one, so")
print("gradcheck accepts an element when |analytic - numerical| <= atol + rtol * |numerical|")
print("(atol = 1e-5 covers gradients near zero, where a relative error means nothing).")


# %% [markdown]
# ## 3. minidl.gradcheck on a small network: it passes
#
# gradcheck does what numerical_gradient does, for every input that requires grad, on
# $L = \sum v \odot \text{output}$ with a random $v$ (so a wrong Jacobian cannot hide), in float64.

# %%
def tiny_network(x, w1, w2):
    return minidl.tanh(x @ w1) @ w2


sizes = (2, 3, 4, 2) if args.smoke else (4, 5, 6, 3)
x = on_device(rng.standard_normal(sizes[:2]), requires_grad=True)
w1 = on_device(rng.standard_normal(sizes[1:3]), requires_grad=True)
w2 = on_device(rng.standard_normal(sizes[2:]), requires_grad=True)
start = time.perf_counter()
passed = gradcheck(tiny_network, [x, w1, w2], names=["x", "w1", "w2"])
elements = x.numel() + w1.numel() + w2.numel()
print(f"\ngradcheck(tanh(x @ w1) @ w2): {passed}, {elements} elements nudged, "
      f"{2 * elements} forward passes for the differences (2 per element), {time.perf_counter() - start:.3f} s")
passed = gradcheck(tiny_network, [x, w1, w2], mode="random")
print(f"gradcheck(..., mode='random'): {passed} (one random direction: 2 forward passes for the difference, "
      "whatever the size of the inputs)")


# %% [markdown]
# ## 4. Break an op on purpose and watch gradcheck name the element

# %%
class BrokenAbs(Function):
    """y = |x|;  dy/dx = sign(x). The backward below forgets the negative side: it uses
    [x > 0] (1 or 0) instead of sign(x) (1 or -1), so only negative elements are wrong."""

    def forward(self, x):
        return abs(x)

    def backward(self, gy):
        x = self.inputs[0]
        return gy * (x.data > 0).astype(gy.dtype)  # the bug: should be x.xp.sign(x.data)


class FixedAbs(BrokenAbs):
    def backward(self, gy):
        x = self.inputs[0]
        return gy * x.xp.sign(x.data)


values = on_device([[0.5, 1.2, -0.7], [2.0, 0.3, 1.1]], requires_grad=True)  # one negative entry, at (0, 2)
print("\nBrokenAbs on x =", values.numpy().tolist())
print("gradcheck(..., raise_exception=False) returns:",
      gradcheck(lambda t: BrokenAbs()(t), [values], raise_exception=False))
try:
    gradcheck(lambda t: BrokenAbs()(t), [values], names=["x"])
except GradcheckError as report:
    print("gradcheck raised GradcheckError; its report:")
    print("   ", str(report).replace("\n", "\n    "))
print("It names element (0, 2), the only negative entry: the one the broken backward gets wrong.")
# Why -0.64 and not -1? gradcheck does not differentiate |x| itself but L = sum(v * |x|), with v drawn
# once per output from numpy.random.default_rng(seed) (seed=0 by default: see minidl/gradcheck.py).
# So dL/dx = v * sign(x) element by element, and the broken backward gives v * [x > 0].
v_gradcheck = np.random.default_rng(0).standard_normal(values.shape)  # the v gradcheck drew
x_np = values.numpy()
print(f"gradcheck's v (standard normal, default_rng(0)):\n    {np.round(v_gradcheck, 6).tolist()}")
print(f"v * sign(x), the true dL/dx:       {np.round(v_gradcheck * np.sign(x_np), 6).tolist()}")
print(f"v * [x > 0], the broken backward:  {np.round(v_gradcheck * (x_np > 0), 6).tolist()}")
print(f"At (0, 2): v = {v_gradcheck[0, 2]:.6f} and x = {x_np[0, 2]}, so numerical = v * sign(x) = "
      f"{v_gradcheck[0, 2] * np.sign(x_np[0, 2]):.6f}, analytic = v * 0 = 0: the report's numbers.")
print("gradcheck with the fixed backward:", gradcheck(lambda t: FixedAbs()(t), [values], names=["x"]))

# The same comparison by hand, as a picture: d sum(|x|)/dx, element by element. Here v = 1 everywhere,
# so the bars are sign(x) (numerical) and [x > 0] (broken): -1 against 0 at the negative element.
flat_values = values.detach()
numerical = numerical_gradient(lambda t: BrokenAbs()(t).sum(), flat_values).reshape(-1)
broken = values.detach().requires_grad_()
BrokenAbs()(broken).sum().backward()
analytic = broken.grad.numpy().reshape(-1)
fig, ax = plt.subplots(figsize=(6.5, 3.4))
positions = np.arange(numerical.size)
ax.bar(positions - 0.2, numerical, width=0.4, label="numerical (central differences)")
ax.bar(positions + 0.2, analytic, width=0.4, label="analytic (BrokenAbs.backward)")
ax.set_xticks(positions, [str(tuple(int(i) for i in np.unravel_index(k, values.shape))) for k in positions])
ax.set_xlabel("element of x")
ax.set_ylabel("d sum|x| / dx")
ax.set_title("The broken backward disagrees at the negative element only")
ax.axhline(0, color="black", linewidth=0.8)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out / "broken_abs_gradient.png", dpi=120)
plt.close(fig)
print(f"by hand with v = 1: numerical {numerical.round(6).tolist()}\n"
      f"                    analytic  {analytic.tolist()}")
print(f"saved {common.show(out / 'broken_abs_gradient.png')}")

# %% [markdown]
# ## 5. A NaN loss: anomaly mode names the op and the line that made it
#
# gradcheck asks whether a backward is the derivative of its forward. Another bug is a forward
# that is right on paper but breaks in floating point: softmax(z) underflows to exactly 0 for
# a logit far below the others (exp(-120) is below float32's smallest number), log(0) = -inf,
# and the derivative of log at 0 is 1/0. The loss is inf and the gradient inf or NaN, and
# neither says where. minidl.autograd.detect_anomaly() makes every op remember the line that
# called it and checks every gradient as backward makes it: the first op whose backward returns
# NaN or inf is named, with that line (PyTorch's torch.autograd.detect_anomaly does the same).

# %%
logits = on_device([[0.0, 120.0]], dtype=np.float32, requires_grad=True)  # confident, and wrong
target = on_device([[1.0, 0.0]], dtype=np.float32)  # the true class is 0
with np.errstate(divide="ignore", invalid="ignore"):
    loss = -(logits.softmax(dim=-1).log() * target).sum()  # cross-entropy, written the fragile way
    loss.backward()
    print(f"\nloss = -sum(target * log(softmax(z))) for z = {logits.tolist()}: {loss.item()}, "
          f"dL/dz = {logits.grad.tolist()}: no error, and nothing says where it went wrong")
    logits.grad = None
    with minidl.autograd.detect_anomaly():
        probabilities = logits.softmax(dim=-1)
        loss = -(probabilities.log() * target).sum()
        try:
            loss.backward()
        except RuntimeError as error:
            print("The same backward under minidl.autograd.detect_anomaly() raises:")
            print("   ", str(error).strip().replace("\n", "\n    "))
# The fix: log_softmax computes log(softmax(z)) as z - logsumexp(z), which never takes log(0).
loss = -(logits.log_softmax(dim=-1) * target).sum()
loss.backward()
print(f"With log_softmax: loss = {loss.item():.1f}, dL/dz = {logits.grad.tolist()} (finite: softmax(z) - target)")

# %% [markdown]
# ## Next

# %%
print("\nNow write some backwards yourself: python -m minidl.exercises --list")
