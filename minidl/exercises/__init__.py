"""Gradient-check exercises and their checker.

The exercises are files in ``lessons/exercises/``: each is a small op whose backward (and,
for conv2d, forward) the learner writes. The checker runs a file through an independent
numpy reference (the forward) and ``minidl.gradcheck`` (the backward) and says, in plain
words, what is wrong: which input, which element, by how much.

    python -m minidl.exercises --list
    python -m minidl.exercises check sigmoid               # your lessons/exercises/sigmoid.py
    python -m minidl.exercises check sigmoid --solution    # the reference solution
    python -m minidl.exercises check all                   # every exercise
    python -m minidl.exercises hint sigmoid 2              # the second of three hints
    python -m minidl.exercises grade all --path DIR --json # teachers: fresh random cases, scores
    python -m minidl.exercises export-student DIR          # teachers: a copy without solutions

From Python: ``minidl.exercises.check('sigmoid').passed``.
"""

from minidl.exercises.catalog import EXERCISES, Case, Exercise
from minidl.exercises.checker import CheckResult, check, exercise_directory
from minidl.exercises.grading import export_student, grade

__all__ = ["EXERCISES", "Case", "CheckResult", "Exercise", "check", "exercise_directory", "export_student", "grade"]
