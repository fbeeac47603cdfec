"""Reading what each step of the GPU check printed, and the markdown results it ends with.

    parse_lesson(text)      the 'lesson NN | test accuracy ... | ...' line every lesson ends with
    parse_pytest(text)      pytest's summary ('812 passed, 3 skipped in 95.20s')
    bench_lines(text)       minidl.bench's result lines ('cnn     batch  512: minidl  123,456 img/s ...')
    markdown(env, steps)    the tables: one line per check, and the lesson rows for lessons/README.md
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Step(NamedTuple):
    name: str          # 'GPU half of the tests', 'lesson 05', ...
    command: str       # as a person would type it
    status: str        # 'ok', 'failed', 'timed out', 'skipped'
    seconds: float
    summary: str       # one line: what it measured or why it failed
    lesson: dict | None = None  # parse_lesson's fields, for a lesson that finished


_LESSON = re.compile(
    r"^lesson (?P<lesson>\d+) \| test accuracy (?P<accuracy>[\d.]+)%(?: \((?P<extra>[^)]*)\))? \| "
    r"(?P<epochs>\d+) epochs, training (?P<training>[\d.]+) s \| wall time (?P<wall>[\d.]+) s \| "
    r"peak memory (?P<memory>[^|]+?) \| device (?P<device>\S+)\s*$", re.M)


def parse_lesson(text: str) -> dict | None:
    """The fields of the last 'lesson NN | ...' line of a lesson's output (None if there is none)."""
    found = list(_LESSON.finditer(text))
    if not found:
        return None
    fields = found[-1].groupdict()
    fields["accuracy"] = float(fields["accuracy"])
    fields["epochs"] = int(fields["epochs"])
    fields["training"], fields["wall"] = float(fields["training"]), float(fields["wall"])
    fields["extra"] = (fields["extra"] or "").replace("%", " %")
    return fields


_PYTEST = re.compile(r"^=*\s*((?:\d+ (?:passed|failed|skipped|deselected|errors?|xfailed|xpassed|warnings?)"
                     r"(?:, )?)+)(?: in [\d.]+s)?.*$", re.M)


def parse_pytest(text: str) -> str:
    """pytest's closing counts, e.g. '812 passed, 3 skipped' ('' when it printed none)."""
    found = _PYTEST.findall(text)
    return found[-1].strip().rstrip(",") if found else ""


def bench_lines(text: str) -> list[str]:
    """minidl.bench's result lines, one per model and batch size."""
    return [line.strip() for line in text.splitlines() if re.match(r"^\s*(cnn|lstm|resnet9)\s+batch\s+\d+:", line)]


def last_line(text: str) -> str:
    """The last non-empty line (what a failed or timed-out step was doing)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _cell(text: str) -> str:
    """Text that keeps a markdown table intact (no pipes, no newlines)."""
    return " ".join(str(text).replace("|", "/").split())


def lesson_row(step: Step, env: dict) -> str:
    """One row of lessons/README.md's results table:
    | lesson | accuracy | wall time | peak memory | device | date | command |"""
    fields = step.lesson
    accuracy = f"{fields['accuracy']:.2f} % test"
    if fields["extra"]:
        accuracy += f" ({fields['extra']})"
    accuracy += f", {fields['epochs']} epochs"
    wall = f"{fields['wall']:.1f} s (training {fields['training']:.1f} s)"
    device = f"one {env['device']}, CuPy {env['cupy']}"
    return "| " + " | ".join(_cell(c) for c in (fields["lesson"], accuracy, wall, fields["memory"], device,
                                                   env["date"], f"`{step.command}`")) + " |"


def markdown(env: dict, steps: list[Step]) -> str:
    """The whole report: the machine, a table of the checks, and the lesson rows."""
    head = (f"GPU check, {env['date']}: {env['device']} | CuPy {env['cupy']} | CUDA runtime {env['runtime']}, "
            f"driver {env['driver']} | NVRTC {env['nvrtc']} | minidl {env['minidl']}")
    lines = [f"### {head}", "", "| check | result | time | command |", "|---|---|---|---|"]
    for step in steps:
        result = step.status if not step.summary else f"{step.status}: {step.summary}"
        seconds = f"{step.seconds:.0f} s" if step.status != "skipped" else "—"
        lines.append(f"| {_cell(step.name)} | {_cell(result)} | {seconds} | `{_cell(step.command)}` |")
    rows = [lesson_row(step, env) for step in steps if step.lesson]
    if rows:
        lines += ["", "Rows for lessons/README.md (Results):", "",
                  "| lesson | accuracy | wall time | peak memory | device | date | command |",
                  "|---|---|---|---|---|---|---|", *rows]
    return "\n".join(lines) + "\n"
