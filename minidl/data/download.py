"""Where data lives, and getting it there safely.

The data root is, in this order: an explicit ``root`` argument, else the environment
variable ``MINIDL_DATA``, else ``./datasets`` (the repository's ``datasets/`` folder
when you run from the repository root; its README says what goes there).

Everything written here is written atomically (a temporary file in the same folder,
then ``os.replace``), so an interrupted download or cache write never leaves a
half-file that looks whole. Downloads are checked against a published MD5 before they
are used; archives are extracted only if every member stays inside the destination.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy

DATA_ENV = "MINIDL_DATA"
CACHE_ENV = "MINIDL_CACHE"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is in none of the places we looked; the message says how to get it."""


class ChecksumError(ValueError):
    """A file's MD5 is not the published one: the file is refused."""


class CorruptFileError(ValueError):
    """A data file (archive, WAV, image, batch) cannot be read; the message names it."""


class DownloadError(DatasetNotFoundError):
    """A download failed (often: no network); the message says where to put the files.

    A subclass of ``DatasetNotFoundError``: either way the data is not there, so one
    ``except DatasetNotFoundError`` covers both."""


# --------------------------------------------------------------------------- #
# Where things are
# --------------------------------------------------------------------------- #
def data_root(root=None) -> Path:
    """The data root: ``root``, else ``$MINIDL_DATA``, else ``./datasets`` (absolute)."""
    if root is None:
        root = os.environ.get(DATA_ENV) or "datasets"
    return Path(root).expanduser().absolute()


def is_writable_dir(path) -> bool:
    """True when ``path`` (or, if it does not exist yet, its nearest existing parent)
    is a folder we may write to.

    A folder with no write bit at all (``dr-xr-xr-x``) counts as read-only even for
    root, who could write there anyway: such a folder was made read-only on purpose.
    """
    path = Path(path).absolute()
    while not path.exists():
        if path.parent == path:
            return False
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def cache_dir(root) -> Path:
    """Where decoded arrays are cached for the data root ``root``.

    ``$MINIDL_CACHE`` if set; else ``<root>/.cache`` when the data root is writable;
    else ``./datasets/.cache`` when ``./datasets`` exists and is writable; else
    ``~/.cache/minidl``. A read-only data root (a shared copy) therefore still gets a
    cache, and the cache file names include a hash of the source path so copies never
    collide.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().absolute()
    root = Path(root).absolute()
    local = Path("datasets").absolute()
    if root.is_dir() and is_writable_dir(root):
        return root / ".cache"
    if local.is_dir() and is_writable_dir(local):
        return local / ".cache"
    return Path.home() / ".cache" / "minidl"


def not_found(dataset: str, tried, how_to_get: str) -> DatasetNotFoundError:
    """The error for a missing dataset: every path tried, then how to get the data."""
    lines = "\n".join(f"  - {p}" for p in tried)
    return DatasetNotFoundError(
        f"{dataset}: no copy found. Looked in:\n{lines}\n{how_to_get}\n"
        f"The data root is the `root` argument, else ${DATA_ENV}, else ./datasets "
        f"(e.g. export {DATA_ENV}=/path/to/datasets)."
    )


# --------------------------------------------------------------------------- #
# Checksums
# --------------------------------------------------------------------------- #
def md5sum(path, chunk_size: int = 1 << 20) -> str:
    """The MD5 of a file, as 32 lowercase hex digits."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def check_md5(path, expected: str) -> None:
    """Raise ``ChecksumError`` unless ``path`` has MD5 ``expected``."""
    actual = md5sum(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"{path}: MD5 is {actual}, expected {expected.lower()} (the published sum). "
            "The file is corrupt, truncated or not the official release; it was refused. "
            "Delete it and download it again."
        )


# --------------------------------------------------------------------------- #
# Writing atomically
# --------------------------------------------------------------------------- #
def _temporary_beside(path: Path):
    """An open binary file in ``path``'s folder, and its name, to be renamed onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    return os.fdopen(fd, "wb"), Path(name)


def save_npz_atomic(path, **arrays) -> Path:
    """``numpy.savez`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    f, temporary = _temporary_beside(path)
    try:
        with f:
            numpy.savez(f, **arrays)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a cache is not a secret
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------- #
# Downloading
# --------------------------------------------------------------------------- #
def download(url: str, destination, md5: str | None = None, where_to_put: str = "",
             progress: bool = True, timeout: float = 30.0) -> Path:
    """Fetch ``url`` to the file ``destination`` with a progress bar.

    The bytes go to a temporary file beside ``destination``; when ``md5`` is given the
    temporary file is checked first and refused (deleted, ``ChecksumError``) if it does
    not match; only then is it renamed onto ``destination``. Without network this
    raises ``DownloadError`` saying so and where to put the file by hand
    (``where_to_put`` adds a dataset-specific hint).
    """
    from tqdm import tqdm

    destination = Path(destination)
    manual = (f"If this machine has no network, download {url} elsewhere and put it at "
              f"{destination}" + (f", or {where_to_put}" if where_to_put else "") + ".")
    f, temporary = _temporary_beside(destination)
    try:
        with f:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, socket.timeout, OSError) as error:
                reason = getattr(error, "reason", error)
                raise DownloadError(f"could not download {url}: {reason}. {manual}") from error
            with response, tqdm(total=int(response.headers.get("Content-Length") or 0) or None,
                                unit="B", unit_scale=True, unit_divisor=1024,
                                desc=destination.name, disable=not progress) as bar:
                try:
                    for block in iter(lambda: response.read(1 << 16), b""):
                        f.write(block)
                        bar.update(len(block))
                except (OSError, socket.timeout) as error:
                    raise DownloadError(f"download of {url} broke off: {error}. {manual}") from error
        if md5 is not None:
            check_md5(temporary, md5)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
    return destination


# --------------------------------------------------------------------------- #
# Extracting
# --------------------------------------------------------------------------- #
def _unsafe_reason(member: tarfile.TarInfo, destination: Path) -> str | None:
    name = member.name
    if name.startswith(("/", "\\")) or Path(name).is_absolute():
        return "has an absolute path"
    target = (destination / name).resolve()
    if target != destination and destination not in target.parents:
        return "would be written outside the destination"
    return None


def extract_tar(archive, destination) -> Path:
    """Extract the regular files and folders of a tar archive (``.tar``, ``.tar.gz``...)
    into ``destination``.

    Refused (``CorruptFileError``, nothing written): a member with an absolute path or
    one that climbs out of ``destination`` with ``..``; an archive that is corrupt or
    truncated. Links, devices and other special members are skipped, never created.
    """
    archive, destination = Path(archive), Path(destination).resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()  # reads the whole archive: truncation shows here
            for member in members:
                reason = _unsafe_reason(member, destination)
                if reason:
                    raise CorruptFileError(
                        f"{archive}: member {member.name!r} {reason}; refusing to extract this archive")
            safe = [m for m in members if m.isfile() or m.isdir()]
            destination.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(destination, members=safe, filter="data")
            else:  # pragma: no cover - Python < 3.10.12
                tar.extractall(destination, members=safe)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise CorruptFileError(
            f"{archive}: not a readable tar archive (corrupt or truncated): {error}. "
            "Delete it and download it again.") from error
    except OSError as error:
        if "gzip" in str(error).lower() or "compressed" in str(error).lower():
            raise CorruptFileError(f"{archive}: corrupt compressed archive: {error}") from error
        raise
    return destination


def move_into_place(source, destination) -> Path:
    """Rename the folder ``source`` to ``destination`` (replacing nothing that exists)."""
    source, destination = Path(source), Path(destination)
    if destination.exists():
        raise FileExistsError(f"{destination} already exists; remove it to unpack a fresh copy")
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(destination))
    return destination
