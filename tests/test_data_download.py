"""minidl.data.download: data root, cache folder, checksums, atomic writes, downloads, safe tar."""

import io
import os
import tarfile
import urllib.error

import numpy as np
import pytest

from minidl.data import download as dl


# --------------------------------------------------------------------------- #
# where things are
# --------------------------------------------------------------------------- #
def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(dl.DATA_ENV, raising=False)
    assert dl.data_root() == tmp_path / "datasets"
    monkeypatch.setenv(dl.DATA_ENV, str(tmp_path / "env"))
    assert dl.data_root() == tmp_path / "env"
    assert dl.data_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert dl.data_root("relative") == tmp_path / "relative"


def test_read_only_folders_count_as_read_only_even_for_root(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    assert dl.is_writable_dir(locked) and dl.is_writable_dir(locked / "not" / "yet")
    locked.chmod(0o555)
    try:
        assert not dl.is_writable_dir(locked)
        assert not dl.is_writable_dir(locked / "inside")
    finally:
        locked.chmod(0o755)


def test_cache_dir_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(dl.CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = tmp_path / "data"
    root.mkdir()
    assert dl.cache_dir(root) == root / ".cache"
    root.chmod(0o555)
    try:
        assert dl.cache_dir(root) == tmp_path / "home" / ".cache" / "minidl"  # no ./datasets here
        (tmp_path / "datasets").mkdir()
        assert dl.cache_dir(root) == tmp_path / "datasets" / ".cache"
        monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "mine"))
        assert dl.cache_dir(root) == tmp_path / "mine"
    finally:
        root.chmod(0o755)


def test_not_found_lists_paths_and_how_to_get_them(tmp_path):
    error = dl.not_found("Thing", [tmp_path / "a", tmp_path / "b"], "Download it from somewhere.")
    assert isinstance(error, FileNotFoundError)
    message = str(error)
    assert str(tmp_path / "a") in message and str(tmp_path / "b") in message
    assert "Download it from somewhere." in message and dl.DATA_ENV in message


# --------------------------------------------------------------------------- #
# checksums and atomic writes
# --------------------------------------------------------------------------- #
def test_md5(tmp_path):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    assert dl.md5sum(path) == "900150983cd24fb0d6963f7d28e17f72"
    dl.check_md5(path, "900150983CD24FB0D6963F7D28E17F72")
    with pytest.raises(dl.ChecksumError, match="MD5 is 900150983cd24fb0d6963f7d28e17f72, expected 0+ "):
        dl.check_md5(path, "0" * 32)


def test_save_npz_atomic_leaves_no_temporary_file(tmp_path):
    path = dl.save_npz_atomic(tmp_path / "sub" / "a.npz", x=np.arange(3), names=np.asarray(["a", "b"]))
    assert sorted(os.listdir(tmp_path / "sub")) == ["a.npz"]
    with np.load(path, allow_pickle=False) as saved:
        np.testing.assert_array_equal(saved["x"], [0, 1, 2])
        assert list(saved["names"]) == ["a", "b"]


# --------------------------------------------------------------------------- #
# downloads (urlopen is replaced: tests never touch the network)
# --------------------------------------------------------------------------- #
class FakeResponse(io.BytesIO):
    def __init__(self, payload):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


def serve(monkeypatch, payload):
    monkeypatch.setattr(dl.urllib.request, "urlopen", lambda url, timeout: FakeResponse(payload))


def test_download_checks_md5_then_renames(tmp_path, monkeypatch):
    serve(monkeypatch, b"abc")
    path = dl.download("https://example.org/abc", tmp_path / "abc.bin",
                       md5="900150983cd24fb0d6963f7d28e17f72", progress=False)
    assert path.read_bytes() == b"abc" and os.listdir(tmp_path) == ["abc.bin"]


def test_download_refuses_a_wrong_md5(tmp_path, monkeypatch):
    serve(monkeypatch, b"not what was published")
    with pytest.raises(dl.ChecksumError, match="expected 900150983cd24fb0d6963f7d28e17f72"):
        dl.download("https://example.org/abc", tmp_path / "abc.bin", md5="900150983cd24fb0d6963f7d28e17f72",
                    progress=False)
    assert os.listdir(tmp_path) == []  # nothing kept, not even the temporary file


def test_download_without_network_says_where_to_put_the_file(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(dl.urllib.request, "urlopen", offline)
    with pytest.raises(dl.DownloadError) as info:
        dl.download("https://example.org/abc", tmp_path / "abc.bin", where_to_put="unpack it here", progress=False)
    assert isinstance(info.value, dl.DatasetNotFoundError)  # one except clause covers both
    message = str(info.value)
    assert "could not download https://example.org/abc" in message and "no network" in message
    assert str(tmp_path / "abc.bin") in message and "unpack it here" in message
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- #
# safe extraction
# --------------------------------------------------------------------------- #
def make_tar(path, members, mode="w:gz"):
    """members: (name, bytes) for files, (name, None) for a symlink to /etc/passwd."""
    with tarfile.open(path, mode) as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            if payload is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return path


def test_extract_tar_extracts_files_and_skips_links(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", [("top/a.txt", b"A"), ("top/sub/b.txt", b"B"), ("top/link", None)])
    out = dl.extract_tar(archive, tmp_path / "out")
    assert (out / "top" / "a.txt").read_bytes() == b"A" and (out / "top" / "sub" / "b.txt").read_bytes() == b"B"
    assert not (out / "top" / "link").exists() and not (out / "top" / "link").is_symlink()


@pytest.mark.parametrize("name,reason", [("../evil.txt", "outside the destination"),
                                         ("top/../../evil.txt", "outside the destination"),
                                         ("/tmp/evil.txt", "absolute path")])
def test_extract_tar_refuses_path_traversal(tmp_path, name, reason):
    archive = make_tar(tmp_path / "evil.tar", [("ok.txt", b"fine"), (name, b"evil")], mode="w")
    with pytest.raises(dl.CorruptFileError, match=reason) as info:
        dl.extract_tar(archive, tmp_path / "out")
    assert "evil.tar" in str(info.value)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "ok.txt").exists()


def test_extract_tar_names_a_truncated_or_corrupt_archive(tmp_path):
    payload = np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    whole = make_tar(tmp_path / "whole.tar.gz", [("a.bin", payload)]).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "junk.tar.gz").write_bytes(b"this is no archive" * 10)
    for name in ("cut.tar.gz", "junk.tar.gz"):
        with pytest.raises(dl.CorruptFileError, match=rf"{name}: .*(corrupt|truncated)"):
            dl.extract_tar(tmp_path / name, tmp_path / "out")
