"""CIFAR-10: 60,000 32x32 colour images in 10 classes (50,000 train, 10,000 test).

Three copies are read, looked for in this order under the data root:

1. the canonical **binary** release, ``cifar-10-batches-bin/`` (``data_batch_1.bin`` ...
   ``data_batch_5.bin``, ``test_batch.bin``): each record is 1 label byte then 3,072
   pixel bytes (1,024 red, 1,024 green, 1,024 blue, rows top to bottom). Parsed as
   bytes: nothing is executed.
2. the canonical **python** release, ``cifar-10-batches-py/``: its batches are
   pickles. We do both of the safe things: each file's MD5 must match the known sum
   for the official release (``PYTHON_RELEASE_MD5``; the authors publish the archive's
   sum, these per-file sums are those of its members as torchvision lists them), and
   the unpickler admits no class except numpy's array reconstruction
   (``_reconstruct``, ``ndarray``, ``dtype``): no other code can run.
3. an **image folder**, ``{train,test}/{class}/*.jpg|*.png`` such as ``cifar10-jpeg/``
   (class index = position in the sorted class-folder names, which for CIFAR-10's
   names is the canonical label order). Decoding 60,000 files takes seconds, so the
   decoded arrays are cached as ``.npz`` (see ``download.cache_dir``: under the data
   root, or under ``$MINIDL_CACHE`` / ``./datasets/.cache`` / ``~/.cache/minidl`` when
   the data root is read-only). The cache name hashes the folder's path and every
   file's name, size and mtime, so a changed folder is decoded again.

``download=True`` fetches the binary release (no pickles) and checks its published MD5.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy

from minidl.data import download as dl

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN = (0.4914, 0.4822, 0.4465)  # per-channel mean of the training images in [0, 1]
STD = (0.2470, 0.2435, 0.2616)  # and their standard deviation

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
BINARY_FOLDER = "cifar-10-batches-bin"
PYTHON_FOLDER = "cifar-10-batches-py"
IMAGE_FOLDERS = ("cifar10-jpeg", "cifar10")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLIT_FILES = {True: [f"data_batch_{i}" for i in range(1, 6)], False: ["test_batch"]}
PYTHON_RELEASE_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
RECORD = 1 + 32 * 32 * 3
HOW_TO_GET = (
    "Get CIFAR-10 with CIFAR10(download=True), or download "
    f"{URL} (MD5 {ARCHIVE_MD5}) and unpack it in the data root so that "
    f"<root>/{BINARY_FOLDER}/data_batch_1.bin exists. An image-folder copy "
    "(<root>/cifar10-jpeg/{train,test}/{class}/*.jpg) works too."
)


class CIFAR10:
    """The CIFAR-10 training (``train=True``) or test set, held in memory.

    Attributes:
        data: uint8 array (N, 32, 32, 3), RGB, channels last (HWC), as torchvision.
        targets: int64 array (N,), the class index of each image.
        classes: the 10 class names, ``classes[targets[i]]`` names image i.
        source: ``(kind, folder)`` of the copy read: kind is 'binary', 'python' or 'images'.

    ``ds[i]`` is ``(image HWC uint8, label)``; an index array gives a batch. For a
    network use ``as_arrays()``: float images (N, 3, 32, 32) (NCHW) in [0, 1].
    """

    def __init__(self, root=None, train: bool = True, download: bool = False, progress: bool = True):
        self.root = dl.data_root(root)
        self.train = bool(train)
        kind, folder = _find(self.root, download, progress)
        if kind == "binary":
            self.data, self.targets, self.classes = _read_binary(folder, self.train)
        elif kind == "python":
            self.data, self.targets, self.classes = _read_python(folder, self.train)
        else:
            self.data, self.targets, self.classes = _read_images(folder, self.train, self.root, progress)
        self.source = (kind, folder)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        if isinstance(index, (int, numpy.integer)) and not -len(self) <= index < len(self):
            raise IndexError(f"CIFAR10: index {index} is out of range for {len(self)} images")
        return self.data[index], self.targets[index]

    def as_arrays(self, dtype=numpy.float32):
        """``(images, targets)``: images (N, 3, 32, 32) NCHW ``dtype`` in [0, 1]; targets int64."""
        images = self.data.transpose(0, 3, 1, 2).astype(dtype)
        images /= 255
        return images, self.targets

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"CIFAR10(split={split}, n={len(self)}, source={self.source[0]}: {self.source[1]})"


# --------------------------------------------------------------------------- #
# Finding a copy
# --------------------------------------------------------------------------- #
def _find(root: Path, download: bool, progress: bool):
    """``(kind, folder)`` of the first copy found under ``root`` (or ``root`` itself)."""
    tried = []
    for kind, folders, marker in (
        ("binary", [root / BINARY_FOLDER, root], "data_batch_1.bin"),
        ("python", [root / PYTHON_FOLDER, root], "data_batch_1"),
        ("images", [root / name for name in IMAGE_FOLDERS] + [root], "train"),
    ):
        for folder in folders:
            tried.append(folder / marker)
            if (folder / marker).exists():
                return kind, folder
    if download:
        return "binary", _download(root, progress)
    raise dl.not_found("CIFAR10", tried, HOW_TO_GET)


def _download(root: Path, progress: bool) -> Path:
    archive = dl.download(URL, root / "cifar-10-binary.tar.gz", md5=ARCHIVE_MD5, progress=progress,
                          where_to_put=f"unpack it so that {root / BINARY_FOLDER} exists")
    try:
        with tempfile.TemporaryDirectory(dir=root, prefix=".unpack-") as scratch:
            dl.extract_tar(archive, scratch)
            if not (Path(scratch) / BINARY_FOLDER / "test_batch.bin").is_file():
                raise dl.CorruptFileError(f"{archive}: has no {BINARY_FOLDER}/test_batch.bin inside")
            dl.move_into_place(Path(scratch) / BINARY_FOLDER, root / BINARY_FOLDER)
    finally:
        archive.unlink(missing_ok=True)  # unpacked, or refused
    return root / BINARY_FOLDER


def _class_names(names, where) -> tuple:
    names = tuple(n for n in names if n)
    if len(names) != len(CLASSES):
        raise dl.CorruptFileError(f"{where}: expected {len(CLASSES)} class names, found {len(names)}: {names}")
    return names


def _split_files(folder: Path, train: bool, suffix: str):
    paths = [folder / (name + suffix) for name in SPLIT_FILES[train]]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise dl.DatasetNotFoundError(f"CIFAR10: {folder} is missing {', '.join(missing)}. {HOW_TO_GET}")
    return paths


# --------------------------------------------------------------------------- #
# The binary release
# --------------------------------------------------------------------------- #
def read_binary_batch(path):
    """``(images (N, 32, 32, 3) uint8, labels (N,) int64)`` from one ``*.bin`` batch."""
    raw = numpy.fromfile(path, dtype=numpy.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise dl.CorruptFileError(
            f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records "
            "(1 label byte + 3,072 pixel bytes): the file is truncated or not a CIFAR-10 batch")
    records = raw.reshape(-1, RECORD)
    labels = records[:, 0].astype(numpy.int64)
    if labels.max() >= len(CLASSES):
        raise dl.CorruptFileError(f"{path}: label {labels.max()} found, expected 0-9")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CHW planes -> HWC
    return numpy.ascontiguousarray(images), labels


def _read_binary(folder: Path, train: bool):
    batches = [read_binary_batch(p) for p in _split_files(folder, train, ".bin")]
    meta = folder / "batches.meta.txt"
    classes = _class_names(meta.read_text().split(), meta) if meta.is_file() else CLASSES
    return (numpy.concatenate([b[0] for b in batches]), numpy.concatenate([b[1] for b in batches]),
            list(classes))


# --------------------------------------------------------------------------- #
# The python release
# --------------------------------------------------------------------------- #
def _numpy_reconstruct():
    """numpy's array-unpickling helper, wherever this numpy version keeps it."""
    return numpy.ndarray.__reduce__(numpy.zeros(1))[0]


class RefusedPickle(pickle.UnpicklingError):
    """A pickle asked for a class or function that ``RestrictedUnpickler`` does not admit."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain Python values and numpy arrays.

    ``find_class`` is how a pickle names code to call; it admits exactly numpy's
    ``_reconstruct``, ``ndarray`` and ``dtype`` and refuses everything else.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
        ("numpy", "ndarray"): numpy.ndarray,
        ("numpy", "dtype"): numpy.dtype,
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        raise RefusedPickle(
            f"refusing to load {module}.{name}: a CIFAR-10 batch holds only dicts, lists, "
            "strings and numpy arrays")


def read_python_batch(path, md5: str | None):
    """The dict in one python-release batch, after its MD5 check (skipped if ``md5`` is None)."""
    if md5 is not None:
        dl.check_md5(path, md5)
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, encoding="latin1").load()
    except RefusedPickle as error:
        raise dl.CorruptFileError(f"{path}: {error}") from error
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError) as error:
        raise dl.CorruptFileError(f"{path}: not a readable CIFAR-10 python batch ({error})") from error


def _read_python(folder: Path, train: bool):
    images, labels = [], []
    for path in _split_files(folder, train, ""):
        batch = read_python_batch(path, PYTHON_RELEASE_MD5.get(path.name))
        data = batch.get("data") if isinstance(batch, dict) else None
        targets = batch.get("labels") if isinstance(batch, dict) else None
        if (not isinstance(data, numpy.ndarray) or data.dtype != numpy.uint8 or data.ndim != 2
                or data.shape[1] != 3072 or not isinstance(targets, list) or len(targets) != len(data)):
            raise dl.CorruptFileError(
                f"{path}: expected a dict {{'data': uint8 array (N, 3072), 'labels': list of N ints}}, "
                f"got {type(batch).__name__} with data={getattr(data, 'dtype', type(data).__name__)} "
                f"{getattr(data, 'shape', '')}")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(numpy.asarray(targets, dtype=numpy.int64))
    meta = folder / "batches.meta"
    classes = CLASSES
    if meta.is_file():
        classes = _class_names(read_python_batch(meta, PYTHON_RELEASE_MD5.get(meta.name))["label_names"], meta)
    return numpy.ascontiguousarray(numpy.concatenate(images)), numpy.concatenate(labels), list(classes)


# --------------------------------------------------------------------------- #
# An image folder
# --------------------------------------------------------------------------- #
def _class_folders(split_dir: Path):
    if not split_dir.is_dir():
        raise dl.DatasetNotFoundError(f"CIFAR10: no split folder {split_dir}. {HOW_TO_GET}")
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))


def list_image_folder(folder: Path, train: bool):
    """``(files, labels, classes, stamp)`` for ``folder/{train|test}``.

    files are sorted by class then name; ``stamp`` lists (name, size, mtime) for the
    cache key. A class folder without images, a class count other than 10, or a
    split whose classes differ from the other split's is an error.
    """
    split_dir = folder / ("train" if train else "test")
    classes = _class_folders(split_dir)
    if len(classes) != len(CLASSES):
        raise dl.CorruptFileError(f"{split_dir}: expected {len(CLASSES)} class folders, found {classes}")
    other = folder / ("test" if train else "train")
    if other.is_dir() and _class_folders(other) != classes:
        raise dl.CorruptFileError(
            f"{folder}: the train and test splits have different classes: "
            f"{split_dir.name}={classes}, {other.name}={_class_folders(other)}")
    files, labels, stamp = [], [], []
    for label, name in enumerate(classes):
        entries = sorted((e for e in os.scandir(split_dir / name)
                          if e.name.lower().endswith(IMAGE_SUFFIXES) and e.is_file()), key=lambda e: e.name)
        if not entries:
            raise dl.CorruptFileError(f"{split_dir / name}: class folder has no .jpg/.png images")
        for e in entries:
            info = e.stat()
            files.append(e.path)
            stamp.append(f"{name}/{e.name}:{info.st_size}:{info.st_mtime_ns}")
        labels += [label] * len(entries)
    return files, numpy.asarray(labels, dtype=numpy.int64), classes, stamp


def decode_images(files, progress: bool = True):
    """Decode 32x32 RGB images (JPEG or PNG, via Pillow) into one uint8 (N, 32, 32, 3) array."""
    from PIL import Image, UnidentifiedImageError
    from tqdm import tqdm

    images = numpy.empty((len(files), 32, 32, 3), dtype=numpy.uint8)
    for i, path in enumerate(tqdm(files, desc="decoding CIFAR-10 images", unit="img",
                                  disable=not progress, leave=False, mininterval=1.0)):
        try:
            with Image.open(path) as image:
                array = numpy.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
            raise dl.CorruptFileError(f"{path}: cannot decode image ({error})") from error
        if array.shape != (32, 32, 3):
            raise dl.CorruptFileError(f"{path}: expected a 32x32 RGB image, got shape {array.shape}")
        images[i] = array
    return images


def _read_images(folder: Path, train: bool, root: Path, progress: bool):
    files, labels, classes, stamp = list_image_folder(folder, train)
    key = hashlib.sha1("\n".join([str(folder.resolve()), str(train), *stamp]).encode()).hexdigest()[:16]
    cache = dl.cache_dir(root) / f"cifar10-{'train' if train else 'test'}-{key}.npz"
    if cache.is_file():
        try:
            with numpy.load(cache, allow_pickle=False) as saved:
                if len(saved["targets"]) == len(files):
                    return saved["data"], saved["targets"], [str(c) for c in saved["classes"]]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a damaged cache is simply rebuilt
    images = decode_images(files, progress)
    try:
        dl.save_npz_atomic(cache, data=images, targets=labels, classes=numpy.asarray(classes))
    except OSError as error:  # no cache is slower, not wrong
        warnings.warn(f"CIFAR10: could not write the decoded-image cache {cache}: {error}", stacklevel=3)
    return images, labels, classes
