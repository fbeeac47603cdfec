"""``python -m minidl.fakecupy SCRIPT|-m MODULE [ARGS...]``: run a script or module on the stand-in GPU."""

import runpy
import sys
from pathlib import Path


def main(argv):
    import minidl.fakecupy

    minidl.fakecupy.install()
    if not argv:
        raise SystemExit("usage: python -m minidl.fakecupy SCRIPT|-m MODULE [ARGS...]")
    if argv[0] == "-m":
        sys.argv, sys.path[0] = argv[1:], str(Path.cwd())
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        sys.path[0] = str(Path(sys.argv[0]).resolve().parent)
        runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
