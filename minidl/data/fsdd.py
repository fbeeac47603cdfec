"""FSDD, the Free Spoken Digit Dataset: 8 kHz mono recordings of the digits 0-9.

Files are ``recordings/{digit}_{speaker}_{take}.wav`` (3,000 of them in release
v1.0.10: 6 speakers x 10 digits x 50 takes). The official split puts takes 0-4 of
every speaker and digit in the test set (300 files) and takes 5-49 in the training
set (2,700 files). ``speakers=`` keeps only some speakers, e.g. train on five and test
on the sixth for a speaker-independent experiment (``split='all'`` keeps every take).

Looked for under the data root as ``fsdd/recordings``, ``free-spoken-digit-dataset*/
recordings`` (an unpacked archive or a clone) or ``recordings``. Reading all 3,000
files takes a fraction of a second, so nothing is cached.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy

from minidl.audio import load_wav
from minidl.data import download as dl

VERSION = "1.0.10"
URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v{VERSION}.tar.gz"
N_SPEAKERS, N_TAKES = 6, 50  # in release v1.0.10: 6 x 10 digits x 50 = 3,000 files
SAMPLE_RATE = 8000
TEST_TAKES = range(0, 5)
NAME = re.compile(r"^(?P<digit>[0-9])_(?P<speaker>[A-Za-z]+)_(?P<take>[0-9]+)\.wav$")
HOW_TO_GET = (
    "Get FSDD with FSDD(download=True), or download "
    f"{URL} (or clone https://github.com/Jakobovski/free-spoken-digit-dataset) and put its "
    "recordings/ folder at <root>/fsdd/recordings."
)


class FSDD:
    """The spoken digits of one split, held in memory.

    Attributes:
        waveforms: list of float32 arrays (T_i,) in [-1, 1]; lengths differ (about 0.14-2.3 s).
        targets: int64 array (N,), the digit spoken.
        speakers: list of N speaker names, one per recording.
        takes: int64 array (N,), the take number in the file name.
        files: list of N paths.
        speaker_names: the sorted speakers present; classes: '0' ... '9'.
        sample_rate: 8000.

    Recordings are ordered by speaker, digit, then take. ``ds[i]`` is
    ``(waveform, label)``; ``minidl.audio`` turns waveforms into features and
    ``minidl.audio.pad_or_trim`` makes them one array.
    """

    classes = [str(d) for d in range(10)]

    def __init__(self, root=None, split: str = "train", speakers=None, download: bool = False,
                 progress: bool = True):
        if split not in ("train", "test", "all"):
            raise ValueError(f"FSDD: split must be 'train', 'test' or 'all', got {split!r}")
        self.root = dl.data_root(root)
        self.split = split
        self.folder = _find(self.root, download, progress)
        entries = list_recordings(self.folder)
        available = sorted({e[1] for e in entries})
        if speakers is not None:
            speakers = [speakers] if isinstance(speakers, str) else list(speakers)
            unknown = sorted(set(speakers) - set(available))
            if unknown:
                raise ValueError(f"FSDD: unknown speaker(s) {unknown}; {self.folder} has {available}")
            entries = [e for e in entries if e[1] in speakers]
        if split != "all":
            entries = [e for e in entries if (e[2] in TEST_TAKES) == (split == "test")]
        self.files = [self.folder / e[3] for e in entries]
        self.targets = numpy.asarray([e[0] for e in entries], dtype=numpy.int64)
        self.speakers = [e[1] for e in entries]
        self.takes = numpy.asarray([e[2] for e in entries], dtype=numpy.int64)
        self.speaker_names = sorted(set(self.speakers))
        self.waveforms = [_read(path) for path in self.files]
        self.sample_rate = SAMPLE_RATE

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        return self.waveforms[index], self.targets[index]

    def __repr__(self) -> str:
        return (f"FSDD(split={self.split}, n={len(self)}, speakers={self.speaker_names}, "
                f"sample_rate={self.sample_rate}, folder={self.folder})")


def list_recordings(folder: Path):
    """``[(digit, speaker, take, file name)]`` sorted by speaker, digit, take.

    Every ``.wav`` must be named ``{digit}_{speaker}_{take}.wav``; other files are ignored."""
    entries = []
    for path in folder.iterdir():
        if path.suffix.lower() != ".wav":
            continue
        match = NAME.match(path.name)
        if match is None:
            raise dl.CorruptFileError(f"{path}: FSDD file names must be {{digit}}_{{speaker}}_{{take}}.wav, "
                                      "e.g. 3_theo_17.wav")
        entries.append((int(match["digit"]), match["speaker"], int(match["take"]), path.name))
    if not entries:
        raise dl.CorruptFileError(f"{folder}: no {{digit}}_{{speaker}}_{{take}}.wav recordings in this folder")
    return sorted(entries, key=lambda e: (e[1], e[0], e[2]))


def _read(path: Path):
    try:
        waveform, rate = load_wav(path)
    except ValueError as error:
        raise dl.CorruptFileError(str(error)) from error
    if rate != SAMPLE_RATE or waveform.ndim != 1:
        raise dl.CorruptFileError(f"{path}: expected mono {SAMPLE_RATE} Hz audio, got {rate} Hz "
                                  f"with shape {waveform.shape}")
    return waveform


def _find(root: Path, download: bool, progress: bool) -> Path:
    candidates = [root / "fsdd" / "recordings", *sorted(root.glob("free-spoken-digit-dataset*/recordings")),
                  root / "recordings"]
    for folder in candidates:
        if folder.is_dir():
            return folder
    if download:
        return _download(root, progress)
    raise dl.not_found("FSDD", candidates, HOW_TO_GET)


def check_structure(folder: Path) -> None:
    """FSDD publishes no checksum, so a download is checked by its shape instead:
    exactly 3,000 ``{digit}_{speaker}_{take}.wav`` files, takes 0-49 of each digit for
    each of 6 speakers (``N_SPEAKERS``, ``N_TAKES``)."""
    entries = list_recordings(folder)
    speakers = sorted({e[1] for e in entries})
    found = {(e[0], e[1], e[2]) for e in entries}
    expected = {(d, s, t) for d in range(10) for s in speakers for t in range(N_TAKES)}
    if len(speakers) != N_SPEAKERS or found != expected or len(entries) != len(expected):
        raise dl.CorruptFileError(
            f"{folder}: expected {N_SPEAKERS * 10 * N_TAKES} recordings ({N_SPEAKERS} speakers x 10 digits "
            f"x takes 0-{N_TAKES - 1}), found {len(entries)} from speakers {speakers}; "
            f"the download is incomplete or not FSDD v{VERSION}")


def _download(root: Path, progress: bool) -> Path:
    archive = dl.download(URL, root / f"fsdd-v{VERSION}.tar.gz", progress=progress,
                          where_to_put=f"put its recordings/ folder at {root / 'fsdd' / 'recordings'}")
    try:
        with tempfile.TemporaryDirectory(dir=root, prefix=".unpack-") as scratch:
            dl.extract_tar(archive, scratch)
            recordings = Path(scratch) / f"free-spoken-digit-dataset-{VERSION}" / "recordings"
            if not recordings.is_dir():
                raise dl.CorruptFileError(f"{archive}: has no free-spoken-digit-dataset-{VERSION}/recordings folder")
            check_structure(recordings)
            dl.move_into_place(recordings, root / "fsdd" / "recordings")
    finally:
        archive.unlink(missing_ok=True)  # unpacked, or refused
    return root / "fsdd" / "recordings"
