"""The benchmark runs (a --smoke run of a few tiny steps); nothing is timed or compared with PyTorch here."""

import sys

import pytest

from minidl import bench


@pytest.fixture
def no_torch(monkeypatch):
    """Make ``import torch`` fail, as on a machine without the optional bench extra."""
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "minidl.bench_torch", raising=False)


def test_bench_smoke_without_torch_runs_minidl_and_says_pytorch_is_skipped(device, capsys, no_torch):
    assert bench.import_torch_side() is None
    results = bench.main(["--smoke", "--device", device])
    expected = {(name, 4) for name, _ in bench.JOBS["cuda" if device.startswith("cuda") else "cpu"]}
    assert set(results) == expected
    for result in results.values():
        assert set(result) == {"minidl"} and result["minidl"]["median"] > 0
        assert len(result["minidl"]["rounds"]) == 1 and len(result["minidl"]["loss"]) == 2
    out = capsys.readouterr().out
    assert "[smoke]" in out and "img/s" in out and "seq/s" in out
    assert "PyTorch side skipped (torch is not importable)" in out and "minidl[bench]" in out
    assert "ratio" not in out.split("\n", 2)[2]


def test_bench_no_torch_flag_skips_pytorch(capsys):
    results = bench.main(["--smoke", "--no-torch", "--which", "lstm"])
    assert set(results) == {("lstm", 4)} and "torch" not in results[("lstm", 4)]
    assert "PyTorch side skipped (--no-torch)" in capsys.readouterr().out


def test_ratio_of_medians_of_interleaved_rounds():
    assert bench.ratio_of_medians([100.0, 300.0, 200.0], [400.0, 1000.0, 500.0]) == pytest.approx(200 / 500)
    # an even number of rounds: the median is the mean of the middle two
    assert bench.ratio_of_medians([1.0, 2.0, 3.0, 10.0], [2.0, 4.0, 6.0, 8.0]) == pytest.approx(2.5 / 5.0)


def test_report_prints_throughputs_ratio_and_falling_losses():
    result = {"minidl": {"median": 700.0, "loss": (2.3, 1.5)},
              "torch": {"median": 1400.0, "loss": (2.3, 2.4)}, "ratio": 0.5}
    line = bench.report("cnn", 64, result)
    assert "minidl       700 img/s" in line and "PyTorch     1,400 img/s" in line and "ratio 0.50x" in line
    assert "minidl loss 2.300->1.500;" in line and "PyTorch loss 2.300->2.400 NOT FALLING" in line
    alone = bench.report("lstm", 32, {"minidl": {"median": 10.0, "loss": (2.0, 1.0)}})
    assert "10 seq/s" in alone and "PyTorch" not in alone and "ratio" not in alone


def test_the_same_batch_for_both_frameworks():
    x1, y1 = bench.make_batch("cnn", 8)
    x2, y2 = bench.make_batch("cnn", 8)
    assert x1.shape == (8, 3, 32, 32) and x1.dtype.name == "float32" and y1.dtype.name == "int64"
    assert (x1 == x2).all() and (y1 == y2).all()
    assert bench.make_batch("lstm", 8)[0].shape == (60, 8, 40)


def test_bench_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--steps", "0"])
    assert "--steps must be positive, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--which", "vgg"])
