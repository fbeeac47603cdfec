"""The prepared GPU check: everything worth measuring on a machine with a GPU, in under 9 minutes.

    python -m minidl.gpu_check [--data DIR] [--part cifar|fsdd|all] [--skip tests,bench] [--out DIR]
    python -m minidl.gpu_check pack cifar10|fsdd SRC_DIR OUT_DIR

The check runs, in this order, each step with its own time limit inside one budget (--budget):

    twins     every fused CuPy entry against its NumPy twin (minidl.gpu_check.twins)
    tests     the GPU half of the test suite on real CuPy: pytest -m gpu
    bench     python -m minidl.bench --device cuda
    lessons   the full lessons (default settings, --device cuda): 05 and 06 (--part cifar),
              10 and 11 (--part fsdd), or all four

and ends with one markdown report (the machine, CuPy and CUDA versions, the date, a line per
step, and the lesson rows ready for lessons/README.md), printed and written to OUT/results.md
beside each step's full log (the lessons' plots and checkpoints go to the temp folder).
``--data`` is a data root, or a pack archive (or a folder of them) made by ``pack``, which is
unpacked first (to /dev/shm when there is one). Without a GPU it refuses, saying why. How the GPU path is checked without one: docs/notes/gpu.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import minidl
from minidl import backend
from minidl.gpu_check import nvrtc, pack, report, twins

REPO = Path(minidl.__file__).resolve().parents[1]
LESSONS = {"cifar": ("05_cifar10_cnn.py", "06_cifar10_resnet.py"),
           "fsdd": ("10_spoken_digits_lstm.py", "11_spoken_digits_conv1d.py")}
STEPS = ("twins", "tests", "bench", "lessons")
BUDGET_S = 530      # all steps together: under 9 minutes, with room to start and to unpack
CAP_S = {"tests": 180, "bench": 90}  # the lessons share what is left
MIN_STEP_S = 20     # a step with less time than this left is skipped, not started


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m minidl.gpu_check",
                                description="The prepared check for a machine with a GPU (see docs/notes/gpu.md).",
                                epilog="Packing a dataset for the trip: python -m minidl.gpu_check pack cifar10|fsdd "
                                       "SRC_DIR OUT_DIR")
    p.add_argument("--data", default=None,
                   help="data root, or a pack archive or folder of them "
                        "(default: the lessons' own: $MINIDL_DATA, else ./datasets)")
    p.add_argument("--part", choices=["cifar", "fsdd", "all"], default="all",
                   help="which lessons: 05 and 06 (cifar), 10 and 11 (fsdd) or all four (default: all)")
    p.add_argument("--skip", default="", help=f"comma-separated steps to leave out, of: {','.join(STEPS)}")
    p.add_argument("--budget", type=float, default=BUDGET_S, help=f"seconds for all steps (default: {BUDGET_S})")
    p.add_argument("--out", default="runs/gpu_check", help="where the logs and results.md go (default: runs/gpu_check)")
    p.add_argument("--unpack-to", default=None, help="where pack archives are unpacked (default: /dev/shm or the temp folder)")
    p.add_argument("--allow-fake", action="store_true", help="run on minidl.fakecupy too (to test this script on a CPU)")
    args = p.parse_args(argv)
    args.skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    unknown = sorted(args.skip - set(STEPS))
    if unknown:
        p.error(f"--skip: unknown step(s) {', '.join(unknown)}; the steps are {', '.join(STEPS)}")
    if args.budget <= 0:
        p.error(f"--budget: expected a positive number of seconds, got {args.budget:g}")
    return args


def parse_pack_args(argv):
    p = argparse.ArgumentParser(prog="python -m minidl.gpu_check pack",
                                description="Pack a dataset folder into one archive (under 60 MiB) for the GPU machine.")
    p.add_argument("dataset", choices=sorted(pack.DATASETS))
    p.add_argument("source", help="the data root holding the dataset's folder, or that folder (only read)")
    p.add_argument("out_dir", help="where <dataset>.minidl-pack.npz goes "
                                   "(not git-ignored, so that a copy of the tree carries it)")
    return p.parse_args(argv)


def refusal(allow_fake: bool = False) -> str:
    """Why this machine cannot run the check ('' when it can)."""
    if backend.cupy is None:
        return ("gpu_check: cupy is not installed, so there is no GPU to check. On a machine with an NVIDIA GPU: "
                "pip install -e '.[cuda12]' (or '.[cuda13]': nvidia-smi shows the CUDA version). Without a GPU the "
                "fake one runs the GPU half of the tests: MINIDL_FAKE_CUDA=1 python -m pytest -m gpu")
    if not minidl.cuda.is_available():
        return ("gpu_check: cupy is installed but sees no GPU (nvidia-smi shows what the driver sees). Without a GPU "
                "the fake one runs the GPU half of the tests: MINIDL_FAKE_CUDA=1 python -m pytest -m gpu")
    if getattr(backend.cupy, "__name__", "").startswith("minidl.fakecupy") and not allow_fake:
        return "gpu_check: minidl.fakecupy stands in for cupy here: a CPU, not a GPU (--allow-fake runs anyway)"
    return ""


def _version(number: int) -> str:
    return f"{number // 1000}.{number % 1000 // 10}"  # CUDA's 12090 -> '12.9'


def _text(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def environment() -> dict:
    """The machine and versions the report's heading names."""
    cupy, env = backend.cupy, {"date": datetime.date.today().isoformat(), "minidl": minidl.__version__}
    lookups = {
        "device": lambda: _text(cupy.cuda.runtime.getDeviceProperties(0)["name"]),
        "cupy": lambda: cupy.__version__,
        "runtime": lambda: _version(cupy.cuda.runtime.runtimeGetVersion()),
        "driver": lambda: _version(cupy.cuda.runtime.driverGetVersion()),
        "nvrtc": lambda: "%d.%d" % nvrtc.version(),
    }
    for key, lookup in lookups.items():
        try:
            env[key] = lookup()
        except Exception:  # a stand-in without that call, no NVRTC library: say so, go on
            env[key] = "unknown"
    return env


def resolve_data(data, unpack_to=None):
    """The data root the lessons get: ``data`` itself, or where its pack archives were unpacked."""
    if data is None:
        return None
    archives = pack.archives_in(data)
    if not archives:
        if not Path(data).is_dir():
            raise SystemExit(f"gpu_check: --data {data}: no such folder, and not a pack archive")
        return Path(data)
    shm = Path("/dev/shm")
    root = Path(unpack_to) if unpack_to else (shm if shm.is_dir() and os.access(shm, os.W_OK)
                                               else Path(tempfile.gettempdir())) / "minidl-gpu-check-data"
    for archive in archives:
        started = time.perf_counter()
        folder = pack.unpack(archive, root)
        print(f"unpacked {archive} -> {folder} ({time.perf_counter() - started:.1f} s)", flush=True)
    return root


def plan(args, data_root) -> list:
    """The steps as ``(name, key, argv or None, cap in seconds or None)``; argv None: run in this process."""
    python = sys.executable
    steps = [("kernels vs NumPy twins", "twins", None, None),
             ("GPU half of the tests", "tests",
              [python, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
              + (["-n", "4"] if importlib.util.find_spec("xdist") else []), CAP_S["tests"]),
             ("bench", "bench", [python, "-m", "minidl.bench", "--device", "cuda"], CAP_S["bench"])]
    parts = ("cifar", "fsdd") if args.part == "all" else (args.part,)
    for script in (name for part in parts for name in LESSONS[part]):
        runs = Path(tempfile.gettempdir()) / "minidl-gpu-check-runs" / script[:2]  # plots and checkpoints: not brought back
        argv = [python, str(REPO / "lessons" / script), "--device", "cuda", "--out", str(runs)]
        steps.append((f"lesson {script[:2]}", "lessons", argv + (["--data", str(data_root)] if data_root else []), None))
    return steps


def shown(argv) -> str:
    """A command as a person types it: python, paths inside the repository relative to it, and
    without the lessons' --out (a scratch folder of this check's own)."""
    words = list(argv)
    if "--out" in words:
        at = words.index("--out")
        del words[at:at + 2]
    words = ["python" if word == sys.executable else word for word in words]
    words = [os.path.relpath(word, REPO) if word.startswith(str(REPO)) else word for word in words]
    return shlex.join(words)


def run_command(argv, timeout: float, log_path: Path):
    """Run argv in the repository (its own process group), output to log_path: (status, seconds, output)."""
    started = time.perf_counter()
    env = dict(os.environ)  # this checkout's minidl, even where it is not pip-installed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with open(log_path, "w") as log:
        child = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        try:
            status = "ok" if child.wait(timeout=timeout) == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # the step and anything it started (pytest's workers)
            child.wait()
            status = "timed out"
    return status, time.perf_counter() - started, Path(log_path).read_text(errors="replace")


def summarise(key: str, status: str, output: str, timeout: float):
    """(one-line summary, parsed lesson fields or None) for a finished step."""
    if status == "timed out":
        return f"stopped after {timeout:.0f} s; last line: {report.last_line(output)}", None
    if key == "tests":
        return report.parse_pytest(output) or report.last_line(output), None
    if key == "bench" and status == "ok":
        return "; ".join(report.bench_lines(output)) or report.last_line(output), None
    if key == "lessons" and status == "ok":
        fields = report.parse_lesson(output)
        if fields:
            return (f"{fields['accuracy']:.2f} % test, training {fields['training']:.1f} s, wall {fields['wall']:.1f} s, "
                    f"peak {fields['memory']}"), fields
    return report.last_line(output), None


def run_twins() -> tuple:
    started = time.perf_counter()
    try:
        results = twins.run_all()
    except Exception as error:
        return "failed", time.perf_counter() - started, f"the walker raised {type(error).__name__}: {error}"
    bad = [r for r in results if not r.ok]
    worst = max((r.max_abs_error for r in results if r.ok), default=0.0)
    summary = f"{len(results) - len(bad)} / {len(results)} cases agree (max abs error {worst:.1e})"
    summary += "".join(f"; {r.entry} ({r.case}): {r.message}" for r in bad)
    missing = twins.uncovered()
    summary += f"; no case yet for {', '.join(missing)}" if missing else ""
    return ("failed" if bad else "ok"), time.perf_counter() - started, summary


def check(args) -> int:
    why = refusal(args.allow_fake)
    if why:
        print(why, file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    print(f"gpu_check on {env['device']} (CuPy {env['cupy']}, CUDA {env['runtime']}), budget {args.budget:.0f} s",
          flush=True)
    deadline = time.perf_counter() + args.budget
    data_root = resolve_data(args.data, args.unpack_to)
    steps, done = plan(args, data_root), []
    for index, (name, key, argv, cap) in enumerate(steps):
        command = shown(argv) if argv else "python -m minidl.gpu_check  (in process)"
        left = deadline - time.perf_counter()
        lessons_left = sum(1 for later in steps[index:] if later[1] == "lessons" and later[1] not in args.skip)
        timeout = min(cap, left) if cap else (left / max(lessons_left, 1) if key == "lessons" else left)
        if key in args.skip or timeout < MIN_STEP_S:
            why = "--skip" if key in args.skip else f"only {max(left, 0):.0f} s of the budget left"
            done.append(report.Step(name, command, "skipped", 0.0, why))
        elif argv is None:
            done.append(report.Step(name, command, *run_twins()))
        else:
            print(f"{name}: {command} (up to {timeout:.0f} s)", flush=True)
            status, seconds, output = run_command(argv, timeout, out / f"{key}-{name.split()[-1]}.log")
            summary, lesson = summarise(key, status, output, timeout)
            done.append(report.Step(name, command, status, seconds, summary, lesson))
        print(f"  {done[-1].status} in {done[-1].seconds:.0f} s: {done[-1].summary}", flush=True)
    text = report.markdown(env, done)
    (out / "results.md").write_text(text)
    print("\n" + text)
    return 0 if all(step.status in ("ok", "skipped") for step in done) else 1


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["pack"]:
        args = parse_pack_args(argv[1:])
        try:
            started = time.perf_counter()
            archive = pack.pack(args.dataset, args.source, args.out_dir)
        except pack.PackError as error:
            print(error, file=sys.stderr)
            return 2
        print(f"packed {args.dataset} into {archive} ({archive.stat().st_size / 2**20:.1f} MiB, "
              f"{time.perf_counter() - started:.1f} s); on the GPU machine: "
              f"python -m minidl.gpu_check --data {archive}")
        return 0
    return check(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
