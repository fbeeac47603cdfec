"""The exercise checker: run a learner's file through a numpy reference and ``gradcheck``.

For every case of an exercise (see ``catalog``) the checker

1. calls the learner's function on float64 inputs and compares the forward with the
   numpy reference, naming the worst output element when they differ;
2. for each input in turn, makes only that input require grad and runs
   ``minidl.gradcheck``; a ``GradcheckError`` is printed as it comes (which input, which
   element, numerical vs analytic, by how much) with a hint in plain words, then what was
   compared (the weights v of L = sum(v * y)) and, when the pattern is there, the mistake by
   name (``diagnose``: a sign, a factor N, gradient to non-winners, = for +=, one LSTM gate).
   Parameters (weights, biases) are checked before the inputs.

A backward that asks minidl to differentiate (minidl.grad, Tensor.backward, an op's own
backward) is refused: that is not a derivation (``diagnose.NoDerivationGuard``).

An untouched stub raises NotImplementedError: the checker says "not done yet" and
repeats the stub's message, which says what to write. Any other exception is shown
with the line of the learner's file it came from.
"""

from __future__ import annotations

import re
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import minidl
from minidl import backend
from minidl.exercises.catalog import EXERCISES, Case, Exercise
from minidl.exercises.diagnose import NoDerivationGuard, diagnose
from minidl.gradcheck import GradcheckError, gradcheck

FORWARD_RTOL, FORWARD_ATOL = 1e-7, 1e-9


@dataclass
class CheckResult:
    """What one check found: ``status`` is 'passed', 'not done', 'wrong', 'refused' or 'error'.

    ``cases``: (number, status) of every case that ran (the grading mode runs them all)."""

    name: str
    status: str
    text: str
    cases: tuple = ()

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class Stop(Exception):
    """Ends a check early with a status ('not done', 'wrong', 'error')."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


# --------------------------------------------------------------------------- #
# Finding and loading the learner's file
# --------------------------------------------------------------------------- #
def exercise_directory(path=None, solution=False) -> Path:
    """Where the exercise files are: ``path`` if given, else ./lessons/exercises, the current
    folder when it is that folder, or the lessons/exercises beside the minidl package.
    ``solution`` looks in the ``solutions`` folder inside it."""
    if path is not None:
        base = Path(path)
    else:
        here = Path.cwd()
        beside_package = Path(minidl.__file__).resolve().parents[1] / "lessons" / "exercises"
        candidates = [here / "lessons" / "exercises", beside_package]
        if here.name == "exercises":
            candidates.insert(0, here)
        base = next((c for c in candidates if c.is_dir()), candidates[0])
    return base / "solutions" if solution else base


def load_file(file: Path) -> types.ModuleType:
    """Run the learner's file as a fresh module (never a cached copy: edits show at once)."""
    module = types.ModuleType(f"minidl_exercise_{file.stem}")
    module.__file__ = str(file)
    code = compile(file.read_text(encoding="utf-8"), str(file), "exec")
    exec(code, module.__dict__)
    return module


def where_in(error: BaseException, file: Path, code: bool = True) -> str:
    """' (line 42 of sigmoid.py, in backward: the code)' for the deepest frame in ``file``."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename) == file]
    if not frames:
        return ""
    f = frames[-1]
    line = f": {f.line.strip()}" if code and f.line else ""
    return f" (line {f.lineno} of {file.name}, in {f.name}{line})"


# --------------------------------------------------------------------------- #
# Checking
# --------------------------------------------------------------------------- #
class Checker:
    def __init__(self, exercise: Exercise, file: Path, device: str, stream):
        self.exercise, self.file, self.device, self.stream = exercise, file, minidl.Device(device), stream
        self.lines = []

    def say(self, line=""):
        self.lines.append(line)
        print(line, file=self.stream)

    def run(self, seed: int = 0, keep_going: bool = False, draw=None) -> str:
        """Check every case drawn with ``seed`` (by ``draw(rng)``, default the exercise's ``cases``);
        stop at the first failure unless ``keep_going`` (``self.case_status``: each case's status)."""
        e = self.exercise
        self.case_status = []
        self.say(f"Checking {e.name}: {e.title}")
        self.say(f"  file: {self.file}")
        if not self.file.is_file():
            self.say(f"  cannot find {self.file}: run from the repository root, or pass --path DIR")
            return "error"
        try:
            module = load_file(self.file)
        except NotImplementedError as error:
            return self.not_done("importing the file", error)
        except Exception as error:  # a syntax or import error in the learner's file
            where = where_in(error, self.file)
            self.say(f"  importing {self.file.name} failed: {type(error).__name__}: {error}{where}")
            return "error"
        fn = getattr(module, e.entry, None)
        if not callable(fn):
            self.say(f"  {self.file.name} defines no function {e.entry}(...): the checker calls it; put it back")
            return "error"
        cases = (draw or e.cases)(np.random.default_rng(seed))
        worst = "passed"
        for number, case in enumerate(cases, 1):
            self.say(f"  case {number} of {len(cases)}: {describe(e, case)}")
            try:
                self.check_forward(fn, case)
                self.check_backward(fn, case)
                self.case_status.append((number, "passed"))
            except Stop as stop:
                self.case_status.append((number, stop.status))
                if not keep_going or stop.status in ("not done", "refused"):
                    return stop.status
                worst = stop.status if worst == "passed" else worst
        if worst != "passed":
            return worst
        self.say(f"PASSED {e.name}: the forward matches numpy and gradcheck agrees with every gradient. Well done!")
        return "passed"

    def tensors(self, case: Case, grad_for=None):
        """The case's arrays as Tensors on the device; only input number ``grad_for`` requires grad."""
        return [
            minidl.Tensor.wrap(backend.to_device(a, self.device)).requires_grad_(k == grad_for)
            for k, a in enumerate(case.arrays)
        ]

    def call(self, fn, case, stage, args):
        """fn(*args, **options), turning a stub's NotImplementedError or a crash into a report."""
        try:
            return fn(*args, **case.options)
        except NotImplementedError as error:
            raise Stop(self.not_done(stage, error)) from None
        except Exception as error:
            self.crashed(stage, error)

    def crashed(self, stage, error, hint_for="forward"):
        self.say(f"    {stage} failed with {type(error).__name__}: {error}{where_in(error, self.file)}")
        hint = self.exercise.hints.get(hint_for)
        if hint:
            self.say(f"      hint: {hint}")
        self.say(f"FAILED {self.exercise.name}: fix the {stage} in {self.file.name} and run the checker again.")
        raise Stop("error") from None

    def not_done(self, stage, error) -> str:
        self.say(f"    {stage}: not done yet{where_in(error, self.file, code=False)}.")
        self.say(f"    To write: {error}")
        self.say(f"NOT DONE YET {self.exercise.name}: write {self.exercise.to_write} in {self.file.name} "
                 "(its docstring states the forward, the shapes and what to derive), then run the checker again.")
        return "not done"

    def check_forward(self, fn, case):
        e = self.exercise
        with minidl.no_grad():
            got = self.call(fn, case, "forward", self.tensors(case))
        got = got if isinstance(got, tuple) else (got,)
        expected = e.reference(*case.arrays, **case.options)
        expected = expected if isinstance(expected, tuple) else (expected,)
        if len(got) != len(expected) or not all(isinstance(g, minidl.Tensor) for g in got):
            kinds = ", ".join(type(g).__name__ for g in got)
            wanted = f"{len(expected)} Tensor(s) ({', '.join(e.outputs)})"
            self.wrong("forward", f"{e.entry} should return {wanted}, got {kinds}")
        for name, g, want in zip(e.outputs, got, expected):
            if g.shape != want.shape:
                self.wrong("forward", f"{name} has shape {g.shape}, expected {want.shape}")
            if g.dtype != np.float64:
                self.wrong("forward", f"{name} has dtype {g.dtype}, expected float64 like the inputs")
            values = g.numpy()
            error = np.abs(values - want)
            if not np.all(error <= FORWARD_ATOL + FORWARD_RTOL * np.abs(want)):
                worst = np.unravel_index(np.argmax(np.where(np.isnan(error), np.inf, error)), want.shape)
                self.wrong(
                    "forward",
                    f"{name}{[int(i) for i in worst]} is {values[worst]:.6g} but the numpy reference gives "
                    f"{want[worst]:.6g} (off by {error[worst]:.3g})",
                )
        largest = max(float(np.abs(g.numpy() - w).max(initial=0.0)) for g, w in zip(got, expected))
        self.say(f"    forward   ok: matches the numpy reference (largest difference {largest:.2g})")

    def check_backward(self, fn, case):
        e = self.exercise
        checked = []
        for k in parameters_first(e.inputs):
            name, array = e.inputs[k], case.arrays[k]
            if array.dtype.kind != "f":
                continue  # integer inputs (class targets) have no gradient
            self.probe(fn, case, k, name)
            try:
                gradcheck(lambda *args: fn(*args, **case.options), self.tensors(case, grad_for=k), names=e.inputs)
            except GradcheckError as error:
                found = diagnose(e, case, k, fn, lambda c, j: self.tensors(c, grad_for=j))
                text = explain(error, name) + "".join(f"\n      {line}" for line in found)
                self.wrong(f"backward, d/d{name}", text, hint_for=name)
            except NotImplementedError as error:
                raise Stop(self.not_done("backward", error)) from None
            except Exception as error:
                self.crashed("backward", error, hint_for=name)
            checked.append(name)
        if checked:
            self.say(f"    backward  ok: gradcheck agrees for {', '.join(checked)}")
        else:  # no array inputs (autograd_engine): the gradients are outputs, compared as the forward
            self.say("    backward  ok: the gradients are among the outputs, checked with the forward above")

    def probe(self, fn, case, k, name):
        """One backward by hand, to name the common slips (None, an array) plainly, watched by
        NoDerivationGuard: a backward that asks minidl to differentiate is refused."""
        args = self.tensors(case, grad_for=k)
        outputs = self.call(fn, case, "forward", args)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        ones = [minidl.Tensor.wrap(o.xp.ones(o.shape, dtype=o.dtype)) for o in outputs]
        function = next((o.grad_fn for o in outputs if o.grad_fn is not None), None)
        guard = NoDerivationGuard(function, self.file)
        if function is not None and guard.check_class() is None:
            guard.install()
        g, failure = None, None
        if guard.violation is None:
            try:
                (g,) = minidl.autograd.run_backward(list(outputs), ones, inputs=[args[k]])
            except Exception as error:  # named below, after the refusal (a refused backward often crashes)
                failure = error
        if guard.violation is not None:
            self.refuse(name, guard.violation)
        if failure is not None:
            self.backward_failed(failure, name)
        self.check_returned(g, name)

    def backward_failed(self, error, name):
        try:
            raise error
        except NotImplementedError as error:
            raise Stop(self.not_done("backward", error)) from None
        except TypeError as error:  # the engine refuses a raw array: a slip to name, not a crash
            if "wrap arrays as minidl.Tensor" not in str(error):
                self.crashed("backward", error, hint_for=name)
            self.wrong(f"backward, d/d{name}", f"your backward returned an array for {name}; "
                       "wrap arrays as minidl.Tensor(array)", hint_for=name)
        except Exception as error:
            self.crashed("backward", error, hint_for=name)

    def check_returned(self, g, name):
        if g is None:
            message = f"your backward returned None for {name}; it needs a gradient"
            self.wrong(f"backward, d/d{name}", message, hint_for=name)
        if not isinstance(g, minidl.Tensor):
            self.wrong(
                f"backward, d/d{name}",
                f"your backward returned a {type(g).__name__} for {name}; wrap arrays as minidl.Tensor(array)",
            )

    def refuse(self, name, violation):
        self.say(f"    backward, d/d{name}: REFUSED: that is not a derivation: {violation}.")
        self.say("      The exercise is to write the derivative yourself: compute the gradient from gy and what "
                 "forward saved, with Tensor or array operations, without asking minidl to differentiate.")
        self.say(f"REFUSED {self.exercise.name}: write {self.exercise.to_write} by hand in {self.file.name} "
                 "and run the checker again.")
        raise Stop("refused")

    def wrong(self, stage, message, hint_for="forward"):
        self.say(f"    {stage}: WRONG: {message}")
        hint = self.exercise.hints.get(hint_for)
        if hint:
            self.say(f"      hint: {hint}")
        part = stage.split(",")[0]
        self.say(f"FAILED {self.exercise.name}: fix the {part} in {self.file.name} and run the checker again.")
        raise Stop("wrong")


WORST = re.compile(r"worst element \(([^)]*)\): numerical (\S+), analytic (\S+), error (\S+)")


def explain(error: GradcheckError, name: str) -> str:
    """gradcheck's report, indented, with its worst element restated in plain words."""
    report = "\n".join("      " + line.strip() for line in str(error).splitlines())
    text = f"the gradient your backward returns for {name} is not the derivative of the forward.\n{report}"
    found = WORST.search(str(error))
    if found:
        index, numerical, analytic, off = found.groups()
        text += (
            f"\n      In words: dL/d{name}[{index.rstrip(',')}] should be {numerical} (measured by nudging that "
            f"element up and down: central differences) but your backward gives {analytic}, off by {off}."
        )
    return text


def parameters_first(names) -> list:
    """Input positions with the parameters (weights, biases) first: a wrong gate or factor shows
    most plainly in a parameter's gradient, before it spreads into the input's."""
    is_parameter = [("weight" in n or "bias" in n) for n in names]
    return [k for k in range(len(names)) if is_parameter[k]] + [k for k in range(len(names)) if not is_parameter[k]]


def describe(exercise: Exercise, case: Case) -> str:
    parts = [f"{name} {tuple(a.shape)}" for name, a in zip(exercise.inputs, case.arrays)]
    parts += [f"{key}={value}" for key, value in case.options.items()]
    return ", ".join(parts)


def check(name: str, solution: bool = False, path=None, device: str = "cpu", stream=None) -> CheckResult:
    """Check exercise ``name`` (the learner's file, or the reference solution); print and return the verdict."""
    stream = sys.stdout if stream is None else stream
    if name not in EXERCISES:
        text = f"unknown exercise {name!r}; the exercises are: {', '.join(EXERCISES)}"
        print(text, file=stream)
        return CheckResult(name, "error", text)
    try:
        backend.check_device_usable(minidl.Device(device))
    except (RuntimeError, TypeError, ValueError) as error:
        print(error, file=stream)
        return CheckResult(name, "error", str(error))
    file = exercise_directory(path, solution) / f"{name}.py"
    checker = Checker(EXERCISES[name], file, device, stream)
    status = checker.run()
    return CheckResult(name, status, "\n".join(checker.lines), tuple(getattr(checker, "case_status", ())))
