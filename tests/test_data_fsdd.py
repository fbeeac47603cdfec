"""FSDD on a tiny generated WAV set; the structure check of a download; the real copy when present."""

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from minidl import datasets
from minidl.data import download as dl
from minidl.data import fsdd

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
SPEAKERS = ["theo", "ann", "bob"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.delenv(dl.DATA_ENV, raising=False)


def samples(digit, speaker, take):
    """A recognisable int16 clip: its length and first sample encode the file."""
    length = 50 + 7 * digit + take + 3 * SPEAKERS.index(speaker)
    clip = np.full(length, 1000 * digit + 10 * take, dtype=np.int16)
    clip[-1] = -32768
    return clip


def write_recordings(folder, speakers=SPEAKERS, takes=range(7), rate=8000):
    folder.mkdir(parents=True)
    for speaker in speakers:
        for digit in range(10):
            for take in takes:
                wavfile.write(folder / f"{digit}_{speaker}_{take}.wav", rate, samples(digit, speaker, take))
    return folder


@pytest.mark.parametrize("split,takes", [("train", [5, 6]), ("test", [0, 1, 2, 3, 4]), ("all", list(range(7)))])
def test_official_split_labels_speakers_and_order(tmp_path, split, takes):
    write_recordings(tmp_path / "fsdd" / "recordings")
    ds = datasets.FSDD(tmp_path, split=split)
    expected = [(s, d, t) for s in sorted(SPEAKERS) for d in range(10) for t in takes]
    assert len(ds) == len(expected)
    assert list(zip(ds.speakers, ds.targets.tolist(), ds.takes.tolist())) == expected
    assert ds.targets.dtype == np.int64 and ds.takes.dtype == np.int64
    assert ds.speaker_names == sorted(SPEAKERS) and ds.sample_rate == 8000 and ds.classes[3] == "3"
    for waveform, (speaker, digit, take) in zip(ds.waveforms, expected):
        assert waveform.dtype == np.float32
        np.testing.assert_array_equal(waveform, samples(digit, speaker, take) / 32768)
        assert waveform[-1] == -1.0
    waveform, label = ds[0]
    assert label == expected[0][1] and waveform is ds.waveforms[0]


def test_speaker_selection(tmp_path):
    write_recordings(tmp_path / "fsdd" / "recordings")
    held_out = datasets.FSDD(tmp_path, split="all", speakers="bob")
    others = datasets.FSDD(tmp_path, split="all", speakers=["ann", "theo"])
    assert set(held_out.speakers) == {"bob"} and len(held_out) == 70
    assert others.speaker_names == ["ann", "theo"] and len(others) == 140
    with pytest.raises(ValueError, match=r"unknown speaker\(s\) \['zed'\]; .* has \['ann', 'bob', 'theo'\]"):
        datasets.FSDD(tmp_path, speakers=["bob", "zed"])


def test_other_layouts_and_the_environment(tmp_path, monkeypatch):
    folder = write_recordings(tmp_path / "free-spoken-digit-dataset-master" / "recordings", speakers=["ann"])
    assert datasets.FSDD(tmp_path).folder == folder
    assert datasets.FSDD(folder.parent).folder == folder  # root pointing at the unpacked repository
    monkeypatch.setenv(dl.DATA_ENV, str(tmp_path))
    assert len(datasets.FSDD(split="test")) == 50


def test_bad_files_are_named(tmp_path):
    folder = write_recordings(tmp_path / "fsdd" / "recordings", speakers=["ann"], takes=[0])
    (folder / "README.txt").write_text("other files are ignored")
    assert len(datasets.FSDD(tmp_path, split="test")) == 10
    (folder / "three_ann_0.wav").write_bytes(b"")
    with pytest.raises(dl.CorruptFileError, match=r"three_ann_0\.wav: FSDD file names must be"):
        datasets.FSDD(tmp_path, split="test")
    (folder / "three_ann_0.wav").unlink()
    data = (folder / "4_ann_0.wav").read_bytes()
    (folder / "4_ann_0.wav").write_bytes(data[: len(data) - 40])  # truncated
    with pytest.raises(dl.CorruptFileError, match=r"4_ann_0\.wav: damaged WAV file"):
        datasets.FSDD(tmp_path, split="test")
    (folder / "4_ann_0.wav").write_bytes(b"RIFF garbage")
    with pytest.raises(dl.CorruptFileError, match=r"4_ann_0\.wav: not a readable WAV file"):
        datasets.FSDD(tmp_path, split="test")
    wavfile.write(folder / "4_ann_0.wav", 16000, np.zeros(100, np.int16))
    with pytest.raises(dl.CorruptFileError, match=r"4_ann_0\.wav: expected mono 8000 Hz audio, got 16000 Hz"):
        datasets.FSDD(tmp_path, split="test")


def test_missing_dataset_and_bad_split(tmp_path):
    with pytest.raises(dl.DatasetNotFoundError) as info:
        datasets.FSDD(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "fsdd" / "recordings") in message and str(tmp_path / "recordings") in message
    assert fsdd.URL in message and "download=True" in message
    with pytest.raises(ValueError, match="split must be 'train', 'test' or 'all', got 'dev'"):
        datasets.FSDD(tmp_path, split="dev")
    (tmp_path / "recordings").mkdir()
    with pytest.raises(dl.CorruptFileError, match="no {digit}_{speaker}_{take}.wav recordings"):
        datasets.FSDD(tmp_path)


# --------------------------------------------------------------------------- #
# download=True: no checksum is published, so the unpacked structure is checked
# --------------------------------------------------------------------------- #
def fsdd_archive(speakers, takes=range(50)):
    """A tar.gz laid out as the tagged GitHub archive, with tiny WAV files."""
    buffer = io.BytesIO()
    top = f"free-spoken-digit-dataset-{fsdd.VERSION}"
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for speaker in speakers:
            for digit in range(10):
                for take in takes:
                    wav = io.BytesIO()
                    wavfile.write(wav, 8000, np.full(4, digit, np.int16))
                    info = tarfile.TarInfo(f"{top}/recordings/{digit}_{speaker}_{take}.wav")
                    info.size = len(wav.getvalue())
                    tar.addfile(info, io.BytesIO(wav.getvalue()))
        readme = b"FSDD"
        info = tarfile.TarInfo(f"{top}/README.md")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    return buffer.getvalue()


def test_download_unpacks_and_checks_the_structure(tmp_path, monkeypatch):
    from test_data_download import serve

    monkeypatch.setattr(fsdd, "N_TAKES", 6)  # a small release: creating 3,000 files is slow
    serve(monkeypatch, fsdd_archive(["ann", "bob", "cy", "dee", "ed", "flo"], takes=range(6)))
    ds = datasets.FSDD(tmp_path, split="test", download=True, progress=False)
    assert len(ds) == 300 and ds.folder == tmp_path / "fsdd" / "recordings"
    assert os.listdir(tmp_path) == ["fsdd"]  # archive and scratch removed


def test_download_with_the_wrong_structure_is_refused(tmp_path, monkeypatch):
    from test_data_download import serve

    serve(monkeypatch, fsdd_archive(["ann", "bob"], takes=range(3)))
    with pytest.raises(dl.CorruptFileError, match=r"expected 3000 recordings .* found 60 from speakers \['ann', 'b"):
        datasets.FSDD(tmp_path, download=True, progress=False)
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(fsdd, "N_SPEAKERS", 3)
    monkeypatch.setattr(fsdd, "N_TAKES", 2)
    folder = write_recordings(tmp_path / "small", takes=range(2))
    fsdd.check_structure(folder)  # a whole (small) release passes
    (folder / "7_bob_1.wav").unlink()
    with pytest.raises(dl.CorruptFileError, match=r"expected 60 recordings .* found 59 from speakers"):
        fsdd.check_structure(folder)


# --------------------------------------------------------------------------- #
# the real copy, when this machine has it
# --------------------------------------------------------------------------- #
@pytest.mark.skipif(not (SHARED / "fsdd" / "recordings").is_dir(), reason="no shared FSDD copy here")
def test_real_fsdd_copy():
    train, test = datasets.FSDD(SHARED, split="train"), datasets.FSDD(SHARED, split="test")
    assert (len(train), len(test)) == (2700, 300)
    assert len(train.speaker_names) == 6 and train.speaker_names == test.speaker_names
    assert np.bincount(train.targets).tolist() == [270] * 10 and np.bincount(test.targets).tolist() == [30] * 10
    assert set(test.takes.tolist()) == set(range(5)) and set(train.takes.tolist()) == set(range(5, 50))
    assert all(w.dtype == np.float32 and w.ndim == 1 and np.abs(w).max() <= 1 for w in train.waveforms)
    assert train.sample_rate == 8000
    fsdd.check_structure(SHARED / "fsdd" / "recordings")
