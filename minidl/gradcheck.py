"""Numerical gradient checking: is the backward you wrote the derivative of the forward?

For a function f and a fixed random "upstream gradient" v, the scalar L(x) = sum(v * f(x))
has dL/dx = v^T J (J the Jacobian of f). ``gradcheck`` computes that vector twice:

* analytically, with one ``backward(v)`` through your ops;
* numerically, by central differences: dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps).

and reports the worst element that differs by more than ``atol + rtol * |numerical|``.
A random v makes a wrong Jacobian show up almost surely, at the cost of one backward.

Why central differences and float64? The error of a one-sided difference shrinks like eps,
that of a central difference like eps**2 (the first error terms cancel). Rounding adds an
error of about (machine epsilon * |L|) / eps. In float64 (epsilon 1e-16) with eps = 1e-6
both errors are near 1e-10 to 1e-12, far below atol = 1e-5; in float32 (epsilon 1e-7) the
rounding error alone would be near 0.1. So every check runs in float64: inputs are
converted, and float32 parameters inside ``fn`` should be converted too (``model.double()``).

``mode='random'`` compares a single directional derivative along a random direction d,
(L(x + eps d) - L(x - eps d)) / (2 eps) against sum(dL/dx * d): two evaluations of f
instead of two per element, for inputs too large to perturb one element at a time.
"""

from __future__ import annotations

import numpy

from minidl import autograd, backend
from minidl.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numerical one."""


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _float64_leaves(inputs):
    """float64 copies of the inputs; those that required grad still do."""
    result = []
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            result.append(x)
            continue
        if x.requires_grad and x.dtype.kind != "f":
            raise TypeError(f"gradcheck: input {i} requires grad but has dtype {x.dtype}")
        data = x.data.astype(numpy.float64) if x.dtype.kind == "f" else x.data
        copy = Tensor.wrap(data.copy()).requires_grad_(x.requires_grad)
        copy.name = x.name  # so that reports can use it
        result.append(copy)
    return result


def _scalar_objective(fn, inputs, cotangents):
    """L = sum over outputs of sum(v * output), as a Python float (no graph)."""
    with autograd.no_grad():
        outputs = _as_tuple(fn(*inputs))
        return float(sum(float((o.data.astype(numpy.float64) * v).sum()) for o, v in zip(outputs, cotangents)))


def _analytic(fn, inputs, cotangents, wanted):
    outputs = _as_tuple(fn(*inputs))
    pairs = [(o, Tensor.wrap(v.astype(o.dtype))) for o, v in zip(outputs, cotangents) if o.requires_grad]
    if not pairs:  # the outputs do not depend on the inputs: the analytic gradient is zero
        return [numpy.zeros(inputs[i].shape) for i in wanted]
    grads = autograd.run_backward([o for o, _ in pairs], [v for _, v in pairs], inputs=[inputs[i] for i in wanted])
    return [
        backend.to_numpy(g.data).astype(numpy.float64) if g is not None else numpy.zeros(inputs[i].shape)
        for g, i in zip(grads, wanted)
    ]


def _describe(i, x, names):
    label = names[i] if names and i < len(names) else (x.name or f"input {i}")
    return f"{label} (shape {x.shape})"


def gradcheck(
    fn,
    inputs,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    mode: str = "full",
    names=None,
    seed: int = 0,
) -> bool:
    """Check the gradients of ``fn`` at ``inputs`` against central differences in float64.

    Parameters
    ----------
    fn : callable taking the inputs and returning a Tensor (or a tuple of Tensors).
    inputs : a Tensor or a sequence of them (and other arguments passed through as they are);
        only the Tensors with ``requires_grad=True`` are checked.
    eps : the step of the central difference.
    atol, rtol : an element fails when |analytic - numerical| > atol + rtol * |numerical|.
    raise_exception : raise ``GradcheckError`` with a report (True) or return False.
    mode : 'full' perturbs every element; 'random' checks one random directional derivative.
    names : optional names for the inputs, used in the report.

    Returns True when every checked gradient matches.
    """
    if mode not in ("full", "random"):
        raise ValueError(f"gradcheck: mode must be 'full' or 'random', got {mode!r}")
    inputs = _float64_leaves(_as_tuple(inputs))
    wanted = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not wanted:
        raise ValueError("gradcheck: no input requires grad; set requires_grad=True on the inputs to check")
    rng = numpy.random.default_rng(seed)
    with autograd.no_grad():
        outputs = _as_tuple(fn(*inputs))
    cotangents = [backend.get_array_module(o.data).asarray(rng.standard_normal(o.shape)) for o in outputs]
    analytic = _analytic(fn, inputs, cotangents, wanted)

    if mode == "random":
        return _check_direction(fn, inputs, cotangents, wanted, analytic, eps, atol, rtol, raise_exception, rng, names)

    for i, grad in zip(wanted, analytic):
        x = inputs[i]
        numerical = numpy.zeros(x.shape)
        flat = x.data.reshape(-1)  # a view: perturbing it perturbs x
        for k in range(flat.size):
            original = flat[k].item()
            flat[k] = original + eps
            plus = _scalar_objective(fn, inputs, cotangents)
            flat[k] = original - eps
            minus = _scalar_objective(fn, inputs, cotangents)
            flat[k] = original
            numerical.reshape(-1)[k] = (plus - minus) / (2 * eps)
        error = numpy.abs(grad - numerical)
        allowed = atol + rtol * numpy.abs(numerical)
        bad = ~(error <= allowed)  # NaN counts as a disagreement
        if bad.any():  # report the element furthest beyond its allowance
            overshoot = numpy.where(numpy.isnan(error), numpy.inf, error - allowed)
            worst = numpy.unravel_index(numpy.argmax(overshoot), x.shape)
            message = (
                f"gradcheck failed for {_describe(i, x, names)}: {int(bad.sum())} "
                f"of {x.numel()} element(s) disagree.\n"
                f"  worst element {tuple(int(j) for j in worst)}: numerical {numerical[worst]:.6g}, "
                f"analytic {grad[worst]:.6g}, error {error[worst]:.3g} "
                f"(allowed {atol + rtol * abs(numerical[worst]):.3g} = atol {atol:g} + rtol {rtol:g} * |numerical|)"
            )
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True


def _check_direction(fn, inputs, cotangents, wanted, analytic, eps, atol, rtol, raise_exception, rng, names):
    directions = {i: rng.standard_normal(inputs[i].shape) for i in wanted}
    originals = {i: inputs[i].data.copy() for i in wanted}

    def objective_at(step):
        for i in wanted:
            xp = inputs[i].xp
            inputs[i].data[...] = originals[i] + step * xp.asarray(directions[i])
        return _scalar_objective(fn, inputs, cotangents)

    numerical = (objective_at(eps) - objective_at(-eps)) / (2 * eps)
    objective_at(0.0)
    predicted = float(sum((g * directions[i]).sum() for g, i in zip(analytic, wanted)))
    error = abs(predicted - numerical)
    if not error <= atol + rtol * abs(numerical):
        message = (
            "gradcheck (random direction) failed: the directional derivative along a random direction "
            f"is {numerical:.6g} numerically but {predicted:.6g} from backward (error {error:.3g}); "
            f"inputs checked: {', '.join(_describe(i, inputs[i], names) for i in wanted)}. "
            "Run mode='full' on a smaller input to find the wrong element."
        )
        if raise_exception:
            raise GradcheckError(message)
        return False
    return True


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """d(outputs)/d(inputs), returned rather than stored in ``.grad`` (torch.autograd.grad's
    arguments, in its order).

    With ``create_graph=True`` the returned gradients are themselves differentiable.
    """
    outputs, inputs = _as_tuple(outputs), _as_tuple(inputs)
    if grad_outputs is None:
        for o in outputs:
            if o.numel() != 1:
                raise RuntimeError(f"grad: grad_outputs must be given for non-scalar outputs (got shape {o.shape})")
        grad_outputs = [Tensor.wrap(o.xp.ones(o.shape, dtype=o.dtype)) for o in outputs]
    grad_outputs = _check_grad_outputs(outputs, _as_tuple(grad_outputs))
    retain_graph = create_graph if retain_graph is None else retain_graph
    grads = autograd.run_backward(outputs, grad_outputs, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)
    for i, (x, g) in enumerate(zip(inputs, grads)):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {i} (shape {x.shape}) was not used to compute the outputs; pass allow_unused=True "
                "to get None for it (or check that it requires grad)"
            )
    return grads


def _check_grad_outputs(outputs, grad_outputs):
    """One grad_output per output, each shaped like its output (None: ones for a scalar output)."""
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: expected {len(outputs)} grad_outputs (one per output), got {len(grad_outputs)}")
    for i, (o, g) in enumerate(zip(outputs, grad_outputs)):
        if g is not None and tuple(g.shape) != tuple(o.shape):
            raise ValueError(
                f"grad: expected grad_outputs[{i}] of shape {tuple(o.shape)} like outputs[{i}], "
                f"got shape {tuple(g.shape)}"
            )
    return grad_outputs


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0) -> bool:
    """Check second derivatives: gradcheck of x -> d(sum(v * fn(x)))/dx, built with create_graph=True.

    This checks that each backward is itself differentiable and correct.
    """
    inputs = _float64_leaves(_as_tuple(inputs))
    wanted = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    rng = numpy.random.default_rng(seed + 1)
    with autograd.no_grad():
        outputs = _as_tuple(fn(*inputs))
    cotangents = [Tensor.wrap(o.xp.asarray(rng.standard_normal(o.shape))) for o in outputs]

    def first_derivative(*args):
        leaves = [args[i] for i in wanted]
        with autograd.enable_grad():  # gradcheck evaluates under no_grad; this needs a graph
            outs = _as_tuple(fn(*args))
            pairs = [(o, v) for o, v in zip(outs, cotangents) if o.requires_grad]
            grads = grad([o for o, _ in pairs], leaves, [v for _, v in pairs], create_graph=True, allow_unused=True)
        return tuple(g if g is not None else Tensor.wrap(x.xp.zeros(x.shape)) for g, x in zip(grads, leaves))

    try:
        return gradcheck(first_derivative, inputs, eps, atol, rtol, raise_exception, seed=seed)
    except GradcheckError as error:
        raise GradcheckError(f"gradgradcheck (second derivatives): {error}") from None
