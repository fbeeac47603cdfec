"""Diagnosing a wrong backward: what gradcheck compared, and the common mistakes in plain words.

When ``gradcheck`` fails for one input, the checker calls :func:`diagnose`, which measures
the same two gradients again (the same random weights v of L = sum(v * y), seed 0) and
looks for patterns that name a mistake, each only when its pattern is really there:

* a sign error: analytic / numerical is -1 on every element;
* an extra or missing mean or sum: analytic / numerical is one constant equal to N (the
  batch size), 1/N, or a broadcast count;
* gradient on elements whose true gradient is 0 (max pooling to non-winners);
* ``=`` instead of ``+=`` on overlapping windows: on a probe input where some elements are
  covered by one window and others by several, only the overlapped ones are wrong;
* one LSTM gate: every wrong element of weight_ih, weight_hh or bias in one block of rows
  (gates i, f, g, o in PyTorch's order).

It also holds :class:`NoDerivationGuard`, which refuses a backward that asks minidl to
differentiate (``minidl.grad``, ``Tensor.backward``, the engine, or an op's own backward).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import minidl
from minidl import autograd, backend
from minidl.gradcheck import _analytic, _float64_leaves, _scalar_objective

GATES = ("i", "f", "g", "o")
GATED = {"lstm_cell": ("weight_ih", "weight_hh", "bias")}  # first axis = 4 blocks of H rows
OPS_DIR = Path(minidl.__file__).resolve().parent / "ops"
AUTOGRAD_FILE = Path(autograd.__file__).resolve()


def as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def measure(fn, inputs, k, eps=1e-6, seed=0):
    """(v, numerical, analytic) for input ``k``, as gradcheck computes them (same seed, same v)."""
    inputs = _float64_leaves(inputs)
    rng = np.random.default_rng(seed)
    with autograd.no_grad():
        outputs = as_tuple(fn(*inputs))
    v = [backend.get_array_module(o.data).asarray(rng.standard_normal(o.shape)) for o in outputs]
    (analytic,) = _analytic(fn, inputs, v, [k])
    x = inputs[k]
    numerical = np.zeros(x.shape)
    flat = x.data.reshape(-1)
    for j in range(flat.size):
        original = flat[j].item()
        flat[j] = original + eps
        plus = _scalar_objective(fn, inputs, v)
        flat[j] = original - eps
        minus = _scalar_objective(fn, inputs, v)
        flat[j] = original
        numerical.reshape(-1)[j] = (plus - minus) / (2 * eps)
    return [backend.to_numpy(a) for a in v], numerical, analytic


def bad_elements(numerical, analytic, atol=1e-5, rtol=1e-3):
    error = np.abs(analytic - numerical)
    return ~(error <= atol + rtol * np.abs(numerical))


def what_is_compared(name, shape_in, v, numerical, analytic):
    """The lines that let a learner check the worst number by hand."""
    bad = bad_elements(numerical, analytic)
    overshoot = np.where(bad, np.abs(analytic - numerical), -np.inf)
    worst = np.unravel_index(np.argmax(overshoot), numerical.shape)
    index = ", ".join(str(int(i)) for i in worst)
    lines = [f"What is compared: L = sum(v * y) with fixed random weights v (gradcheck's, seed 0), "
             f"so dL/d{name} = v times the local derivative."]
    if len(v) == 1 and v[0].size == 1:
        vw = float(v[0].reshape(-1)[0])
        lines.append(f"  v = {vw:.6g} (one number: the output is a scalar)")
    elif len(v) == 1 and v[0].shape == tuple(shape_in):
        vw = float(v[0][worst])
        lines.append(f"  v at the worst element [{index}] = {vw:.6g}")
    else:
        shapes = ", ".join(str(tuple(a.shape)) for a in v)
        lines.append(f"  v has shape {shapes} (one per output); every output element feeds dL/d{name}[{index}]")
        return lines
    if vw != 0:
        lines.append(f"  implied local derivative there: numerical / v = {numerical[worst] / vw:.6g}; "
                     f"yours: analytic / v = {analytic[worst] / vw:.6g}")
    return lines


def ratio_pattern(case, k, numerical, analytic, output_shapes):
    """Sign error or a constant factor N, 1/N or a broadcast count."""
    scale = np.abs(numerical).max(initial=0.0)
    significant = np.abs(numerical) > max(1e-6, 1e-3 * scale)
    if significant.sum() < 2 and numerical.size > 1:
        return None
    ratio = analytic[significant] / numerical[significant]
    if not np.all(np.isfinite(ratio)):
        return None
    if np.all(np.abs(ratio + 1) < 1e-3):
        return ("sign error: your gradient is exactly minus the right one on every element "
                "(analytic / numerical = -1 everywhere). Look for a flipped sign or a subtraction the wrong way round.")
    c = float(ratio.mean())
    if not np.all(np.abs(ratio - c) <= 1e-3 * abs(c)) or abs(c - 1) < 1e-3 or c == 0:
        return None
    counts = {}
    first = case.arrays[0]
    if first.ndim >= 1 and first.shape[0] > 1:
        counts[int(first.shape[0])] = "N, the batch size"
    size_in = int(np.prod(case.arrays[k].shape))
    for shape in output_shapes:
        size_out = int(np.prod(shape))
        if size_in and size_out % size_in == 0 and size_out // size_in > 1:
            counts.setdefault(size_out // size_in, "the broadcast count (output elements per input element)")
    for m, what in counts.items():
        if abs(c - m) <= 1e-3 * m:
            return (f"your gradient is {m} times too large on every element ({what} = {m}): a missing mean "
                    "(divide by N) or a sum where a mean belongs.")
        if abs(c - 1 / m) <= 1e-3 / m:
            return (f"your gradient is {m} times too small on every element ({what} = {m}): an extra mean "
                    "or division by N, or a missing sum.")
    return (f"your gradient is the right one times {c:.6g} on every element: a constant factor is missing "
            "or extra.")


def zero_pattern(numerical, analytic):
    """Gradient sent to elements the output does not depend on."""
    bad = bad_elements(numerical, analytic)
    zero = numerical == 0
    if bad.any() and np.all(zero[bad]):
        count = int(bad.sum())
        return (f"your backward gives gradient to {count} element(s) whose true gradient is 0: moving them does "
                "not change the output at all (in max pooling, only each window's winner gets gradient).")
    return None


def gate_pattern(exercise_name, name, numerical, analytic):
    if name not in GATED.get(exercise_name, ()):
        return None
    bad = bad_elements(numerical, analytic)
    h = numerical.shape[0] // 4
    rows = np.nonzero(bad.reshape(numerical.shape[0], -1).any(axis=1))[0]
    blocks = set(int(r) // h for r in rows)
    if len(blocks) == 1:
        (b,) = blocks
        return (f"every wrong element of {name} lies in rows {b * h}..{(b + 1) * h - 1}: the block of gate "
                f"{GATES[b]} (gates i, f, g, o in PyTorch's order). The other three gates are right: "
                f"look at gate {GATES[b]}'s derivative and at where its block goes in da.")
    return None


def coverage(shape, kernel, stride, padding=0):
    """How many windows cover each element of an (H, W) input."""
    (h, w), (kh, kw) = shape, kernel
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    count = np.zeros((h + 2 * padding, w + 2 * padding), dtype=int)
    for p in range(kh):
        for q in range(kw):
            count[p : p + stride * oh : stride, q : q + stride * ow : stride] += 1
    return count[padding : padding + h, padding : padding + w]


def overlap_probe(exercise_name, name, fn, tensors_for):
    """``=`` instead of ``+=``: on a probe input with single and overlapped elements, only the
    overlapped ones are wrong. ``tensors_for(arrays, k)`` makes the Tensors."""
    from minidl.exercises.catalog import Case, distinct

    rng = np.random.default_rng(1)
    if exercise_name == "max_pool2d" and name == "x":
        case, k, kernel = Case((distinct(rng, (1, 2, 7, 7)),), {"kernel_size": 3, "stride": 2}), 0, (3, 3)
    elif exercise_name == "conv2d_im2col" and name == "x":
        arrays = (rng.standard_normal((1, 2, 7, 7)), rng.standard_normal((2, 2, 3, 3)), rng.standard_normal(2))
        case, k, kernel = Case(arrays, {"stride": 2, "padding": 0}), 0, (3, 3)
    else:
        return None
    try:
        _, numerical, analytic = measure(lambda *a: fn(*a, **case.options), tensors_for(case, k), k)
    except Exception:
        return None
    count = coverage(case.arrays[0].shape[2:], kernel, case.options["stride"])
    bad = bad_elements(numerical, analytic)
    overlapped = np.broadcast_to(count >= 2, bad.shape)
    if bad.any() and np.all(overlapped[bad]):
        return ("wrong only where windows overlap: on a probe input (7x7, 3x3 windows, stride 2) every element "
                "covered by one window is right and the wrong ones are all covered by two or more. Overlapping "
                "windows must ADD their gradients (+=), not overwrite them (=).")
    return None


def diagnose(exercise, case, k, fn, tensors_for):
    """Lines for the report: what is compared, then the mistakes whose pattern is there."""
    name = exercise.inputs[k]
    try:
        v, numerical, analytic = measure(lambda *a: fn(*a, **case.options), tensors_for(case, k), k)
    except Exception:
        return []
    lines = what_is_compared(name, case.arrays[k].shape, v, numerical, analytic)
    found = [
        ratio_pattern(case, k, numerical, analytic, [a.shape for a in v]),
        zero_pattern(numerical, analytic),
        gate_pattern(exercise.name, name, numerical, analytic),
    ]
    found = [f for f in found if f]
    if not found:
        overlap = overlap_probe(exercise.name, name, fn, tensors_for)
        found = [overlap] if overlap else []
    lines += [f"Diagnosis: {f}" for f in found]
    return lines


# --------------------------------------------------------------------------- #
# Refusing a backward that is not a derivation
# --------------------------------------------------------------------------- #
class NoDerivationGuard:
    """Wraps a learner's Function instance so that its backward is watched while it runs.

    The rule: a backward may compute with minidl's Tensor ops (they give values), but it may
    not ask minidl to differentiate anything: no call to ``minidl.grad``, ``Tensor.backward``
    or ``minidl.autograd.run_backward``, and no call to the ``backward`` of an op in
    ``minidl.ops`` (or a backward that is not in the learner's file at all, e.g. inherited).
    """

    def __init__(self, function, file: Path):
        self.function, self.file = function, Path(file).resolve()
        self.violation = None

    def check_class(self):
        own = getattr(type(self.function), "backward", None)
        code = getattr(own, "__code__", None)
        if code is None or Path(code.co_filename).resolve() != self.file:
            where = getattr(own, "__qualname__", "?")
            module = getattr(own, "__module__", "?")
            self.violation = (f"{type(self.function).__name__}.backward is not in your file: it is {module}.{where}, "
                              "minidl's own")
        return self.violation

    def _profile(self, frame, event, arg):
        if event != "call" or self.violation:
            return
        code = frame.f_code
        path = Path(code.co_filename)
        if code.co_name == "run_backward" and path.resolve() == AUTOGRAD_FILE:
            self.violation = "your backward runs minidl's autograd (minidl.grad, Tensor.backward or run_backward)"
        elif code.co_name == "backward" and path.parent.resolve() == OPS_DIR:
            owner = frame.f_locals.get("self")
            label = type(owner).__name__ if owner is not None else path.stem
            self.violation = f"your backward calls minidl's own {label}.backward (minidl/ops/{path.name})"

    def install(self):
        original = self.function.backward

        def watched(*grads):
            previous = sys.getprofile()
            sys.setprofile(self._profile)
            try:
                return original(*grads)
            finally:
                sys.setprofile(previous)

        self.function.backward = watched
