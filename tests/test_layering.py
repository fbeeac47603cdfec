"""Structure checks: imports only point down the layers of DESIGN.md, and every op
states its math and its derivative.

The layers, bottom to top (a module may import its own layer and those listed for it):

    backend            numpy / cupy, devices; the backend table (minidl.kernels)
    core               autograd, tensor, creation, gradcheck, graph, cuda
    ops                every differentiable op
    nn                 Module, Parameter, layers, init, functional
    optim              optimizers and schedules (they update nn's Parameters)
    audio, tools       raw-array features (audio); io, metrics, plot: backend and core only
    data               datasets and loaders: backend, core and audio, never ops/nn/optim
    top                the package root, bench, datasets' namespace, exercises: anything

The imports are read with ``ast`` (nothing is executed), including imports inside
functions, so a lazy upward import is caught too.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import minidl
import minidl.ops
from minidl.autograd import Function

PACKAGE_DIR = Path(minidl.__file__).parent

# module name prefix -> layer (the longest matching prefix wins)
LAYER_OF = {
    "minidl": "top",
    "minidl.bench": "top",
    "minidl.bench_torch": "top",
    "minidl.exercises": "top",
    "minidl.backend": "backend",
    "minidl.random": "backend",
    "minidl.checks": "backend",
    "minidl.kernels": "backend",
    "minidl.fakecupy": "top",
    "minidl.autograd": "core",
    "minidl.grad_mode": "core",
    "minidl.amp": "core",
    "minidl.tensor": "core",
    "minidl.creation": "core",
    "minidl.gradcheck": "core",
    "minidl.graph": "core",
    "minidl.cuda": "core",
    "minidl.ops": "ops",
    "minidl.nn": "nn",
    "minidl.optim": "optim",
    "minidl.audio": "audio",
    "minidl.io": "tools",
    "minidl.metrics": "tools",
    "minidl.plot": "tools",
    "minidl.data": "data",
    "minidl.datasets": "data",
}

# layer -> the layers its modules may import
MAY_IMPORT = {
    "backend": {"backend"},
    "core": {"backend", "core"},
    "ops": {"backend", "core", "ops"},
    "nn": {"backend", "core", "ops", "nn"},
    "optim": {"backend", "core", "ops", "nn", "optim"},
    "audio": {"backend", "core", "audio"},
    "tools": {"backend", "core", "tools"},
    "data": {"backend", "core", "audio", "data"},
    "top": set(LAYER_OF.values()),
}

# (importer, imported) -> why this one upward import is part of the design
ALLOWED_UPWARD = {
    ("minidl.tensor", "minidl.ops"): "Tensor's operators (a + b, a @ b) delegate to ops; "
    "the import sits at the bottom of tensor.py, after Tensor is defined",
}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        layer = LAYER_OF.get(".".join(parts[:end]))
        if layer is not None:
            return layer
    return None


def all_modules():
    """(dotted name, path) of every module under minidl/."""
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _is_module(dotted: str) -> bool:
    path = PACKAGE_DIR.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(module: str, source: str, is_package: bool = False):
    """(line, dotted name) of every minidl module that ``source`` imports."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "minidl":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..ops import y
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "minidl":
                continue
            for alias in node.names:  # `from minidl import ops` imports the module minidl.ops
                candidate = f"{base}.{alias.name}"
                yield node.lineno, candidate if _is_module(candidate) else base


def upward_imports(module: str, source: str, is_package: bool = False) -> list:
    """A readable line for every import in ``source`` that points up the layers."""
    layer = layer_of(module)
    problems = []
    for line, target in imported_modules(module, source, is_package):
        target_layer = layer_of(target)
        if target_layer in MAY_IMPORT[layer] or (module, _top_package(target)) in ALLOWED_UPWARD:
            continue
        problems.append(
            f"{module} (line {line}, layer '{layer}') imports {target} (layer '{target_layer}'): an upward import. "
            f"Layer '{layer}' may import only {sorted(MAY_IMPORT[layer])}; move the shared code down a layer, "
            "or pass the object in from the caller"
        )
    return problems


def _top_package(dotted: str) -> str:
    return ".".join(dotted.split(".")[:2])


def test_every_module_has_a_layer():
    unassigned = [name for name, _ in all_modules() if layer_of(name) is None]
    assert not unassigned, f"tests/test_layering.py: add these modules to LAYER_OF: {unassigned}"


def test_imports_point_down_the_layers():
    problems = []
    for name, path in all_modules():
        problems += upward_imports(name, path.read_text(encoding="utf-8"), is_package=path.name == "__init__.py")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "module, source, upward",
    [
        ("minidl.ops.fake", "from minidl.nn import Linear", True),
        ("minidl.ops.fake", "def f():\n    import minidl.optim.sgd\n", True),  # a lazy import counts too
        ("minidl.nn.fake", "from minidl import optim", True),
        ("minidl.data.fake", "from minidl.ops import relu", True),
        ("minidl.data.fake", "from .. import nn", True),  # relative: minidl.nn
        ("minidl.nn.fake", "from minidl import ops\nfrom minidl.tensor import Tensor", False),
        ("minidl.optim.fake", "from minidl.nn.module import Parameter", False),
        ("minidl.tensor", "from minidl import autograd, ops", False),  # the one documented exception
        ("minidl.creation", "from minidl import ops", True),
    ],
)
def test_the_checker_itself(module, source, upward):
    assert bool(upward_imports(module, source)) == upward


# --------------------------------------------------------------------------- #
# Every op states its math and its derivative
# --------------------------------------------------------------------------- #
DERIVATIVE = re.compile(r"\bd\w*\s*/\s*d|\bd\w*\s*=|\bg\w*\s*=|\bgradients?\b|\bderivative\b", re.IGNORECASE)


def op_functions():
    for info in pkgutil.iter_modules(minidl.ops.__path__):
        module = importlib.import_module(f"minidl.ops.{info.name}")
        for name, cls in vars(module).items():
            if inspect.isclass(cls) and issubclass(cls, Function) and cls.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", cls


def test_every_op_docstring_states_its_derivative():
    functions = dict(op_functions())
    assert len(functions) > 30
    missing = [name for name, cls in functions.items() if not DERIVATIVE.search(cls.__doc__ or "")]
    assert not missing, (
        f"these Functions need a docstring with their math and derivative (e.g. 'y = tanh(x);  dy/dx = 1 - y**2'): "
        f"{missing}"
    )
