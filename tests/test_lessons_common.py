"""lessons/common.py fixes numpy's BLAS thread count (threadpoolctl, the `lessons` extra)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lessons"))
import common  # noqa: E402

threadpoolctl = pytest.importorskip("threadpoolctl", reason="the `lessons` extra (threadpoolctl) is not installed")


def _blas_threads():
    return {info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"}


def test_setup_fixes_the_blas_threads_and_zero_keeps_the_default(tmp_path):
    if not _blas_threads():
        pytest.skip("numpy reports no BLAS library to limit")
    try:
        args, _ = common.parser("test", out=str(tmp_path)).parse_known_args(["--threads", "1"])
        common.setup(args)
        assert _blas_threads() == {1}
        assert common.limit_blas_threads(0) == "library default"
    finally:
        common._blas_limit.restore_original_limits()
