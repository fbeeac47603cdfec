"""Checkpoints: bit-exact round trips, atomic writes, and files that are not whole checkpoints."""

import math
import os
import zipfile

import numpy as np
import pytest

import minidl
from minidl.io import CheckpointError
from minidl.nn import Module, Parameter
from minidl.optim import Adam
from minidl.optim.lr_scheduler import OneCycleLR


class Tiny(Module):
    def __init__(self, device="cpu"):
        super().__init__()
        self.weight = Parameter(minidl.randn(3, 4, device=device))
        self.bias = Parameter(minidl.randn(3, device=device))
        self.register_buffer("count", minidl.zeros(1, dtype="int64", device=device))

    def forward(self, x):
        return x @ self.weight.T + self.bias


def trained(device="cpu"):
    model = Tiny(device)
    optimizer = Adam(model.parameters(), lr=0.01)
    scheduler = OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    for _ in range(2):
        optimizer.zero_grad()
        (model(minidl.ones(2, 4, device=device)) ** 2).sum().backward()
        optimizer.step()
        scheduler.step()
    return model, optimizer, scheduler


def assert_same(a, b):
    """Equal values, types and dtypes, all the way down (Tensors and arrays bit for bit)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, (minidl.Tensor, np.ndarray, np.generic)):
        x, y = (t.numpy() if isinstance(t, minidl.Tensor) else np.asarray(t) for t in (a, b))
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def test_round_trip_is_bit_exact(tmp_path, device):
    model, optimizer, scheduler = trained(device)
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": 7,
        "metadata": {"note": "héllo", "loss": 0.1 + 0.2, "nan": float("nan"), "inf": -math.inf, "flag": True,
                     "none": None, "shape": (3, 4), "empty": [], "scalar": np.float16(1.5), 12: "int key"},
        "arrays": [np.arange(6, dtype=np.uint8).reshape(2, 3), np.array(2.5), np.zeros((0, 3)),
                   np.array(["a", "bc"]), np.array([True, False])],
    }
    path = tmp_path / "ckpt.npz"
    minidl.save(checkpoint, path)
    loaded = minidl.load(path)

    assert_same(loaded, checkpoint)
    for value in loaded["model"].values():
        assert value.device == "cpu" and isinstance(value.data, np.ndarray)
    assert loaded["epoch"] == 7 and type(loaded["epoch"]) is int


def test_resuming_from_a_checkpoint_trains_identically(tmp_path):
    model, optimizer, scheduler = trained()
    minidl.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict()}, tmp_path / "c.npz")
    loaded = minidl.load(tmp_path / "c.npz")

    minidl.manual_seed(1)
    model2 = Tiny()
    optimizer2 = Adam(model2.parameters(), lr=0.5)
    scheduler2 = OneCycleLR(optimizer2, max_lr=0.1, total_steps=10)
    model2.load_state_dict(loaded["model"])
    optimizer2.load_state_dict(loaded["optimizer"])
    scheduler2.load_state_dict(loaded["scheduler"])

    for m, o, s in ((model, optimizer, scheduler), (model2, optimizer2, scheduler2)):
        for _ in range(3):
            o.zero_grad()
            (m(minidl.ones(2, 4)) ** 2).sum().backward()
            o.step()
            s.step()
    for a, b in zip(model.parameters(), model2.parameters()):
        assert a.numpy().tobytes() == b.numpy().tobytes()


def test_the_file_is_a_plain_npz_with_json_and_no_pickle(tmp_path):
    path = tmp_path / "plain.ckpt"  # the name is used as given: no ".npz" appended
    minidl.save({"w": minidl.ones(2)}, path)
    assert os.listdir(tmp_path) == ["plain.ckpt"]
    with np.load(path, allow_pickle=False) as archive:
        assert set(archive.files) == {"a0", "__minidl__"}
        np.testing.assert_array_equal(archive["a0"], [1, 1])
        assert b'"format": "minidl.checkpoint"' in archive["__minidl__"].tobytes()


def test_a_failed_save_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    minidl.save({"epoch": 1}, path)

    def broken_savez(file, **arrays):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        minidl.save({"epoch": 2}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["c.npz"]
    assert minidl.load(path) == {"epoch": 1}


def test_map_location_cpu_and_gpu_saved_checkpoints(tmp_path, device):
    weight = minidl.randn(2, 2, device=device)
    minidl.save({"w": weight}, tmp_path / "c.npz")
    for location in (None, "cpu", minidl.Device("cpu")):
        loaded = minidl.load(tmp_path / "c.npz", map_location=location)["w"]
        assert loaded.device == "cpu" and isinstance(loaded.data, np.ndarray)
    loaded = minidl.load(tmp_path / "c.npz", map_location=device)["w"]
    assert loaded.device == device and np.array_equal(loaded.numpy(), weight.numpy())


def test_truncated_files_raise_and_name_the_file(tmp_path):
    model = Tiny()
    minidl.save(model.state_dict(), tmp_path / "whole.npz")
    raw = (tmp_path / "whole.npz").read_bytes()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    for n in (0, 1, 30, len(raw) // 2, len(raw) - 23, len(raw) - 1):
        path = tmp_path / f"cut{n}.npz"
        path.write_bytes(raw[:n])
        with pytest.raises(CheckpointError, match=f"load: '.*cut{n}.npz'"):
            model.load_state_dict(minidl.load(path))
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key])


def test_corrupted_bytes_raise_or_change_nothing(tmp_path):
    """Every flipped byte is caught (CRC-32 of each entry, JSON checks) or lands where it harms no value."""
    saved = {"w": minidl.randn(4, 3), "b": np.arange(5.0), "meta": {"epoch": 3, "name": "x"}}
    minidl.save(saved, tmp_path / "whole.npz")
    raw = (tmp_path / "whole.npz").read_bytes()
    path = tmp_path / "flipped.npz"
    caught = 0
    for position in range(0, len(raw), 3):
        damaged = bytearray(raw)
        damaged[position] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:
            loaded = minidl.load(path)
        except CheckpointError as error:
            assert "flipped.npz" in str(error)
            caught += 1
            continue
        assert_same(loaded, saved | {"w": loaded["w"]})
        assert loaded["w"].numpy().tobytes() == saved["w"].numpy().tobytes()
    assert caught > len(raw) // 6


def test_foreign_files_are_refused_by_name(tmp_path):
    (tmp_path / "notes.txt").write_text("not a checkpoint at all")
    np.savez(tmp_path / "other.npz", x=np.ones(2))
    np.save(tmp_path / "single.npy", np.ones(2))
    np.savez(tmp_path / "pickled.npz", __minidl__=np.array([{"evil": 1}], dtype=object))
    with zipfile.ZipFile(tmp_path / "empty.zip", "w"):
        pass
    cases = {
        "notes.txt": "not a readable minidl checkpoint",
        "other.npz": "not a minidl checkpoint \\(no '__minidl__' entry\\)",
        "single.npy": "single .npy array",
        "pickled.npz": "truncated or corrupted",
        "empty.zip": "not a minidl checkpoint",
    }
    for name, message in cases.items():
        with pytest.raises(CheckpointError, match=f"load: '.*{name}'.*{message}"):
            minidl.load(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="load: no checkpoint at '.*missing.npz'"):
        minidl.load(tmp_path / "missing.npz")


def write_checkpoint(path, header: bytes, **arrays):
    np.savez(path, __minidl__=np.frombuffer(header, dtype=np.uint8), **arrays)


def test_damaged_descriptions_are_refused(tmp_path):
    cases = {
        "version.npz": (b'{"format": "minidl.checkpoint", "version": 99, "structure": {}}', "format version 99"),
        "json.npz": (b'{"format": "minidl.checkpoint", "vers', "truncated or corrupted"),
        "missing.npz": (b'{"format": "minidl.checkpoint", "version": 1, '
                        b'"structure": {"type": "array", "array": "a7"}}', "damaged structure description"),
        "unused.npz": (b'{"format": "minidl.checkpoint", "version": 1, '
                       b'"structure": {"type": "int", "value": 3}}', "arrays its description never uses: \\['a0'\\]"),
        "kind.npz": (b'{"format": "minidl.checkpoint", "version": 1, '
                     b'"structure": {"type": "function", "value": 3}}', "unknown entry type 'function'"),
    }
    for name, (header, message) in cases.items():
        write_checkpoint(tmp_path / name, header, a0=np.ones(1))
        with pytest.raises(CheckpointError, match=f"load: '.*{name}'.*{message}"):
            minidl.load(tmp_path / name)


def test_saving_what_cannot_be_stored_names_where_it_is(tmp_path):
    path = tmp_path / "c.npz"
    with pytest.raises(TypeError, match=r"save: cannot store a function at obj\['scheduler'\]\['f'\]"):
        minidl.save({"scheduler": {"f": lambda t: t}}, path)
    with pytest.raises(TypeError, match="save model.state_dict\\(\\), not the model"):
        minidl.save(Tiny(), path)
    with pytest.raises(TypeError, match=r"the array at obj\[0\] holds Python objects"):
        minidl.save([np.array([{}], dtype=object)], path)
    with pytest.raises(TypeError, match="dict keys must be strings or integers, got \\(1, 2\\)"):
        minidl.save({(1, 2): 3}, path)
    assert not path.exists() and os.listdir(tmp_path) == []
