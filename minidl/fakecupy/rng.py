"""cupy.random in the stand-in: cuRAND's bit generators and cupy's Generator (each draw one launch)."""

from __future__ import annotations

import numpy

from minidl.fakecupy import meter
from minidl.fakecupy.arrays import _Namespace, _device, ndarray


def _drawn(values):
    meter.launch()
    return _device(numpy.asarray(values))


class _BitGenerator:
    """cupy.random's cuRAND bit generators (XORWOW, MRG32k3a, Philox4x3210): seeded as cupy seeds
    them, through numpy's SeedSequence down to one 32-bit cuRAND seed. Their state lives on the
    GPU and, as in cupy, cannot be read back (no ``state`` dict, no jump or advance)."""

    def __init__(self, seed=None, *, size=-1):
        if isinstance(seed, ndarray):
            seed = seed.get()
        sequence = seed if isinstance(seed, numpy.random.SeedSequence) else numpy.random.SeedSequence(seed)
        self._seed = sequence.generate_state(1, numpy.uint32)[0]  # cupy: "seed with the 64th bit set" breaks cuRAND
        self._bits = numpy.random.Philox(int(self._seed))  # another stream than cuRAND's; same seed, same numbers

    def random_raw(self, size=None, output=True):
        values = _drawn((self._bits.random_raw(size) & 0xFFFFFFFF).astype(numpy.int32))
        return values if output else None


class _XORWOW(_BitGenerator):
    pass


class _MRG32k3a(_BitGenerator):
    pass


class _Philox4x3210(_BitGenerator):
    pass


class _Generator:
    """cupy.random.Generator(bit_generator): random, standard_normal, uniform, integers ... all on the
    device. Like cupy's it has no permutation, choice, shuffle or normal (AttributeError)."""

    def __init__(self, bit_generator):
        if not isinstance(bit_generator, _BitGenerator):
            raise TypeError(f"cupy.random.Generator: expected a cupy BitGenerator, got {type(bit_generator).__name__}")
        self.bit_generator = bit_generator
        self._rng = numpy.random.Generator(bit_generator._bits)

    def random(self, size=None, dtype=numpy.float64, out=None):
        return _drawn(self._rng.random(size, dtype=numpy.dtype(dtype)))

    def standard_normal(self, size=None, dtype=numpy.float64, out=None):
        return _drawn(self._rng.standard_normal(size, dtype=numpy.dtype(dtype)))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=numpy.float64):
        low, high = (x._array if isinstance(x, ndarray) else numpy.asarray(x) for x in (low, high))  # host bounds copied in
        return _drawn(numpy.asarray(self._rng.uniform(low, high, size)).astype(dtype))

    def integers(self, low, high=None, size=None, dtype=numpy.int64, endpoint=False):
        low, high = (0, int(low)) if high is None else (int(low), int(high))  # cupy takes ints only
        return _drawn(self._rng.integers(low, high, size, dtype=dtype, endpoint=endpoint))


class _Random(_Namespace):
    Generator, BitGenerator = _Generator, _BitGenerator
    XORWOW, MRG32k3a, Philox4x3210 = _XORWOW, _MRG32k3a, _Philox4x3210

    def default_rng(self, seed=None):
        return _Generator(_XORWOW(seed))  # cupy's default bit generator


random = _Random(numpy.random, "cupy.random")
