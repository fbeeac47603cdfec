"""python -m minidl.exercises: list the exercises, check one (exit status 0 = passed, 1 = not yet),
ask for a hint, and, for teachers, grade a folder (JSON) or export a copy without solutions.

    python -m minidl.exercises check sigmoid
    python -m minidl.exercises hint sigmoid 2
    python -m minidl.exercises grade all --path submissions/alice --json
    python -m minidl.exercises export-student handout/
"""

from __future__ import annotations

import argparse
import json
import sys

from minidl.exercises.catalog import EXERCISES
from minidl.exercises.checker import check, exercise_directory
from minidl.exercises.grading import export_student, grade, hint


def print_list(stream=None):
    stream = sys.stdout if stream is None else stream
    print(f"Gradient-check exercises, in order (files in {exercise_directory()}):", file=stream)
    width = max(len(name) for name in EXERCISES)
    for name, e in EXERCISES.items():
        print(f"  {name:<{width}}  {e.title}", file=stream)
        print(f"  {'':<{width}}  you write: {e.to_write}", file=stream)
    print("Check one with:  python -m minidl.exercises check NAME   (add --solution for the reference)", file=stream)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m minidl.exercises",
        description="Gradient-check exercises: complete lessons/exercises/NAME.py, then check it.",
    )
    parser.add_argument("--list", action="store_true", help="list the exercises and what each asks for")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("list", help="list the exercises (same as --list)")
    checking = commands.add_parser("check", help="check one exercise (or 'all')")
    names = ", ".join(EXERCISES)
    checking.add_argument("name", choices=[*EXERCISES, "all"], metavar="NAME", help=f"one of {names}, or all")
    checking.add_argument("--solution", action="store_true", help="check the reference solution instead of your file")
    checking.add_argument("--path", default=None, help="the folder of exercise files (default: lessons/exercises)")
    checking.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    grading = commands.add_parser("grade", help="grade a folder on fresh random cases (for teachers)")
    grading.add_argument("name", nargs="?", default="all", choices=[*EXERCISES, "all"], metavar="NAME",
                         help=f"one of {names}, or all (default)")
    grading.add_argument("--path", default=None, help="the student's folder (default: lessons/exercises)")
    grading.add_argument("--seed", type=int, default=None, help="the seed of the cases (default: a random one)")
    grading.add_argument("--json", action="store_true", help="print the grades as JSON for a course tool")
    grading.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    exporting = commands.add_parser("export-student", help="copy the exercises without the solutions")
    exporting.add_argument("dir", metavar="DIR", help="a new (or empty) folder for the students' copy")
    exporting.add_argument("--path", default=None, help="the exercise folder to copy (default: lessons/exercises)")
    hinting = commands.add_parser("hint", help="one of three graded hints for an exercise")
    hinting.add_argument("name", choices=list(EXERCISES), metavar="NAME", help=f"one of {names}")
    hinting.add_argument("level", nargs="?", default="1", metavar="LEVEL",
                         help="1 (the local derivative), 2 (shapes and sums) or 3 (the formula); default 1")
    parser.subcommands = {"grade": grading, "export-student": exporting, "hint": hinting}
    return parser


def run_grade(args, parser) -> int:
    folder = exercise_directory(args.path)
    if not folder.is_dir():
        parser.error(f"no folder {folder}: pass the student's folder with --path DIR")
    names = list(EXERCISES) if args.name == "all" else [args.name]
    grades = grade(names, args.path, args.seed, args.device)
    if args.json:
        print(json.dumps(grades, indent=2))
        return 0
    print(f"Grading {folder} on fresh cases, seed {grades['seed']} (repeat with --seed {grades['seed']})")
    width = max(len(n) for n in names)
    for r in grades["exercises"]:
        print(f"  {r['exercise']:<{width}}  score {r['score']:.2f}  "
              f"({r['passed_cases']} of {r['total_cases']} cases passed; {r['status']})")
    print(f"Overall score {grades['score']:.2f}")
    return 0


def run_export(args, parser) -> int:
    try:
        copied = export_student(args.dir, args.path)
    except (OSError, ValueError) as error:
        parser.error(str(error).removeprefix("export-student: "))
    print(f"Copied to {args.dir} (without solutions): {', '.join(copied)}")
    print(f"Students check with:  python -m minidl.exercises check NAME --path {args.dir}")
    print(f"Grade a copy with:    python -m minidl.exercises grade all --path {args.dir} --json")
    return 0


def run_hint(args, parser) -> int:
    if args.level not in ("1", "2", "3"):
        parser.error(f"LEVEL must be 1, 2 or 3, got {args.level!r}")
    try:
        text = hint(args.name, int(args.level))
    except LookupError as error:
        print(error.args[0], file=sys.stderr)
        return 1
    print(f"Hint {args.level} of 3 for {args.name}: {text}")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list or args.command in (None, "list"):
        print_list()
        return 0
    runners = {"grade": run_grade, "export-student": run_export, "hint": run_hint}
    if args.command in runners:
        return runners[args.command](args, parser.subcommands[args.command])
    names = list(EXERCISES) if args.name == "all" else [args.name]
    results = []
    for name in names:
        results.append(check(name, solution=args.solution, path=args.path, device=args.device))
        if len(names) > 1:
            print()
    if len(names) > 1:
        print("Summary: " + ", ".join(f"{r.name} {r.status}" for r in results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
