"""A dataset folder packed into one archive that a device machine can carry, and unpacked there.

The device machine reaches no network, and what travels with a command is limited (64 MiB of
untracked files), so the lessons' data goes as one file per dataset. CIFAR-10's JPEG copy is
60,000 small files: in a tar or zip the per-file headers alone add 7-44 MiB. So the archive is
an ``.npz`` (read with ``allow_pickle=False``) holding the files' bytes back to back:

    blob     uint8    every file's bytes, one after the other
    offsets  int64    file k is blob[offsets[k]:offsets[k + 1]]
    paths    bytes    file k's path inside the dataset folder ('train/cat/0001.jpg')
    folder   str      the dataset folder's name under a data root ('cifar10-jpeg', 'fsdd')

    pack("cifar10", "/work/shared/datasets", "gpu_data")    # -> gpu_data/cifar10.minidl-pack.npz
    unpack("gpu_data/cifar10.minidl-pack.npz", root)        # -> root/cifar10-jpeg/train/...

The source folder is only read. Hidden files and folders (a loader's ``.cache``) are left out.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy

LIMIT_BYTES = 60 * 2**20  # what one device call may carry (64 MiB), less room for the rest of the tree
SUFFIX = ".minidl-pack.npz"
DATASETS = {  # name -> (folder under a data root, a path that folder must hold)
    "cifar10": ("cifar10-jpeg", "train"),
    "fsdd": ("fsdd", "recordings"),
}


class PackError(ValueError):
    """A pack or unpack that cannot be done as asked (the message says what and where)."""


def find_folder(name: str, source) -> Path:
    """The dataset's folder: ``source`` itself, or ``source/<folder>`` when ``source`` is a data root."""
    if name not in DATASETS:
        raise PackError(f"pack: expected a dataset name in {sorted(DATASETS)}, got {name!r}")
    folder, marker = DATASETS[name]
    source = Path(source)
    for candidate in (source, source / folder):
        if (candidate / marker).exists():
            return candidate
    raise PackError(f"pack {name}: neither {source} nor {source / folder} holds '{marker}' "
                    f"(give the data root or the {folder}/ folder itself)")


def _files(folder: Path) -> list[Path]:
    """Every file under ``folder``, sorted, hidden files and folders left out."""
    return sorted(path for path in folder.rglob("*")
                  if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts))


def pack(name: str, source, out_dir, limit_bytes: int = LIMIT_BYTES) -> Path:
    """Pack dataset ``name`` found at ``source`` into ``out_dir/<name>.minidl-pack.npz``; returns its path."""
    folder = find_folder(name, source)
    files = _files(folder)
    if not files:
        raise PackError(f"pack {name}: {folder} holds no files")
    sizes = numpy.array([path.stat().st_size for path in files], dtype=numpy.int64)
    if sizes.sum() > limit_bytes:
        raise PackError(f"pack {name}: {len(files)} files of {sizes.sum() / 2**20:.1f} MiB in {folder}, "
                        f"more than the {limit_bytes / 2**20:.0f} MiB one archive may hold")
    offsets = numpy.concatenate([[0], numpy.cumsum(sizes)])
    blob = numpy.empty(int(offsets[-1]), dtype=numpy.uint8)
    for path, start, stop in zip(files, offsets[:-1], offsets[1:]):
        blob[start:stop] = numpy.frombuffer(path.read_bytes(), dtype=numpy.uint8)
    paths = numpy.array([path.relative_to(folder).as_posix().encode() for path in files])  # bytes: 1 per character
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}{SUFFIX}"
    partial = target.with_name(target.name + ".partial.npz")
    # compressed: 60,000 JPEGs repeat the same ~600 bytes of header tables; WAV samples shrink too
    numpy.savez_compressed(partial, blob=blob, offsets=offsets, paths=paths, folder=numpy.array(DATASETS[name][0]))
    partial.replace(target)  # a crash leaves no half archive under the real name
    if target.stat().st_size > limit_bytes:
        target.unlink()
        raise PackError(f"pack {name}: the archive came to more than {limit_bytes / 2**20:.0f} MiB")
    return target


def _safe(relative: str) -> PurePosixPath:
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise PackError(f"unpack: refusing the path {relative!r} (absolute or leaving the dataset folder)")
    return path


def unpack(archive, root) -> Path:
    """Write the archive's files under ``root/<folder>/`` (a data root for the lessons); returns that folder.

    Done once: a folder already unpacked from an archive of the same size is left as it is.
    """
    archive, root = Path(archive), Path(root)
    with numpy.load(archive, allow_pickle=False) as data:
        folder = root / str(_safe(str(data["folder"])))
        stamp = root / f".{folder.name}.unpacked-from"
        signature = f"{archive.name} {archive.stat().st_size}"
        if stamp.exists() and stamp.read_text() == signature:
            return folder
        blob, offsets, paths = data["blob"], data["offsets"], data["paths"]
        if len(offsets) != len(paths) + 1 or offsets[-1] != blob.size:
            raise PackError(f"unpack: {archive} is damaged ({len(paths)} paths, {len(offsets)} offsets, "
                            f"{blob.size} bytes)")
        targets = [folder / _safe(relative.decode()) for relative in paths]
        for parent in sorted({target.parent for target in targets}):
            parent.mkdir(parents=True, exist_ok=True)
        for target, start, stop in zip(targets, offsets[:-1], offsets[1:]):
            target.write_bytes(blob[start:stop].tobytes())
    stamp.write_text(signature)
    return folder


def archives_in(path) -> list[Path]:
    """The pack archives at ``path``: the file itself, or those in the folder."""
    path = Path(path)
    if path.is_file():
        return [path] if path.name.endswith(SUFFIX) else []
    return sorted(path.glob(f"*{SUFFIX}")) if path.is_dir() else []
