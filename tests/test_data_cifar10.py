"""CIFAR10 on tiny fake canonical releases (binary, python) and image folders; the real copy when present."""

import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from minidl import datasets
from minidl.data import cifar10
from minidl.data import download as dl

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
CLASSES = list(cifar10.CLASSES)
PER_BATCH = {"data_batch_1": 3, "data_batch_2": 2, "data_batch_3": 1, "data_batch_4": 2, "data_batch_5": 4,
             "test_batch": 5}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test reads $MINIDL_DATA / $MINIDL_CACHE from the environment by accident."""
    monkeypatch.delenv(dl.DATA_ENV, raising=False)
    monkeypatch.delenv(dl.CACHE_ENV, raising=False)


def fake_batches(seed=0):
    """{batch name: (records (N, 3073) uint8, labels)} as in the canonical release."""
    rng = np.random.default_rng(seed)
    batches = {}
    for name, n in PER_BATCH.items():
        records = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
        records[:, 0] = rng.integers(0, 10, n)
        batches[name] = records
    return batches


def expected_split(batches, train):
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    records = np.concatenate([batches[n] for n in names])
    images = np.zeros((len(records), 32, 32, 3), np.uint8)
    for i, record in enumerate(records):  # written out: channel c, row h, column w
        for c in range(3):
            for h in range(32):
                images[i, h, :, c] = record[1 + c * 1024 + h * 32: 1 + c * 1024 + h * 32 + 32]
    return images, records[:, 0].astype(np.int64)


def write_binary(root, batches):
    folder = root / cifar10.BINARY_FOLDER
    folder.mkdir(parents=True)
    for name, records in batches.items():
        (folder / f"{name}.bin").write_bytes(records.tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n\n")
    return folder


class Python2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote the canonical batches: bytes as Python 2 str
    (BINSTRING) and numpy's helper as numpy.core.multiarray._reconstruct."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes_as_python2_str(self, data):
        self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(data)

    def save_global(self, obj, name=None):
        module = "numpy.core.multiarray" if obj.__name__ == "_reconstruct" else obj.__module__
        self.write(pickle.GLOBAL + f"{module}\n{obj.__name__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_bytes_as_python2_str
    dispatch[type] = save_global


def python2_pickle(value) -> bytes:
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(value)
    return buffer.getvalue()


def write_python(root, batches):
    folder = root / cifar10.PYTHON_FOLDER
    folder.mkdir(parents=True)
    for name, records in batches.items():
        batch = {"batch_label": f"fake {name}", "labels": records[:, 0].tolist(), "data": records[:, 1:].copy(),
                 "filenames": [f"img_{i}.png" for i in range(len(records))]}
        (folder / name).write_bytes(python2_pickle(batch))
    (folder / "batches.meta").write_bytes(python2_pickle({"label_names": CLASSES, "num_vis": 3072}))
    return folder


def trust_fake_python_release(monkeypatch, folder):
    """The fakes are not the official files: publish their sums for this test."""
    sums = {p.name: dl.md5sum(p) for p in folder.iterdir()}
    monkeypatch.setattr(cifar10, "PYTHON_RELEASE_MD5", sums)


def write_image_folder(root, per_class=(2, 1), classes=CLASSES, seed=0):
    """PNG files (lossless) root/{train,test}/{class}/{i}.png; returns the images written."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    written = {}
    for split, n in zip(("train", "test"), per_class):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(image).save(root / split / name / f"{i:04d}.png")
                written[(split, name, i)] = image
    return written


# --------------------------------------------------------------------------- #
# the binary release
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("train", [True, False])
def test_binary_release_layout_labels_and_order(tmp_path, train):
    batches = fake_batches()
    write_binary(tmp_path, batches)
    ds = datasets.CIFAR10(tmp_path, train=train)
    images, labels = expected_split(batches, train)
    assert ds.source == ("binary", tmp_path / cifar10.BINARY_FOLDER)
    assert ds.data.dtype == np.uint8 and ds.data.shape == (len(labels), 32, 32, 3)
    assert ds.targets.dtype == np.int64 and ds.classes == CLASSES and ds.class_to_idx["cat"] == 3
    np.testing.assert_array_equal(ds.data, images)
    np.testing.assert_array_equal(ds.targets, labels)
    image, label = ds[1]
    np.testing.assert_array_equal(image, images[1])
    assert label == labels[1] and len(ds) == len(labels)
    batch_images, batch_labels = ds[np.array([0, 2])]
    assert batch_images.shape == (2, 32, 32, 3) and list(batch_labels) == [labels[0], labels[2]]
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]


def test_as_arrays_is_nchw_float_in_unit_range(tmp_path):
    batches = fake_batches()
    write_binary(tmp_path, batches)
    ds = datasets.CIFAR10(tmp_path, train=False)
    x, y = ds.as_arrays()
    assert x.dtype == np.float32 and x.shape == (5, 3, 32, 32) and y is ds.targets
    np.testing.assert_allclose(x, ds.data.transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)
    assert ds.as_arrays(np.float64)[0].dtype == np.float64


def test_root_from_environment_and_root_pointing_at_the_folder(tmp_path, monkeypatch):
    batches = fake_batches()
    folder = write_binary(tmp_path, batches)
    monkeypatch.setenv(dl.DATA_ENV, str(tmp_path))
    assert len(datasets.CIFAR10(train=False)) == 5
    assert datasets.CIFAR10(folder, train=False).source == ("binary", folder)


def test_binary_release_errors_name_the_file(tmp_path):
    batches = fake_batches()
    folder = write_binary(tmp_path, batches)
    with open(folder / "data_batch_2.bin", "ab") as f:
        f.write(b"\x00" * 10)
    with pytest.raises(dl.CorruptFileError, match=r"data_batch_2\.bin: 6156 bytes is not a whole number"):
        datasets.CIFAR10(tmp_path)
    (folder / "data_batch_2.bin").unlink()
    with pytest.raises(dl.DatasetNotFoundError, match=r"missing data_batch_2\.bin"):
        datasets.CIFAR10(tmp_path)
    records = batches["test_batch"].copy()
    records[0, 0] = 10
    (folder / "test_batch.bin").write_bytes(records.tobytes())
    with pytest.raises(dl.CorruptFileError, match=r"test_batch\.bin: label 10 found, expected 0-9"):
        datasets.CIFAR10(tmp_path, train=False)


# --------------------------------------------------------------------------- #
# the python release
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("train", [True, False])
def test_python_release_matches_the_binary_one(tmp_path, monkeypatch, train):
    batches = fake_batches()
    trust_fake_python_release(monkeypatch, write_python(tmp_path, batches))
    ds = datasets.CIFAR10(tmp_path, train=train)
    images, labels = expected_split(batches, train)
    assert ds.source[0] == "python" and ds.classes == CLASSES
    np.testing.assert_array_equal(ds.data, images)
    np.testing.assert_array_equal(ds.targets, labels)
    assert ds.data.flags.c_contiguous


def test_python_release_refuses_files_whose_md5_is_not_the_published_one(tmp_path):
    write_python(tmp_path, fake_batches())  # the real sums do not match these fakes
    expected = cifar10.PYTHON_RELEASE_MD5["data_batch_1"]
    with pytest.raises(dl.ChecksumError, match=rf"data_batch_1: MD5 is [0-9a-f]{{32}}, expected {expected}"):
        datasets.CIFAR10(tmp_path)


class Exploit:
    def __reduce__(self):
        return (os.getcwd, ())


def test_python_release_unpickler_admits_only_numpy_arrays(tmp_path, monkeypatch):
    folder = write_python(tmp_path, fake_batches())
    (folder / "test_batch").write_bytes(pickle.dumps({"data": Exploit(), "labels": []}, protocol=2))
    trust_fake_python_release(monkeypatch, folder)
    with pytest.raises(dl.CorruptFileError, match=r"test_batch: refusing to load posix\.getcwd"):
        datasets.CIFAR10(tmp_path, train=False)
    (folder / "test_batch").write_bytes(pickle.dumps({"labels": [1]}, protocol=2))
    trust_fake_python_release(monkeypatch, folder)
    with pytest.raises(dl.CorruptFileError, match=r"test_batch: expected a dict \{'data': uint8 array"):
        datasets.CIFAR10(tmp_path, train=False)
    (folder / "test_batch").write_bytes(b"\x80\x02}q\x00(X")  # cut short
    trust_fake_python_release(monkeypatch, folder)
    with pytest.raises(dl.CorruptFileError, match="test_batch: not a readable CIFAR-10 python batch"):
        datasets.CIFAR10(tmp_path, train=False)


def test_binary_release_is_preferred_to_python_and_images(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "cifar10-jpeg", per_class=(1, 1))
    trust_fake_python_release(monkeypatch, write_python(tmp_path, fake_batches(seed=1)))
    assert datasets.CIFAR10(tmp_path).source[0] == "python"
    write_binary(tmp_path, fake_batches(seed=2))
    assert datasets.CIFAR10(tmp_path).source[0] == "binary"


# --------------------------------------------------------------------------- #
# image folders
# --------------------------------------------------------------------------- #
def test_image_folder_labels_order_and_pixels(tmp_path):
    written = write_image_folder(tmp_path / "cifar10-jpeg", per_class=(2, 1))
    train = datasets.CIFAR10(tmp_path, train=True, progress=False)
    test = datasets.CIFAR10(tmp_path, train=False, progress=False)
    assert train.source == ("images", tmp_path / "cifar10-jpeg") and train.classes == CLASSES
    assert train.data.shape == (20, 32, 32, 3) and test.data.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(train.targets, np.repeat(np.arange(10), 2))  # sorted classes, then names
    np.testing.assert_array_equal(train.data[5], written[("train", "bird", 1)])
    np.testing.assert_array_equal(test.data[3], written[("test", "cat", 0)])


def test_image_folder_cache_is_used_then_invalidated(tmp_path, monkeypatch):
    from PIL import Image

    write_image_folder(tmp_path / "cifar10-jpeg", per_class=(1, 1))
    first = datasets.CIFAR10(tmp_path, progress=False)
    caches = list((tmp_path / ".cache").glob("cifar10-train-*.npz"))
    assert len(caches) == 1
    monkeypatch.setattr(cifar10, "decode_images", lambda files, progress: pytest.fail("decoded again"))
    second = datasets.CIFAR10(tmp_path, progress=False)
    np.testing.assert_array_equal(second.data, first.data)
    np.testing.assert_array_equal(second.targets, first.targets)
    assert second.classes == CLASSES
    monkeypatch.undo()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "cifar10-jpeg" / "train" / "dog" / "9999.png")
    third = datasets.CIFAR10(tmp_path, progress=False)  # a changed folder is decoded again
    assert len(third) == 11 and len(list((tmp_path / ".cache").glob("cifar10-train-*.npz"))) == 2


def test_read_only_data_root_caches_elsewhere(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "data" / "cifar10-jpeg", per_class=(1, 1))
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "data").chmod(0o555)
    try:
        ds = datasets.CIFAR10(tmp_path / "data", train=False, progress=False)
    finally:
        (tmp_path / "data").chmod(0o755)
    assert len(ds) == 10 and not (tmp_path / "data" / ".cache").exists()
    assert len(list((tmp_path / "cache").glob("cifar10-test-*.npz"))) == 1


def test_image_folder_errors(tmp_path):
    folder = tmp_path / "cifar10-jpeg"
    write_image_folder(folder, per_class=(1, 1))
    for image in (folder / "test" / "frog").iterdir():
        image.unlink()
    with pytest.raises(dl.CorruptFileError, match=r"test/frog: class folder has no \.jpg/\.png images"):
        datasets.CIFAR10(tmp_path, train=False, progress=False)
    (folder / "test" / "frog").rmdir()
    for train in (True, False):  # a split with a missing class spoils both
        with pytest.raises(dl.CorruptFileError, match="different classes|expected 10 class folders"):
            datasets.CIFAR10(tmp_path, train=train, progress=False)
    (folder / "test" / "frog").mkdir()
    (folder / "test" / "frog" / "0000.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(dl.CorruptFileError, match=r"frog/0000\.png: cannot decode image"):
        datasets.CIFAR10(tmp_path, train=False, progress=False)
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "test" / "frog" / "0001.jpg")
    whole = (folder / "test" / "frog" / "0001.jpg").read_bytes()
    (folder / "test" / "frog" / "0001.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "test" / "frog" / "0000.png").unlink()
    with pytest.raises(dl.CorruptFileError, match=r"frog/0001\.jpg: cannot decode image"):  # truncated JPEG
        datasets.CIFAR10(tmp_path, train=False, progress=False)
    (folder / "test" / "frog" / "0001.jpg").unlink()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "test" / "frog" / "0000.png")
    with pytest.raises(dl.CorruptFileError, match=r"0000\.png: expected a 32x32 RGB image, got shape \(16, 16, 3\)"):
        datasets.CIFAR10(tmp_path, train=False, progress=False)


def test_missing_dataset_lists_the_paths_tried(tmp_path):
    with pytest.raises(dl.DatasetNotFoundError) as info:
        datasets.CIFAR10(tmp_path)
    message = str(info.value)
    for tried in (cifar10.BINARY_FOLDER, cifar10.PYTHON_FOLDER, "cifar10-jpeg"):
        assert str(tmp_path / tried) in message
    assert cifar10.URL in message and "download=True" in message


# --------------------------------------------------------------------------- #
# download=True (urlopen serves a local fake archive: no network)
# --------------------------------------------------------------------------- #
def fake_archive(batches):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, records in batches.items():
            payload = records.tobytes()
            info = tarfile.TarInfo(f"{cifar10.BINARY_FOLDER}/{name}.bin")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_download_fetches_checks_and_unpacks_the_binary_release(tmp_path, monkeypatch):
    import hashlib

    from test_data_download import serve

    batches = fake_batches()
    payload = fake_archive(batches)
    serve(monkeypatch, payload)
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", hashlib.md5(payload).hexdigest())
    ds = datasets.CIFAR10(tmp_path, train=False, download=True, progress=False)
    np.testing.assert_array_equal(ds.data, expected_split(batches, False)[0])
    assert sorted(os.listdir(tmp_path)) == [cifar10.BINARY_FOLDER]  # archive and scratch removed


def test_download_refuses_an_archive_with_the_wrong_md5(tmp_path, monkeypatch):
    from test_data_download import serve

    serve(monkeypatch, fake_archive(fake_batches()))
    with pytest.raises(dl.ChecksumError, match=f"expected {cifar10.ARCHIVE_MD5}"):
        datasets.CIFAR10(tmp_path, download=True, progress=False)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- #
# the real copy, when this machine has it
# --------------------------------------------------------------------------- #
@pytest.mark.skipif(not (SHARED / "cifar10-jpeg").is_dir(), reason="no shared CIFAR-10 copy here")
def test_real_cifar10_jpeg_copy(monkeypatch):
    train = datasets.CIFAR10(SHARED, train=True, progress=False)  # decodes once, then cached
    test = datasets.CIFAR10(SHARED, train=False, progress=False)
    assert train.data.shape == (50000, 32, 32, 3) and test.data.shape == (10000, 32, 32, 3)
    assert train.classes == CLASSES and test.classes == CLASSES
    assert np.bincount(train.targets).tolist() == [5000] * 10
    assert np.bincount(test.targets).tolist() == [1000] * 10
    # The second load must come from the .npz cache (its speed is measured in the closing notes,
    # not asserted here: timed tests are flaky on a shared machine).
    monkeypatch.setattr(cifar10, "decode_images", lambda files, progress: pytest.fail("cache not used"))
    again = datasets.CIFAR10(SHARED, train=True, progress=False)
    np.testing.assert_array_equal(again.targets, train.targets)
