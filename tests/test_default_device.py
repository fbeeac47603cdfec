"""With the default device set to 'cuda', host data lands on the GPU (like a list does), but
a model that was put on the CPU keeps computing there: no op moves its own arrays."""

import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn, optim


@pytest.mark.gpu
def test_a_cpu_model_trains_on_the_cpu_while_the_default_device_is_cuda(device):
    if device != "cuda":
        pytest.skip("the default device matters only when it is a GPU")
    minidl.set_default_device("cuda")
    try:
        assert minidl.Tensor(np.zeros(2)).device == "cuda" and minidl.tensor([1.0]).device == "cuda"
        model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Dropout(0.2), nn.Linear(8, 3)).to("cpu")
        opt = optim.Adam(model.parameters(), lr=1e-2)
        x = minidl.tensor(np.random.default_rng(0).standard_normal((4, 1, 4, 4)), dtype="float32", device="cpu")
        y = minidl.tensor([0, 1, 2, 1], device="cpu")
        for _ in range(2):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        assert loss.device == "cpu" and all(p.device == "cpu" for p in model.parameters())
        assert minidl.gradcheck(lambda t: F.max_pool2d(t, 2).sum(), [x.double().requires_grad_()])
    finally:
        minidl.set_default_device("cpu")
