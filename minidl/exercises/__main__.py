"""python -m minidl.exercises: list the exercises or check one (exit status 0 = passed, 1 = not yet)."""

from __future__ import annotations

import argparse
import sys

from minidl.exercises.catalog import EXERCISES
from minidl.exercises.checker import check, exercise_directory


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
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.list or args.command in (None, "list"):
        print_list()
        return 0
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
