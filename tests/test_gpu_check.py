"""python -m minidl.gpu_check, where no GPU is needed: arguments, packing, the report, the refusal,
and (on the fake GPU, -m gpu) the kernel-vs-twin walker and a whole check with only that step."""

import io
import os
import sys
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

import minidl
from minidl import backend, kernels
from minidl.gpu_check import __main__ as cli
from minidl.gpu_check import pack, report, twins

FAKE = minidl.cuda.is_available() and getattr(backend.cupy, "__name__", "").startswith("minidl.fakecupy")
on_a_gpu = [pytest.mark.gpu, pytest.mark.skipif(not minidl.cuda.is_available(), reason="needs cupy and a GPU "
                                                "(or MINIDL_FAKE_CUDA=1)")]


# --------------------------------------------------------------------------- #
# Arguments
# --------------------------------------------------------------------------- #
def test_defaults_and_choices():
    args = cli.parse_args([])
    assert (args.data, args.part, args.skip, args.budget) == (None, "all", set(), cli.BUDGET_S)
    assert args.budget < 9 * 60
    args = cli.parse_args(["--data", "d", "--part", "fsdd", "--skip", "tests, bench"])
    assert (args.data, args.part, args.skip) == ("d", "fsdd", {"tests", "bench"})


@pytest.mark.parametrize("argv, message", [(["--part", "mnist"], "invalid choice: 'mnist'"),
                                           (["--skip", "tests,lesons"], "unknown step(s) lesons"),
                                           (["--budget", "0"], "--budget: expected a positive number")])
def test_bad_arguments_stop_with_a_message(argv, message):
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit) as stopped:
        cli.parse_args(argv)
    assert stopped.value.code == 2 and message in err.getvalue()


def test_pack_arguments():
    args = cli.parse_pack_args(["fsdd", "/src", "/out"])
    assert (args.dataset, args.source, args.out_dir) == ("fsdd", "/src", "/out")
    with redirect_stderr(io.StringIO()), pytest.raises(SystemExit):
        cli.parse_pack_args(["imagenet", "/src", "/out"])


def test_the_plan_names_the_lessons_of_each_part(tmp_path):
    steps = cli.plan(cli.parse_args(["--part", "cifar"]), tmp_path)
    assert [s[1] for s in steps] == ["twins", "tests", "bench", "lessons", "lessons"]
    lessons = [cli.shown(s[2]) for s in steps if s[1] == "lessons"]
    assert lessons[0] == f"python lessons/05_cifar10_cnn.py --device cuda --data {tmp_path}"
    assert lessons[1].startswith("python lessons/06_cifar10_resnet.py") and f"--data {tmp_path}" in lessons[1]
    assert "pytest -m gpu" in cli.shown(steps[1][2])
    assert cli.shown(steps[2][2]) == "python -m minidl.bench --device cuda"
    everything = cli.plan(cli.parse_args([]), None)
    assert [s[0] for s in everything if s[1] == "lessons"] == ["lesson 05", "lesson 06", "lesson 10", "lesson 11"]
    assert all("--data" not in s[2] for s in everything if s[2])


# --------------------------------------------------------------------------- #
# Refusing without a GPU
# --------------------------------------------------------------------------- #
def test_without_cupy_it_refuses_and_says_what_to_install(monkeypatch):
    monkeypatch.setattr(backend, "cupy", None)
    err = io.StringIO()
    with redirect_stderr(err):
        assert cli.main(["--skip", "tests"]) == 2
    assert "cupy is not installed" in err.getvalue() and "[cuda12]" in err.getvalue()
    assert "MINIDL_FAKE_CUDA=1" in err.getvalue()


@pytest.mark.skipif(not FAKE, reason="needs the fake GPU installed (MINIDL_FAKE_CUDA=1)")
@pytest.mark.gpu
def test_the_fake_gpu_is_not_taken_for_a_gpu():
    assert "minidl.fakecupy stands in for cupy" in cli.refusal(allow_fake=False)
    assert cli.refusal(allow_fake=True) == ""


# --------------------------------------------------------------------------- #
# Packing a dataset
# --------------------------------------------------------------------------- #
def make_tiny_cifar(root):
    rng = np.random.default_rng(0)
    files = {}
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            for k in range(3):
                path = root / "cifar10-jpeg" / split / name / f"{k:04d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                files[path.relative_to(root / "cifar10-jpeg").as_posix()] = data = rng.bytes(int(rng.integers(0, 900)))
                path.write_bytes(data)
    (root / "cifar10-jpeg" / ".cache").mkdir()
    (root / "cifar10-jpeg" / ".cache" / "decoded.npz").write_bytes(b"not packed")
    return files


def read_tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("from_folder", [False, True])
def test_pack_and_unpack_give_back_every_file(tmp_path, from_folder):
    files = make_tiny_cifar(tmp_path / "src")
    source = tmp_path / "src" / "cifar10-jpeg" if from_folder else tmp_path / "src"
    archive = pack.pack("cifar10", source, tmp_path / "out")
    assert archive == tmp_path / "out" / "cifar10.minidl-pack.npz"
    assert pack.archives_in(tmp_path / "out") == [archive] == pack.archives_in(archive)
    folder = pack.unpack(archive, tmp_path / "data")
    assert folder == tmp_path / "data" / "cifar10-jpeg"
    assert read_tree(folder) == files  # every byte; the hidden .cache left out
    (folder / "train" / "cat" / "0000.jpg").unlink()
    assert pack.unpack(archive, tmp_path / "data") == folder  # done once: the stamp says so
    assert not (folder / "train" / "cat" / "0000.jpg").exists()


def test_the_command_line_packs_and_the_check_finds_the_archive(tmp_path):
    files = make_tiny_cifar(tmp_path / "src")
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["pack", "cifar10", str(tmp_path / "src"), str(tmp_path / "out")]) == 0
    assert "packed cifar10 into" in out.getvalue() and "--data" in out.getvalue()
    with redirect_stdout(io.StringIO()):
        root = cli.resolve_data(str(tmp_path / "out"), tmp_path / "unpacked")
    assert root == tmp_path / "unpacked" and read_tree(root / "cifar10-jpeg") == files
    assert cli.resolve_data(str(tmp_path / "src"), None) == tmp_path / "src"  # a plain data root
    with pytest.raises(SystemExit, match="no such folder"):
        cli.resolve_data(str(tmp_path / "nowhere"), None)


def test_pack_refuses_what_it_cannot_do(tmp_path):
    make_tiny_cifar(tmp_path / "src")
    with pytest.raises(pack.PackError, match="expected a dataset name"):
        pack.pack("mnist", tmp_path / "src", tmp_path / "out")
    with pytest.raises(pack.PackError, match="holds 'recordings'"):
        pack.pack("fsdd", tmp_path / "src", tmp_path / "out")
    with pytest.raises(pack.PackError, match="more than the 0 MiB"):
        pack.pack("cifar10", tmp_path / "src", tmp_path / "out", limit_bytes=100)
    err = io.StringIO()
    with redirect_stderr(err):
        assert cli.main(["pack", "fsdd", str(tmp_path / "src"), str(tmp_path / "out")]) == 2
    assert "pack fsdd" in err.getvalue()


def test_unpack_refuses_paths_that_leave_the_folder(tmp_path):
    blob = np.frombuffer(b"evil", dtype=np.uint8)
    np.savez(tmp_path / "bad.minidl-pack.npz", blob=blob, offsets=np.array([0, 4]),
             paths=np.array([b"../../escape.txt"]), folder=np.array("fsdd"))
    with pytest.raises(pack.PackError, match="refusing the path"):
        pack.unpack(tmp_path / "bad.minidl-pack.npz", tmp_path / "data")
    assert not (tmp_path / "escape.txt").exists()


# --------------------------------------------------------------------------- #
# Reading the steps' output and writing the report
# --------------------------------------------------------------------------- #
LESSON_06 = ("epoch 24/24  train loss 0.61\n"
             "lesson 06 | test accuracy 91.23% (flip TTA 91.80%, reloaded 91.23%) | 24 epochs, training 201.5 s | "
             "wall time 230.2 s | peak memory 3.1 GiB (GPU pool) | device cuda:0\n")
ENV = {"date": "2026-12-06", "device": "NVIDIA H100 80GB HBM3", "cupy": "14.2.0", "runtime": "12.9",
       "driver": "13.0", "nvrtc": "12.9", "minidl": "0.1.0"}


def test_parse_lesson_reads_the_closing_line():
    fields = report.parse_lesson(LESSON_06)
    assert fields == {"lesson": "06", "accuracy": 91.23, "extra": "flip TTA 91.80 %, reloaded 91.23 %",
                      "epochs": 24, "training": 201.5, "wall": 230.2, "memory": "3.1 GiB (GPU pool)",
                      "device": "cuda:0"}
    plain = "lesson 05 | test accuracy 67.41% | 10 epochs, training 30.0 s | wall time 41.0 s | peak memory 1 GiB | device cuda:0"
    assert report.parse_lesson(plain)["extra"] == ""
    assert report.parse_lesson("Traceback ...\nRuntimeError: out of memory") is None


def test_parse_pytest_and_bench_lines():
    assert report.parse_pytest("....\n812 passed, 3 skipped, 2 deselected in 95.20s\n") == "812 passed, 3 skipped, 2 deselected"
    assert report.parse_pytest("=== 1 failed, 20 passed in 3.1s ===") == "1 failed, 20 passed"
    assert report.parse_pytest("no summary") == ""
    text = "minidl 0.1.0 bench on cuda\ncnn     batch  512: minidl   123,456 img/s  (loss 2.30 -> 2.10)\nlstm    batch   32: minidl 9 seq/s\n"
    assert report.bench_lines(text) == ["cnn     batch  512: minidl   123,456 img/s  (loss 2.30 -> 2.10)",
                                        "lstm    batch   32: minidl 9 seq/s"]


def test_the_report_is_one_intact_markdown_table_plus_lesson_rows():
    steps = [report.Step("kernels vs NumPy twins", "python -m minidl.gpu_check", "ok", 2.0, "18 / 18 cases agree"),
             report.Step("GPU half of the tests", "python -m pytest -m gpu", "failed", 95.0, "1 failed | 20 passed"),
             report.Step("bench", "python -m minidl.bench --device cuda", "skipped", 0.0, "--skip"),
             report.Step("lesson 06", "python lessons/06_cifar10_resnet.py --device cuda", "ok", 231.0, "91.23 % test",
                         report.parse_lesson(LESSON_06))]
    text = report.markdown(ENV, steps)
    assert text.startswith("### GPU check, 2026-12-06: NVIDIA H100 80GB HBM3 | CuPy 14.2.0 | CUDA runtime 12.9")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert [row.count("|") for row in rows] == [5] * 5 + [8] * 2  # no pipe inside a cell breaks a row
    assert "| bench | skipped: --skip | — |" in text
    assert rows[-1] == ("| 06 | 91.23 % test (flip TTA 91.80 %, reloaded 91.23 %), 24 epochs | 230.2 s (training "
                        "201.5 s) | 3.1 GiB (GPU pool) | one NVIDIA H100 80GB HBM3, CuPy 14.2.0 | 2026-12-06 | "
                        "`python lessons/06_cifar10_resnet.py --device cuda` |")


def test_a_step_past_its_time_is_stopped_with_its_children(tmp_path):
    script = ("import subprocess, sys, time\n"
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
              "print('working', flush=True); time.sleep(60)\n")
    status, seconds, output = cli.run_command([sys.executable, "-c", script], 3, tmp_path / "log")
    assert status == "timed out" and seconds < 30 and "working" in output
    for key in ("tests", "bench", "lessons"):
        assert cli.summarise(key, status, output, 3) == ("stopped after 3 s; last line: working", None)
    status, _, output = cli.run_command([sys.executable, "-c", "raise SystemExit('broken')"], 30, tmp_path / "log")
    assert status == "failed" and report.last_line(output) == "broken"


# --------------------------------------------------------------------------- #
# The kernel-vs-twin walker (on the fake GPU: the glue and the argument checks; on a GPU: the kernels)
# --------------------------------------------------------------------------- #
def test_every_case_names_an_entry_of_both_tables():
    for case in twins.cases():
        assert callable(getattr(kernels.NumpyBackend, case.entry)), case
        assert callable(getattr(kernels.CupyBackend, case.entry)), case
    assert {"scatter_add", "matmul", "im2col"} <= set(twins.fused_entries())
    assert twins.uncovered([twins.Case(name, None) for name in twins.fused_entries()]) == []


@pytest.mark.parametrize("case", twins.cases(), ids=lambda case: f"{case.entry}-{case.make.__name__}")
@pytest.mark.parametrize("_", [pytest.param(None, marks=on_a_gpu)], ids=["cuda"])
def test_kernel_agrees_with_its_twin(case, _):
    result = twins.run_case(case)
    assert result.ok, result.message


@pytest.mark.parametrize("_", [pytest.param(None, marks=on_a_gpu)], ids=["cuda"])
def test_the_walker_catches_a_wrong_kernel(monkeypatch, _):
    right = kernels.CupyBackend.matmul
    monkeypatch.setattr(kernels.CupyBackend, "matmul", staticmethod(lambda a, b: right(a, b) * 1.001))
    result = twins.run_case(twins.Case("matmul", twins.matmul_float32))
    assert not result.ok and "returned: " in result.message and "entries off" in result.message

    def writes_nothing(target, indices, values):
        pass  # an in-place entry that forgets to write: caught through its arguments

    monkeypatch.setattr(kernels.CupyBackend, "scatter_add", staticmethod(writes_nothing))
    result = twins.run_case(twins.Case("scatter_add", twins.scatter_add_repeated))
    assert not result.ok and result.message.startswith("args[0]: ")

    monkeypatch.setattr(kernels.CupyBackend, "matmul", staticmethod(lambda a, b: (right(a, b), right(a, b))))
    result = twins.run_case(twins.Case("matmul", twins.matmul_float32))
    assert not result.ok and "the twin gives arrays at ['returned', 'args[0]'" in result.message


@pytest.mark.parametrize("_", [pytest.param(None, marks=on_a_gpu)], ids=["cuda"])
def test_a_whole_check_with_only_the_walker(tmp_path, _):
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(["--allow-fake", "--skip", "tests,bench,lessons", "--out", str(tmp_path)])
    assert code == 0, out.getvalue()
    text = (tmp_path / "results.md").read_text()
    assert "| kernels vs NumPy twins | ok: " in text and "| lesson 05 | skipped: --skip |" in text
    assert os.path.exists(tmp_path / "results.md") and text in out.getvalue()
