"""The CPU stand-in for cupy now lives in minidl/fakecupy/ (read its docstring); this shim keeps
``import fakecupy`` (tests/ is on sys.path) and ``python tests/fakecupy.py SCRIPT|-m MODULE args``.

``import fakecupy`` gives the package module itself, so there is one ndarray class.
"""

import sys
from pathlib import Path

if __name__ == "__main__":  # python tests/fakecupy.py SCRIPT|-m MODULE [ARGS...], with the fake GPU
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
    from minidl.fakecupy.__main__ import main

    main(sys.argv[1:])
else:
    import minidl.fakecupy
    from minidl.fakecupy import *  # noqa: F401,F403

    sys.modules[__name__] = minidl.fakecupy
