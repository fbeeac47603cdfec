"""Grading for teachers: fresh random cases, a score per exercise, and a student copy.

``grade`` draws each exercise's cases from the catalog's ``grading_cases(rng)`` (if an exercise
has one: it may draw shapes as well) or ``cases(rng)``, with a random seed
(printed and recorded, so a grade can be reproduced with ``--seed``), runs every case (it
does not stop at the first failure) and scores passed cases / total. An exercise not done,
refused (a backward that asks minidl to differentiate) or that cannot run scores 0.

``export_student`` copies the exercises for students (stubs, README, walkthroughs, anything
else in the folder) without ``solutions/``: the teacher's checker keeps using its own copy.
"""

from __future__ import annotations

import io
import secrets
import shutil
from pathlib import Path

import numpy as np

from minidl.exercises.catalog import EXERCISES
from minidl.exercises.checker import Checker, exercise_directory
from minidl.exercises.grading_shapes import DRAWERS

LEFT_OUT = ("solutions", "__pycache__")


def grading_cases(exercise):
    """The case drawer for grading: one that draws shapes too (the exercise's own ``grading_cases(rng)``,
    else ``grading_shapes``'s), else its ``cases(rng)`` (the practice shapes, fresh values)."""
    return getattr(exercise, "grading_cases", None) or DRAWERS.get(exercise.name) or exercise.cases


def grade_one(name: str, path=None, seed: int | None = None, device: str = "cpu") -> dict:
    """One exercise graded on cases drawn with ``seed`` (random when None): a JSON-ready dict
    with exercise, score, status, cases (number and status of each), seed and messages."""
    exercise = EXERCISES[name]
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    draw = grading_cases(exercise)
    total = len(draw(np.random.default_rng(seed)))
    file = exercise_directory(path) / f"{name}.py"
    checker = Checker(exercise, file, device, io.StringIO())
    status = checker.run(seed=seed, keep_going=True, draw=draw)
    cases = [{"case": number, "status": case_status} for number, case_status in checker.case_status]
    passed = sum(c["status"] == "passed" for c in cases)
    score = 0.0 if status in ("not done", "refused") else passed / total if total else 0.0
    return {
        "exercise": name,
        "score": round(score, 4),
        "status": status,
        "passed_cases": passed,
        "total_cases": total,
        "cases": cases,
        "seed": seed,
        "file": str(file),
        "messages": checker.lines,
    }


def grade(names, path=None, seed: int | None = None, device: str = "cpu") -> dict:
    """Grade ``names``: one random seed for the run (or ``seed``), each exercise drawn from it."""
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    results = [grade_one(name, path, seed, device) for name in names]
    total = sum(r["score"] for r in results) / len(results) if results else 0.0
    return {"seed": seed, "path": str(exercise_directory(path)), "score": round(total, 4), "exercises": results}


def export_student(destination, source=None) -> list:
    """Copy the exercise folder ``source`` (default lessons/exercises) to ``destination``, leaving
    out the solutions. Returns the names copied. Refuses a destination that is not empty."""
    source = exercise_directory(source)
    destination = Path(destination)
    if not source.is_dir():
        raise FileNotFoundError(f"export-student: no exercise folder at {source}")
    if destination.resolve() == source.resolve() or source.resolve() in destination.resolve().parents:
        raise ValueError(f"export-student: {destination} is inside the exercise folder {source}; choose another place")
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise FileExistsError(f"export-student: {destination} already exists and is not empty; choose a new folder")
    destination.mkdir(parents=True, exist_ok=True)
    copied = []
    for item in sorted(source.iterdir()):
        if item.name in LEFT_OUT or item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, destination / item.name, ignore=shutil.ignore_patterns(*LEFT_OUT))
        else:
            shutil.copy2(item, destination / item.name)
        copied.append(item.name)
    return copied


def hint(name: str, level: int) -> str:
    """The graded hint number ``level`` (1, 2 or 3) of exercise ``name``."""
    hints = getattr(EXERCISES[name], "graded_hints", None)
    if not hints:
        raise LookupError(f"hint: {name} has no graded hints yet (the catalog gives none); "
                          f"its docstring and `python -m minidl.exercises check {name}` say what to write")
    if not 1 <= level <= len(hints):
        raise LookupError(f"hint: {name} has {len(hints)} hint(s); ask for 1 to {len(hints)}")
    return hints[level - 1]
