"""The teacher's commands: grade (fresh random cases, scores, JSON), export-student, hint."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minidl.exercises import EXERCISES
from minidl.exercises.__main__ import main
from minidl.exercises.grading import export_student, grade, grade_one

REPO = Path(__file__).resolve().parents[1]
STUBS = REPO / "lessons" / "exercises"
SOLUTIONS = STUBS / "solutions"


def graded_json(capsys, *argv):
    assert main(["grade", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_grading_the_solutions_gives_full_marks_with_a_recorded_seed(capsys):
    grades = graded_json(capsys, "all", "--path", str(SOLUTIONS))
    assert [r["exercise"] for r in grades["exercises"]] == list(EXERCISES)
    assert grades["score"] == 1.0 and isinstance(grades["seed"], int)
    for r in grades["exercises"]:
        assert r["score"] == 1.0 and r["status"] == "passed" and r["seed"] == grades["seed"]
        assert r["passed_cases"] == r["total_cases"] == len(r["cases"]) > 0
        assert any("PASSED" in m for m in r["messages"])


def test_each_run_draws_a_fresh_seed_and_a_seed_repeats_a_grade(capsys):
    seeds = {graded_json(capsys, "sigmoid", "--path", str(SOLUTIONS))["seed"] for _ in range(3)}
    assert len(seeds) > 1
    first = graded_json(capsys, "sigmoid", "--path", str(SOLUTIONS), "--seed", "123")
    again = graded_json(capsys, "sigmoid", "--path", str(SOLUTIONS), "--seed", "123")
    assert first["seed"] == again["seed"] == 123 and first["exercises"][0]["messages"] == again["exercises"][0]["messages"]


def test_untouched_stubs_score_zero(capsys):
    grades = graded_json(capsys, "all", "--path", str(STUBS))
    assert grades["score"] == 0.0
    assert all(r["score"] == 0.0 and r["status"] == "not done" for r in grades["exercises"])


def test_a_partly_right_answer_gets_partial_credit(tmp_path):
    # '=' instead of '+=' is only wrong where max-pooling windows overlap: not in every case
    source = (SOLUTIONS / "max_pool2d.py").read_text()
    (tmp_path / "max_pool2d.py").write_text(source.replace("s] += gy.data * won", "s] = gy.data * won"))
    result = grade_one("max_pool2d", tmp_path, seed=0)
    assert result["status"] == "wrong" and 0 < result["score"] < 1
    assert result["passed_cases"] == sum(c["status"] == "passed" for c in result["cases"])
    assert result["total_cases"] == len(result["cases"])  # every case ran: no stop at the first failure


def test_a_refused_backward_scores_zero(tmp_path):
    source = (SOLUTIONS / "sigmoid.py").read_text()
    (tmp_path / "sigmoid.py").write_text(source.replace("return Sigmoid()(x)", "import minidl\n    return minidl.sigmoid(x)"))
    result = grade(["sigmoid"], tmp_path)["exercises"][0]
    assert result["status"] == "refused" and result["score"] == 0.0


def test_grading_a_missing_folder_or_exercise_says_which_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["grade", "all", "--path", "/no/such/folder"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "grade: error: no folder /no/such/folder" in err
    with pytest.raises(SystemExit):
        main(["grade", "no_such_exercise"])
    assert "grade: error: argument NAME: invalid choice" in capsys.readouterr().err


def test_the_plain_grade_report_is_a_table(capsys):
    assert main(["grade", "sigmoid", "--path", str(SOLUTIONS), "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "seed 7" in out and "sigmoid" in out and "score 1.00" in out and "Overall score 1.00" in out


def test_export_student_copies_stubs_without_solutions(tmp_path, capsys):
    destination = tmp_path / "handout"
    assert main(["export-student", str(destination)]) == 0
    assert "without solutions" in capsys.readouterr().out
    assert not (destination / "solutions").exists()
    assert (destination / "README.md").is_file()
    for name in EXERCISES:
        assert (destination / f"{name}.py").read_text() == (STUBS / f"{name}.py").read_text()
    # the copy is what a student completes; the teacher grades it with --path
    shutil.copy(SOLUTIONS / "sigmoid.py", destination / "sigmoid.py")
    result = grade(["sigmoid", "matmul"], destination)
    assert [r["score"] for r in result["exercises"]] == [1.0, 0.0]


def test_export_student_refuses_a_folder_that_is_not_empty_or_no_folder(tmp_path, capsys):
    (tmp_path / "something").write_text("x")
    with pytest.raises(SystemExit):
        main(["export-student", str(tmp_path)])
    assert "export-student: error:" in capsys.readouterr().err and "not empty" in export_error(tmp_path)
    with pytest.raises(SystemExit):
        main(["export-student"])
    assert "export-student: error: the following arguments are required: DIR" in capsys.readouterr().err


def export_error(folder):
    try:
        export_student(folder)
    except FileExistsError as error:
        return str(error)
    return ""


def test_hint_levels_and_bad_arguments(capsys):
    name = next(iter(EXERCISES))
    hints = getattr(EXERCISES[name], "graded_hints", None)
    status = main(["hint", name, "2"])
    out, err = capsys.readouterr()
    if hints:
        assert status == 0 and hints[1] in out and "Hint 2 of 3" in out
    else:  # the catalog has no graded hints yet: said plainly, no traceback
        assert status == 1 and "no graded hints yet" in err
    for bad in (["hint", name, "4"], ["hint", name, "0"], ["hint", name, "two"]):
        with pytest.raises(SystemExit):
            main(bad)
        assert "hint: error: LEVEL must be 1, 2 or 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["hint", "no_such_exercise"])
    assert "hint: error: argument NAME: invalid choice" in capsys.readouterr().err


def test_grade_runs_from_the_command_line_as_json(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run(
        [sys.executable, "-m", "minidl.exercises", "grade", "sigmoid", "--path", str(SOLUTIONS), "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    grades = json.loads(run.stdout)
    assert grades["exercises"][0]["exercise"] == "sigmoid" and grades["exercises"][0]["score"] == 1.0


def test_an_exercise_may_draw_its_own_grading_cases(tmp_path):
    import dataclasses

    from minidl.exercises import grading
    from minidl.exercises.catalog import Case

    sigmoid = EXERCISES["sigmoid"]
    drawn = []

    class WithGradingCases:  # the catalog's Exercise with a grading_cases field (frozen: a stand-in)
        def __init__(self):
            self.__dict__.update({f.name: getattr(sigmoid, f.name) for f in dataclasses.fields(sigmoid)})

        def grading_cases(self, rng):
            shape = tuple(int(n) for n in rng.integers(1, 6, 2))
            drawn.append(shape)
            return [Case((rng.standard_normal(shape),))]

    assert grading.grading_cases(EXERCISES["lstm_cell"]) == EXERCISES["lstm_cell"].cases  # no drawn shapes
    exercise = WithGradingCases()
    assert grading.grading_cases(exercise) == exercise.grading_cases
    original = EXERCISES["sigmoid"]
    EXERCISES["sigmoid"] = exercise
    try:
        result = grade_one("sigmoid", SOLUTIONS, seed=3)
    finally:
        EXERCISES["sigmoid"] = original
    assert result["score"] == 1.0 and result["total_cases"] == 1 and drawn


def test_grading_draws_shapes_where_they_are_free_and_the_solutions_pass_them():
    from minidl.exercises.catalog import EXERCISES
    from minidl.exercises.grading import grade_one, grading_cases
    from minidl.exercises.grading_shapes import DRAWERS

    for name in DRAWERS:
        draw = grading_cases(EXERCISES[name])
        shapes = {tuple(a.shape for a in case.arrays) for seed in range(6)
                  for case in draw(np.random.default_rng(seed))}
        assert len(shapes) > 3, f"{name}: grading should draw different shapes, got {shapes}"
    for seed in (1, 2):
        for name in DRAWERS:
            assert grade_one(name, path=SOLUTIONS, seed=seed)["score"] == 1.0, (name, seed)
