"""minidl.data: datasets, the DataLoader, and batch transforms that run on the batch's device.

    from minidl.data import ArrayDataset, DataLoader, transforms as T

    augment = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.Normalize(mean, std)])
    loader = DataLoader(ArrayDataset(x, y), batch_size=512, shuffle=True, device="cuda", transform=augment)

``transforms`` holds the image transforms (N, C, H, W); ``audio_transforms`` those for
waveforms (N, T) and spectrograms (N, F, T). ``Subset`` and ``random_split`` hold out a
validation set: ``train_set, val_set = random_split(dataset, [0.9, 0.1], generator=0)``.
"""

from minidl.data import audio_transforms, transforms
from minidl.data.collate import default_collate, pad_collate, pad_sequences
from minidl.data.dataset import ArrayDataset, Dataset
from minidl.data.loader import DataLoader
from minidl.data.split import Subset, random_split

__all__ = [
    "ArrayDataset",
    "DataLoader",
    "Dataset",
    "Subset",
    "audio_transforms",
    "default_collate",
    "pad_collate",
    "pad_sequences",
    "random_split",
    "transforms",
]
