"""The gradient-check exercises: untouched stubs fail helpfully, solutions pass, mistakes are named.

Also the CLI (``python -m minidl.exercises``) and the smoke run of lesson 02.
"""

import re
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minidl
from minidl.exercises import EXERCISES, check
from minidl.exercises.__main__ import main
from minidl.exercises.catalog import conv2d_reference, distinct, max_pool2d_reference
from minidl.exercises.checker import load_file

REPO = Path(__file__).resolve().parents[1]
STUBS = REPO / "lessons" / "exercises"
SOLUTIONS = STUBS / "solutions"
NAMES = list(EXERCISES)


def run_python(*args, cwd=REPO):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_there_are_twelve_exercises_each_with_a_stub_and_a_solution():
    assert len(NAMES) >= 12
    for name in NAMES:
        assert (STUBS / f"{name}.py").is_file()
        assert (SOLUTIONS / f"{name}.py").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_an_untouched_stub_fails_and_says_what_to_write(name, capsys):
    result = check(name, path=STUBS)
    printed = capsys.readouterr().out
    assert result.status == "not done" and not result.passed
    assert result.text == printed.rstrip("\n")
    assert "not done yet" in printed
    assert "To write: " in printed  # followed by the stub's own NotImplementedError message
    assert f"NOT DONE YET {name}: write {EXERCISES[name].to_write}" in printed
    assert "Traceback" not in printed


@pytest.mark.parametrize("name", NAMES)
def test_every_solution_passes(name, device, capsys):
    result = check(name, solution=True, path=STUBS, device=device)
    assert result.passed, result.text
    assert f"PASSED {name}" in capsys.readouterr().out


# The two solutions with the most index arithmetic, over shapes hypothesis draws
@given(
    n=st.integers(1, 2), c=st.integers(1, 3), f=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6),
    kh=st.integers(1, 3), kw=st.integers(1, 3), stride=st.integers(1, 3), padding=st.integers(0, 2),
)
def test_conv2d_solution_on_drawn_shapes(n, c, f, h, w, kh, kw, stride, padding):
    assume(h + 2 * padding >= kh and w + 2 * padding >= kw)
    solution = load_file(SOLUTIONS / "conv2d_im2col.py")
    rng = np.random.default_rng(n * 100 + h * 10 + w)
    x, weight, bias = rng.standard_normal((n, c, h, w)), rng.standard_normal((f, c, kh, kw)), rng.standard_normal(f)
    y = solution.conv2d(minidl.tensor(x), minidl.tensor(weight), minidl.tensor(bias), stride, padding)
    np.testing.assert_allclose(y.numpy(), conv2d_reference(x, weight, bias, stride, padding), rtol=1e-10, atol=1e-12)
    inputs = [minidl.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    assert minidl.gradcheck(lambda *t: solution.conv2d(*t, stride=stride, padding=padding), inputs)


@given(n=st.integers(1, 2), c=st.integers(1, 2), h=st.integers(1, 7), w=st.integers(1, 7),
       k=st.integers(1, 3), stride=st.integers(1, 3))
def test_max_pool2d_solution_on_drawn_shapes(n, c, h, w, k, stride):
    assume(h >= k and w >= k)
    solution = load_file(SOLUTIONS / "max_pool2d.py")
    x = distinct(np.random.default_rng(h * 10 + w), (n, c, h, w))
    y = solution.max_pool2d(minidl.tensor(x), k, stride)
    np.testing.assert_array_equal(y.numpy(), max_pool2d_reference(x, k, stride))
    assert minidl.gradcheck(lambda t: solution.max_pool2d(t, k, stride), [minidl.tensor(x, requires_grad=True)])


# --------------------------------------------------------------------------- #
# Mistakes a learner makes, and what the checker says about them
# --------------------------------------------------------------------------- #
def broken(tmp_path, name, old, new):
    """A copy of the solution with ``old`` replaced by ``new``, in tmp_path."""
    source = (SOLUTIONS / f"{name}.py").read_text()
    assert old in source
    (tmp_path / f"{name}.py").write_text(source.replace(old, new))
    if name == "conv2d_im2col":  # it loads im2col and col2im from the file beside it
        (tmp_path / "im2col_col2im.py").write_text((SOLUTIONS / "im2col_col2im.py").read_text())
    return check(name, path=tmp_path)


def test_a_wrong_gradient_names_the_input_the_element_and_the_error(tmp_path):
    result = broken(tmp_path, "sigmoid", "return gy * y * (1 - y)", "return gy * y")
    assert result.status == "wrong"
    assert "backward, d/dx: WRONG" in result.text
    assert "gradcheck failed for x (shape (4, 5))" in result.text
    assert "worst element (" in result.text and "numerical" in result.text and "analytic" in result.text
    assert "In words: dL/dx[" in result.text and "off by" in result.text
    assert "hint: " in result.text and "FAILED sigmoid" in result.text


def test_only_the_wrong_input_of_several_is_blamed(tmp_path):
    result = broken(tmp_path, "lstm_cell", "dc_new * f, da.T @ x", "dc_new, da.T @ x")
    assert result.status == "wrong"
    assert "gradcheck agrees" not in result.text  # c is the third input: x and h were fine...
    assert "backward, d/dc: WRONG" in result.text  # ...and c is named
    assert "gradcheck failed for c (shape (3, 5))" in result.text


def test_forgetting_to_sum_over_broadcast_axes_is_explained(tmp_path):
    result = broken(tmp_path, "matmul", "ga = sum_to(gy @ b.mT, a.shape)", "ga = gy @ b.mT")
    assert result.status == "error"
    assert "case 2 of 3" in result.text  # the 2-D case passes; the broadcast one does not
    assert "gradient of shape (2, 5, 3, 4) for an input of shape (2, 1, 3, 4)" in result.text
    assert "sum_to" in result.text  # the hint


def test_a_wrong_forward_names_the_output_element(tmp_path):
    old = "y = self.cols @ weight.reshape(f, -1).T + bias"
    result = broken(tmp_path, "conv2d_im2col", old, "y = self.cols @ weight.reshape(f, -1).T - bias")
    assert result.status == "wrong"
    assert "forward: WRONG: y[" in result.text and "numpy reference gives" in result.text


def test_overwriting_instead_of_adding_is_caught(tmp_path):
    result = broken(tmp_path, "max_pool2d", "s] += gy.data * won", "s] = gy.data * won")
    assert result.status == "wrong" and "d/dx: WRONG" in result.text


def test_returning_none_or_an_array_is_named_plainly(tmp_path):
    result = broken(tmp_path, "sigmoid", "return gy * y * (1 - y)", "return None")
    assert result.status == "wrong" and "returned None for x" in result.text
    result = broken(tmp_path, "sigmoid", "return gy * y * (1 - y)", "return (gy * y * (1 - y)).data")
    assert result.status == "wrong" and "wrap arrays as minidl.Tensor(array)" in result.text


def test_a_crash_shows_the_line_of_the_learners_file(tmp_path):
    result = broken(tmp_path, "sigmoid", "return gy * y * (1 - y)", "return gy * undefined_name")
    assert result.status == "error"
    assert "NameError" in result.text and "line " in result.text and "of sigmoid.py, in backward" in result.text


def test_a_syntax_error_or_a_missing_file_is_reported(tmp_path):
    result = broken(tmp_path, "sigmoid", "return gy * y * (1 - y)", "return gy * (")
    assert result.status == "error" and "importing sigmoid.py failed: SyntaxError" in result.text
    result = check("matmul", path=tmp_path / "nowhere")
    assert result.status == "error" and "cannot find" in result.text
    result = check("no_such_exercise")
    assert result.status == "error" and "unknown exercise" in result.text
    result = check("matmul", device="gpu")
    assert result.status == "error" and "Device" in result.text


# --------------------------------------------------------------------------- #
# The command line
# --------------------------------------------------------------------------- #
def test_list_names_every_exercise(capsys):
    assert main(["--list"]) == 0
    printed = capsys.readouterr().out
    for name, exercise in EXERCISES.items():
        assert name in printed and exercise.to_write in printed


def test_check_exit_status(capsys):
    assert main(["check", "sigmoid", "--solution", "--path", str(STUBS)]) == 0
    assert main(["check", "sigmoid", "--path", str(STUBS)]) == 1
    assert main(["check", "all", "--solution", "--path", str(STUBS)]) == 0
    assert "Summary: " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["check", "nonsense"])


def test_the_module_runs_from_the_command_line(tmp_path):
    listing = run_python("-m", "minidl.exercises", "--list", cwd=tmp_path)  # found beside the package
    assert listing.returncode == 0, listing.stderr
    assert all(name in listing.stdout for name in NAMES)
    passing = run_python("-m", "minidl.exercises", "check", "max_pool2d", "--solution")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    failing = run_python("-m", "minidl.exercises", "check", "max_pool2d")
    assert failing.returncode == 1 and "not done yet" in failing.stdout


# --------------------------------------------------------------------------- #
# Lesson 02
# --------------------------------------------------------------------------- #
def test_lesson_02_smoke(tmp_path):
    run = run_python("lessons/02_gradient_check.py", "--smoke", "--out", str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "central, float64" in run.stdout and "max rel error" in run.stdout
    assert "worst element (0, 2)" in run.stdout  # gradcheck names the broken element
    for png in ("finite_difference_error.png", "broken_abs_gradient.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_wrong_forward_names_the_element_with_plain_integers(tmp_path):
    result = broken(tmp_path, "sigmoid", "return 1 / (1 + xp.exp(-x))", "return 1 / (2 + xp.exp(-x))")
    assert result.status == "wrong"
    assert re.search(r"y\[\d+(, \d+)*\] is ", result.text) and "np.int64" not in result.text
