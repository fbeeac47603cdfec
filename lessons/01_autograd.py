# %% [markdown]
# # Lesson 01: automatic differentiation, by hand and by machine.
#
# We take one small function, $f(a, b) = \tanh(ab + b^2)$, and compute its gradient four ways:
#
# 1. by hand, with the chain rule written out step by step;
# 2. with minidl's `backward()` (reverse-mode autograd: the same chain rule, run by the machine);
# 3. with central finite differences, $\frac{f(x + h) - f(x - h)}{2h}$, which needs no calculus at all;
# 4. for the second derivative, by running `backward` on a gradient (`create_graph=True`).
#
# Then we look at the graph minidl recorded: drawn as a picture (graph.png, with every value and
# gradient on it), and exported as Graphviz DOT text.
#
# Run it:   python lessons/01_autograd.py            (add --smoke for a quick run, --device cuda for a GPU)
# Open it:  the `# %%` markers make it a notebook in VS Code / Jupytext.
# PyTorch:  every call here has the same name there (torch.tanh, .backward(), torch.autograd.grad).

# %% [markdown]
# ## Setup

# %%
import math
from pathlib import Path

import numpy as np

import common  # lessons/common.py: a parser that also works in a notebook, inline figures
import minidl

parser = common.LessonParser(description="Lesson 01: automatic differentiation, by hand and by machine.")
parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
parser.add_argument("--smoke", action="store_true", help="a quick run (fewer points and step sizes)")
parser.add_argument("--out", default="runs/01_autograd", help="folder for the graph file")
parser.add_argument("--seed", type=int, default=0, help="seed for the random points in part 5")
args, _ = parser.parse_known_args()  # known args only, so the cells also run inside a notebook

out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
minidl.manual_seed(args.seed)
device = args.device
print(f"minidl lesson 01 on device '{device}'")


def check(what, ours, reference, tolerance):
    """Print a comparison and stop the lesson if the two numbers disagree."""
    error = abs(ours - reference)
    print(f"  {what:<44} {ours:+.12f}  vs {reference:+.12f}   |difference| {error:.1e}")
    assert error <= tolerance, f"{what}: {ours} and {reference} differ by {error} (allowed {tolerance})"


# %% [markdown]
# ## 1. The function, one small step at a time
#
# $f(a, b) = \tanh(ab + b^2)$ is a chain of four elementary ops. Naming each intermediate
# value is what an autograd engine does internally (each op becomes a node of a graph):
#
# $$u = a b \;\;(\text{Mul}), \qquad v = b^2 \;\;(\text{PowScalar}), \qquad
#   s = u + v \;\;(\text{Add}), \qquad f = \tanh(s) \;\;(\text{Tanh})$$

# %%
a_value, b_value = 0.5, -1.2

u = a_value * b_value
v = b_value**2
s = u + v
f_value = math.tanh(s)
print(f"\n1. f(a={a_value}, b={b_value}) = tanh({u:.3f} + {v:.3f}) = {f_value:.6f}")

# %% [markdown]
# ## 2. The gradient by hand: the chain rule
#
# Each op knows only its own local derivative:
#
# $$\frac{\partial f}{\partial s} = 1 - \tanh^2 s = 1 - f^2 \;\;(\text{Tanh}), \qquad
#   \frac{\partial s}{\partial u} = \frac{\partial s}{\partial v} = 1 \;\;(\text{Add}),$$
# $$\frac{\partial u}{\partial a} = b, \;\; \frac{\partial u}{\partial b} = a \;\;(\text{Mul}), \qquad
#   \frac{\partial v}{\partial b} = 2b \;\;(\text{PowScalar}).$$
#
# The chain rule multiplies local derivatives along each path from f back to an input,
# and adds the paths together when an input is used more than once:
#
# $$\frac{\partial f}{\partial a} = \frac{\partial f}{\partial s}\frac{\partial s}{\partial u}\frac{\partial u}{\partial a}
#   = (1 - f^2)\, b$$
# $$\frac{\partial f}{\partial b} = \frac{\partial f}{\partial s}\frac{\partial s}{\partial u}\frac{\partial u}{\partial b}
#   + \frac{\partial f}{\partial s}\frac{\partial s}{\partial v}\frac{\partial v}{\partial b} = (1 - f^2)(a + 2b)$$
#
# b reaches f along two paths (through u and through v), so its two contributions add.
# Backpropagation computes exactly these products, starting at f and walking backwards:
# it reuses df/ds for both paths instead of recomputing it.

# %%
df_ds = 1 - f_value**2
hand_da = df_ds * b_value
hand_db = df_ds * (a_value + 2 * b_value)
print(f"\n2. by hand:   df/da = {hand_da:+.12f}   df/db = {hand_db:+.12f}")

# %% [markdown]
# ## 3. The gradient by backward()
#
# minidl records the graph while f is computed (define-by-run). backward() then visits the
# ops in reverse order and calls each op's backward (its local derivative times the
# gradient flowing in), adding into .grad of every leaf that has requires_grad=True.
# float64 keeps rounding errors far below the differences we want to see.

# %%
a = minidl.tensor(a_value, dtype=minidl.float64, device=device, requires_grad=True)
b = minidl.tensor(b_value, dtype=minidl.float64, device=device, requires_grad=True)
f = minidl.tanh(a * b + b**2)
f.backward()
print("\n3. backward() against the hand-derived gradient:")
check("df/da", a.grad.item(), hand_da, 1e-12)
check("df/db", b.grad.item(), hand_db, 1e-12)


# %% [markdown]
# ## 4. The gradient by finite differences
#
# No calculus: nudge one input by a small h both ways and measure the slope,
# $$\frac{\partial f}{\partial a} \approx \frac{f(a + h, b) - f(a - h, b)}{2h}.$$
# The central difference has an error that shrinks like $h^2$ (a one-sided difference only
# like $h$), but rounding adds an error of about $\epsilon_\text{machine} |f| / h$, which GROWS as $h$
# shrinks. The table shows both: the best h in float64 is near 1e-5 to 1e-6.
# This is exactly what minidl.gradcheck does, element by element (see lesson 02).

# %%
def f_of(a_number, b_number):
    with minidl.no_grad():  # plain evaluation: no graph needed
        x = minidl.tensor(a_number, dtype=minidl.float64, device=device)
        y = minidl.tensor(b_number, dtype=minidl.float64, device=device)
        return minidl.tanh(x * y + y**2).item()


steps = [1e-2, 1e-6, 1e-10] if args.smoke else [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11]
print("\n4. central differences for df/da: the error first shrinks with h, then rounding takes over")
print(f"  {'h':>8}  {'estimate':>16}  {'|error|':>9}")
for h in steps:
    estimate = (f_of(a_value + h, b_value) - f_of(a_value - h, b_value)) / (2 * h)
    print(f"  {h:8.0e}  {estimate:+16.12f}  {abs(estimate - hand_da):9.1e}")
h = 1e-6
numeric_da = (f_of(a_value + h, b_value) - f_of(a_value - h, b_value)) / (2 * h)
numeric_db = (f_of(a_value, b_value + h) - f_of(a_value, b_value - h)) / (2 * h)
check("df/da by central difference (h = 1e-6)", numeric_da, hand_da, 1e-8)
check("df/db by central difference (h = 1e-6)", numeric_db, hand_db, 1e-8)

# %% [markdown]
# ## 5. The same on whole arrays, checked by minidl.gradcheck
#
# Ops work elementwise on arrays, and the gradient of sum(f) is the array of df/da_i.
# gradcheck compares backward() with central differences for every element, in float64.

# %%
n = 4 if args.smoke else 1000
a_vec = minidl.randn(n, dtype=minidl.float64, device=device, requires_grad=True)
b_vec = minidl.randn(n, dtype=minidl.float64, device=device, requires_grad=True)
f_vec = minidl.tanh(a_vec * b_vec + b_vec**2)
f_vec.sum().backward()
A, B, F = a_vec.numpy(), b_vec.numpy(), f_vec.numpy()
worst = max(
    np.abs(a_vec.grad.numpy() - (1 - F**2) * B).max(),
    np.abs(b_vec.grad.numpy() - (1 - F**2) * (A + 2 * B)).max(),
)
print(f"\n5. {n} random points: largest |backward - hand formula| = {worst:.1e}")
assert worst < 1e-12
small = [minidl.tensor(t.numpy()[:4], device=device, requires_grad=True) for t in (a_vec, b_vec)]
print("  gradcheck(tanh(a*b + b**2)) on 4 points:", minidl.gradcheck(lambda a, b: minidl.tanh(a * b + b**2), small))

# %% [markdown]
# ## 6. A second derivative with create_graph=True
#
# Each op's backward is itself written with minidl ops. With create_graph=True, backward
# records those ops too, so the gradient is a tensor with its own graph, and we can
# differentiate it again. By hand, from $\partial f / \partial a = (1 - f^2)\, b$:
#
# $$\frac{\partial^2 f}{\partial a^2} = \frac{\partial}{\partial a}\left[(1 - f^2)\, b\right]
#   = -2 f \frac{\partial f}{\partial a} b = -2 f (1 - f^2)\, b^2$$

# %%
a = minidl.tensor(a_value, dtype=minidl.float64, device=device, requires_grad=True)
b = minidl.tensor(b_value, dtype=minidl.float64, device=device, requires_grad=True)
f = minidl.tanh(a * b + b**2)
(df_da,) = minidl.grad(f, a, create_graph=True)  # a tensor that remembers how it was made
(d2f_da2,) = minidl.grad(df_da, a)
hand_d2 = -2 * f_value * (1 - f_value**2) * b_value**2
h = 1e-4
numeric_d2 = (f_of(a_value + h, b_value) - 2 * f_value + f_of(a_value - h, b_value)) / h**2
print("\n6. second derivative d2f/da2:")
check("create_graph vs hand", d2f_da2.item(), hand_d2, 1e-12)
check("second central difference vs hand", numeric_d2, hand_d2, 1e-6)
print("  gradgradcheck(tanh(a*b + b**2)):", minidl.gradgradcheck(lambda a, b: minidl.tanh(a * b + b**2), small))

# %% [markdown]
# ## 7. The graph, as a picture and as Graphviz DOT text
#
# minidl.graph.draw saves the recorded graph as a PNG (matplotlib only): tensors are boxes
# with their name, shape, value and gradient; ops are ellipses; arrows run input -> op ->
# output, leaves on the left. Shaded blue: the leaves that require grad.
# Non-leaf tensors keep no .grad unless asked (retain_grad()), so we ask, to see df/du,
# df/dv and df/ds next to the values. backward frees the graph unless retain_graph=True,
# and a freed graph can no longer be drawn.

# %%
a = minidl.tensor(a_value, dtype=minidl.float64, device=device, requires_grad=True)
b = minidl.tensor(b_value, dtype=minidl.float64, device=device, requires_grad=True)
ab, bb = a * b, b**2
s_t = ab + bb
f = minidl.tanh(s_t)
names = {a: "a", b: "b", ab: "u = a*b", bb: "v = b**2", s_t: "s = u + v", f: "f = tanh(s)"}
for t in (ab, bb, s_t, f):
    t.retain_grad()
f.backward(retain_graph=True)
picture = minidl.graph.draw(f, out / "graph.png", names=names, title="f = tanh(a*b + b**2): values and gradients")
print(f"\n7. the graph with values and gradients: {common.show(picture)}")
print(f"  df/ds = {s_t.grad.item():+.6f} passes through Add unchanged to u and v; then "
      f"df/da = df/du * b = {a.grad.item():+.6f} and df/db = df/du * a + df/dv * 2b = {b.grad.item():+.6f}")
# The same graph as Graphviz DOT text: paste graph.dot into any Graphviz viewer, or run
#     dot -Tpng graph.dot -o graph_dot.png
dot = minidl.to_dot(f, names=names)
(out / "graph.dot").write_text(dot)
print(f"  as DOT text: {dot.count('shape=box')} ops and {dot.count('shape=ellipse')} tensors; "
      f"written to {out / 'graph.dot'}")
print("\n".join("  " + line for line in dot.splitlines()[:6]) + "\n  ...")

# %% [markdown]
# ## What to try next
#
# - Change f (e.g. add exp(a) or a / b), redo part 2 by hand, and let parts 3 and 4 check you.
# - In part 4, switch to float32 (dtype=minidl.float32): where is the best h now, and why?
# - Lesson 02 breaks an op's backward on purpose and watches gradcheck point at the element.

# %%
print("\ndone: hand, backward() and finite differences agree.")
