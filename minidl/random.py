"""Random numbers whose state can be saved: ``minidl.Generator`` and the default generators.

Everything random in minidl (``randn``, ``rand``, ``randint``, dropout masks, weight
initialisation, shuffles, augmentation) draws from a ``Generator``: one default
generator per device, or one a caller makes and passes as ``generator=``. The API is
PyTorch's::

    minidl.manual_seed(0)                    # seeds every device's default generator
    state = minidl.get_rng_state()           # the CPU default generator's state
    noise = minidl.randn(3)
    minidl.set_rng_state(state)              # ... rewind it
    assert (minidl.randn(3).numpy() == noise.numpy()).all()

    g = minidl.Generator().manual_seed(42)   # a private generator, e.g. DataLoader(generator=g)
    minidl.save({"rng": minidl.get_rng_state(), "loader_rng": g.get_state()}, "ckpt.npz")

A state is plain data: a dict of strings and Python ints, so ``minidl.save`` stores it
as JSON (no pickle) and ``json.dumps`` can print it. It says which device it belongs
to, and ``set_state`` refuses one made for another device or another kind of
generator. (PyTorch returns a ByteTensor; a dict is easier to read and to check.)

CPU: numpy's ``default_rng(seed)`` (PCG64). The state is numpy's own
``bit_generator.state`` (two 128-bit ints, exact) plus the seed.

CUDA: cupy's generators keep their state in device memory (one cuRAND state per GPU
thread) with no public way to read it back or to skip ahead. So a CUDA generator is
counter-based: its state is ``(seed, draws)``, and draw number ``k`` comes from a fresh
``cupy.random.Generator(cupy.random.Philox4x3210(seed=[seed, k]))``, which is cheap to
make (Philox's set-up is a key and a counter; no skip-ahead as XORWOW needs): each
draw costs one small set-up kernel more, and a state buffer from cupy's memory pool.
Saving ``(seed, draws)`` and restoring it repeats every later draw exactly. The limits:
cupy hashes ``[seed, k]`` down to a 32-bit cuRAND seed, so two of many draws may, rarely,
share a stream (birthday odds: likely once somewhere in ~100 000 draws, harmless for
dropout masks and augmentation, wrong for anything needing independence guarantees);
and the numbers differ from the CPU's for the same seed.
"""

from __future__ import annotations

import numbers

import numpy

from minidl import backend
from minidl.backend import Device

_KIND = "minidl.Generator"
_CPU_BITS = "PCG64"
_CUDA_BITS = "Philox4x3210"


def _check_seed(seed, where: str) -> int:
    """A seed is a non-negative int (as numpy requires); bools are refused."""
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{where}: expected a non-negative integer, got {seed!r}")
    return int(seed)


def _fresh_seed() -> int:
    """A non-deterministic 64-bit seed from the operating system's entropy."""
    return int(numpy.random.SeedSequence().entropy) & (2**64 - 1)


class Generator:
    """A random number generator on one device, with a seed and a state that can be saved.

    ``Generator(device="cpu")`` starts from a non-deterministic seed (``initial_seed()``
    says which); ``manual_seed(seed)`` restarts it from ``seed`` and returns it, so
    ``Generator().manual_seed(0)`` reads as in PyTorch. ``get_state()``/``set_state()``
    save and restore it (see the module docstring for what a state holds).

    The drawing methods return raw numpy (CPU) or cupy (CUDA) arrays, with numpy's names:
    ``random``, ``standard_normal``, ``integers``, ``uniform`` and, on the CPU only,
    ``permutation`` (cupy has none; shuffles are drawn on the host).
    """

    def __init__(self, device="cpu"):
        self.device = Device(device)
        backend.check_device_usable(self.device)
        self.seed()

    # ------------------------------------------------------------------ seeding
    def manual_seed(self, seed) -> "Generator":
        """Restart from ``seed`` (a non-negative int); returns this generator."""
        self._seed = _check_seed(seed, "Generator.manual_seed")
        self._draws = 0  # CUDA: the number of draws since the seed
        self._numpy = numpy.random.default_rng(self._seed) if self.device.type == "cpu" else None
        return self

    def seed(self) -> int:
        """Restart from a non-deterministic seed, and return that seed."""
        self.manual_seed(_fresh_seed())
        return self._seed

    def initial_seed(self) -> int:
        """The seed this generator last started from."""
        return self._seed

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict:
        """This generator's state as plain data (a fresh dict: changing it changes nothing)."""
        state = {"kind": _KIND, "device": str(self.device), "seed": self._seed}
        if self.device.type == "cpu":
            numpy_state = self._numpy.bit_generator.state
            state.update(bit_generator=numpy_state["bit_generator"],
                         state=dict(numpy_state["state"]),
                         has_uint32=int(numpy_state["has_uint32"]), uinteger=int(numpy_state["uinteger"]))
        else:
            state.update(bit_generator=_CUDA_BITS, draws=self._draws)
        return state

    def set_state(self, state) -> None:
        """Continue from ``state``, as returned by ``get_state()`` on a generator on the same device.

        Everything is checked before anything changes: a state for another device or
        another kind of generator, a missing field or a number out of range raises."""
        _check_state(state, self.device, "Generator.set_state")
        self._seed = int(state["seed"])
        if self.device.type == "cpu":
            self._numpy = numpy.random.default_rng(self._seed)
            self._numpy.bit_generator.state = {
                "bit_generator": _CPU_BITS,
                "state": {"state": int(state["state"]["state"]), "inc": int(state["state"]["inc"])},
                "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"]),
            }
        else:
            self._draws = int(state["draws"])

    # ------------------------------------------------------------------ drawing
    def _next(self):
        """The numpy Generator (CPU), or a fresh cupy Generator for the next draw (CUDA)."""
        if self.device.type == "cpu":
            return self._numpy
        bits = backend.cupy.random.Philox4x3210(seed=[self._seed, self._draws])  # callers: on our GPU
        self._draws += 1
        return backend.cupy.random.Generator(bits)

    def _on_device(self):
        """A context that makes this generator's GPU the current one (nothing on the CPU)."""
        if self.device.type == "cpu":
            return _NoContext()
        return backend.cupy.cuda.Device(self.device.index)

    def random(self, size=None, dtype=numpy.float64):
        """Uniform floats in [0, 1)."""
        with self._on_device():
            return self._next().random(size, dtype=dtype)

    def standard_normal(self, size=None, dtype=numpy.float64):
        """Samples of N(0, 1)."""
        with self._on_device():
            return self._next().standard_normal(size, dtype=dtype)

    def integers(self, low, high=None, size=None, dtype=numpy.int64):
        """Uniform integers in [low, high) (in [0, low) when ``high`` is None)."""
        with self._on_device():
            return self._next().integers(low, high, size=size, dtype=dtype)

    def uniform(self, low=0.0, high=1.0, size=None, dtype=numpy.float64):
        """Uniform floats in [low, high)."""
        with self._on_device():
            if self.device.type == "cpu":
                return numpy.asarray(self._numpy.uniform(low, high, size)).astype(dtype)
            return self._next().uniform(low, high, size, dtype=dtype)

    def permutation(self, x):
        """A shuffled ``numpy.arange(x)`` (or a shuffled copy of the array ``x``): CPU only."""
        if self.device.type != "cpu":
            raise RuntimeError(
                f"Generator.permutation: only a CPU generator can shuffle (cupy has no permutation), "
                f"this one is on '{self.device}'; use minidl.Generator('cpu')"
            )
        return self._numpy.permutation(x)

    def __repr__(self) -> str:
        return f"minidl.Generator(device='{self.device}', initial_seed={self._seed})"


class _NoContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# --------------------------------------------------------------------------- #
# Checking a state before it is used
# --------------------------------------------------------------------------- #
def _check_int(value, where: str, name: str, bits: int) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not 0 <= value < 2**bits:
        raise ValueError(f"{where}: expected {name} to be an integer in [0, 2**{bits}), got {value!r}")


def _check_state(state, device: Device, where: str) -> None:
    """Raise a clear error unless ``state`` is a whole Generator state for ``device``."""
    if not isinstance(state, dict):
        raise TypeError(
            f"{where}: expected a dict from Generator.get_state() or minidl.get_rng_state(), "
            f"got {type(state).__name__}"
        )
    if state.get("kind") != _KIND:
        raise ValueError(f"{where}: expected a state with kind {_KIND!r}, got kind {state.get('kind')!r}")
    if state.get("device") != str(device):
        raise ValueError(
            f"{where}: this state belongs to a generator on device {state.get('device')!r}, "
            f"not on '{device}' (each device has its own generator and state)"
        )
    bits = _CPU_BITS if device.type == "cpu" else _CUDA_BITS
    if state.get("bit_generator") != bits:
        raise ValueError(f"{where}: expected a {bits} state for '{device}', got {state.get('bit_generator')!r}")
    _check_int(state.get("seed"), where, "'seed'", 128)
    if device.type == "cuda":
        _check_int(state.get("draws"), where, "'draws'", 64)
        return
    inner = state.get("state")
    if not isinstance(inner, dict):
        raise ValueError(f"{where}: expected 'state' to be a dict with 'state' and 'inc', got {inner!r}")
    _check_int(inner.get("state"), where, "state['state']", 128)
    _check_int(inner.get("inc"), where, "state['inc']", 128)
    _check_int(state.get("has_uint32"), where, "'has_uint32'", 1)
    _check_int(state.get("uinteger"), where, "'uinteger'", 32)


# --------------------------------------------------------------------------- #
# The default generators: one per device
# --------------------------------------------------------------------------- #
_default_generators: dict = {}  # str(device) -> Generator
_seed = None  # the last seed given to manual_seed (None: each default generator seeds itself)


def default_generator(device="cpu") -> Generator:
    """The default Generator of ``device``: what randn, dropout, init and shuffles use
    when no ``generator=`` is given. Made on first use, from the last ``manual_seed``."""
    key = str(Device(device))
    if key not in _default_generators:
        made = Generator(key)
        if _seed is not None:
            made.manual_seed(_seed)
        _default_generators[key] = made
    return _default_generators[key]


def manual_seed(seed) -> Generator:
    """Seed every device's default generator (now and when first used); returns the CPU one."""
    global _seed
    _seed = _check_seed(seed, "manual_seed")
    for generator in _default_generators.values():
        generator.manual_seed(_seed)
    return default_generator("cpu")


def seed() -> int:
    """Seed every default generator from a non-deterministic seed, and return it."""
    chosen = _fresh_seed()
    manual_seed(chosen)
    return chosen


def initial_seed() -> int:
    """The seed of the CPU default generator."""
    return default_generator("cpu").initial_seed()


def get_rng_state(device="cpu") -> dict:
    """The state of ``device``'s default generator (plain data: ``minidl.save`` stores it)."""
    return default_generator(device).get_state()


def set_rng_state(state, device="cpu") -> None:
    """Restore ``device``'s default generator from ``get_rng_state(device)``."""
    _check_state(state, Device(device), "set_rng_state")
    default_generator(device).set_state(state)
