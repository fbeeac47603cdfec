"""Every lesson runs end to end: ``python lessons/NN_topic.py --smoke --out <tmp>`` exits 0.

Lessons are found by their file names, so a new lesson is tested as soon as it exists.
(Lesson 15 runs here as one process; its two-process smoke run, under ``mpiexec -n 2``, is in
tests/test_distributed.py.)
Deselect these (slower) runs with ``python -m pytest -m "not lessons"``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LESSONS = sorted((REPO / "lessons").glob("[0-9][0-9]_*.py"))
SHARED_DATA = REPO.parent / "shared" / "datasets"
TIMEOUT_S = 120


@pytest.mark.lessons
@pytest.mark.parametrize("lesson", LESSONS, ids=[path.stem for path in LESSONS])
def test_lesson_smoke_run(lesson, tmp_path):
    _smoke_run(lesson, [str(lesson)], tmp_path)


if os.environ.get("MINIDL_FAKE_CUDA") == "1":  # the lessons again, on minidl.fakecupy's stand-in GPU

    @pytest.mark.lessons
    @pytest.mark.gpu
    @pytest.mark.parametrize("lesson", LESSONS, ids=[path.stem for path in LESSONS])
    def test_lesson_smoke_run_on_fake_cuda(lesson, tmp_path):
        _smoke_run(lesson, ["-m", "minidl.fakecupy", str(lesson), "--device", "cuda"], tmp_path)


def _smoke_run(lesson, command, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env["MPLBACKEND"] = "Agg"  # lessons save plots; never open a window
    if SHARED_DATA.is_dir():
        env["MINIDL_DATA"] = str(SHARED_DATA)
    try:
        result = subprocess.run(
            [sys.executable, *command, "--smoke", "--out", str(tmp_path / "out")],
            cwd=REPO,  # so a lesson's default paths (e.g. ./datasets) mean what they mean for a user
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{lesson.name} --smoke took more than {TIMEOUT_S} s")
    assert result.returncode == 0, (
        f"{lesson.name} --smoke exited with {result.returncode}\n"
        f"--- stdout (end) ---\n{result.stdout[-3000:]}\n--- stderr (end) ---\n{result.stderr[-3000:]}"
    )
