"""The benchmark runs (a --smoke run of a few tiny steps); no timing is asserted."""

import pytest

from minidl import bench


def test_bench_smoke_runs_both_models(device, capsys):
    results = bench.main(["--smoke", "--device", device])
    assert set(results) == {"cnn", "lstm"} and all(v > 0 for v in results.values())
    out = capsys.readouterr().out
    assert "[smoke]" in out and "img/s" in out and "seq/s" in out


def test_bench_reports_the_share_of_the_reference():
    line = bench.report("cnn", "cpu", 64, 952.0)
    assert "952 img/s" in line and "50.0% of 1,904" in line and "meets" in line
    assert "below" in bench.report("lstm", "cpu", 32, 10.0)


def test_bench_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--steps", "0"])
    assert "--steps must be positive, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--which", "resnet"])
