"""What a training step costs on a GPU, beyond the math: copies, syncs, float64 arrays.

CPU half: the engine's rules that make a step cheap, checked on numpy (a stored gradient is
its own array, yet a fresh one is stored without a copy; the scalar seed is never written;
random draws in float32; integer draws uniform and in range, with per-sample bounds).

GPU half (``MINIDL_FAKE_CUDA=1 python -m pytest -m gpu tests/test_step_cost.py``): the
stand-in's meter counts a step of a Linear MLP, of each batch-transform pipeline and of the
data loader: no sync, no float64 array, and the launches the engine and Linear make themselves.
"""

import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn as nn
import minidl.nn.functional as F
from minidl import backend, optim
from minidl.data import ArrayDataset, DataLoader
from minidl.data import audio_transforms as AT
from minidl.data import transforms as T


# --------------------------------------------------------------------------- #
# CPU: the engine's gradient storage and seed
# --------------------------------------------------------------------------- #
def test_a_fresh_gradient_is_stored_as_it_is_a_shared_one_is_copied():
    w = minidl.randn(3, 4, requires_grad=True)
    b = minidl.randn(4, requires_grad=True)
    x = minidl.randn(5, 3)
    (x @ w + b).sum().backward()
    assert w.grad.data.base is None and w.grad.data.flags.c_contiguous
    np.testing.assert_allclose(w.grad.numpy(), x.numpy().T @ np.ones((5, 4)), rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), np.full(4, 5.0))
    # one gradient array reaching two leaves, directly and through a reshape: each gets its own
    u = minidl.randn(2, 3, requires_grad=True)
    v = minidl.randn(6, requires_grad=True)
    (u + v.reshape(2, 3)).sum().backward()
    assert not np.shares_memory(u.grad.data, v.grad.data)
    u.grad.zero_()
    assert v.grad.tolist() == [1.0] * 6
    p = minidl.randn(6, requires_grad=True)  # the reshaped view stored first, the array itself second
    q = minidl.randn(2, 3, requires_grad=True)
    (p.reshape(2, 3) + q).sum().backward()
    assert not np.shares_memory(p.grad.data, q.grad.data)


def test_a_broadcast_or_transposed_gradient_is_copied_into_c_order():
    w = minidl.randn(3, requires_grad=True)
    w.sum().backward()  # d/dw of a sum: the seed broadcast, one value seen three times
    assert w.grad.data.flags.c_contiguous and w.grad.data.flags.writeable and w.grad.tolist() == [1.0] * 3
    m = minidl.randn(3, 4, requires_grad=True)
    (minidl.randn(5, 3) @ m.T.T).sum().backward()
    assert m.grad.data.flags.c_contiguous


def test_the_scalar_seed_is_never_written_and_never_stored_as_it_is():
    x = minidl.tensor(2.0, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0
    x.grad.mul_(7.0)  # the stored gradient is a copy: the seed stays 1
    y = minidl.tensor(3.0, requires_grad=True)
    (y * y).backward()
    assert x.grad.item() == 7.0 and y.grad.item() == 6.0
    z = (y * 1.0)
    z.retain_grad()
    z.backward()
    z.grad.add_(1.0)
    (y * y).backward()
    assert y.grad.item() == 6.0 + 1.0 + 6.0 and z.grad.item() == 2.0


def test_max_and_min_backward_share_ties_in_the_input_dtype():
    x = minidl.tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]], dtype=np.float32), requires_grad=True)
    x.amax(dim=1).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5, 0.5], [0.5, 0, 0.5]])
    x.grad = None
    x.amin().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0, 0], [0, 1, 0]])


# --------------------------------------------------------------------------- #
# CPU: random draws of the batch transforms
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("dtype, drawn", [(np.uint8, np.float32), (np.float32, np.float32), (np.float16, np.float32),
                                          (np.float64, np.float64)])
def test_uniform_draws_in_float32_unless_the_batch_is_float64(dtype, drawn):
    u = T.RandomHorizontalFlip(generator=0).uniform(np.zeros((2, 3), dtype), (1000,))
    assert u.dtype == drawn and 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.05


@given(low=st.integers(-50, 50), span=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_integer_draws_cover_the_range_uniformly(low, span, seed):
    k = T.RandomCrop(1, generator=seed).integers(np.zeros(1, np.float32), low, low + span, (4000,))
    assert k.dtype == np.int64 and k.min() >= low and k.max() < low + span
    counts = np.bincount(k - low, minlength=span)
    assert counts.min() > 0 and counts.max() < 4000 / span * 1.5 + 25  # every value, none far too often


def test_integer_draws_take_one_range_per_sample():
    high = np.array([1, 2, 5, 100])
    k = T.RandomCrop(1, generator=3).integers(np.zeros(1, np.float32), 0, high, (5000, 4))
    assert (k >= 0).all() and (k < high).all() and (k[:, 0] == 0).all()
    assert set(np.unique(k[:, 2])) == {0, 1, 2, 3, 4} and k[:, 3].max() > 90


def test_the_largest_draw_below_one_never_reaches_the_top_of_a_range(monkeypatch):
    """integers() has no guard against u * span rounding up to span: check every span below 2**24."""
    transform = T.RandomCrop(1)
    for dtype in (np.float32, np.float64):
        largest = np.nextafter(dtype(1), dtype(0))
        monkeypatch.setattr(transform, "uniform", lambda batch, shape: np.full(shape, largest))
        for start in range(1, 2**24, 2**22):
            high = np.arange(start, min(start + 2**22, 2**24), dtype=np.int64)
            np.testing.assert_array_equal(transform.integers(np.zeros(1, dtype), 0, high, high.shape), high - 1)
        assert transform.integers(np.zeros(1, dtype), -5, 2**24 - 5, (1,))[0] == 2**24 - 6


def test_a_legacy_random_state_draw_that_rounds_to_one_is_kept_below_one():
    class Legacy:  # numpy's RandomState: random_sample without dtype, and a standard_normal
        standard_normal = None

        def random_sample(self, shape):
            return np.full(shape, 1 - 2**-30)

    u = T.RandomHorizontalFlip(generator=Legacy()).uniform(np.zeros(1, np.float32), (3,))
    assert u.dtype == np.float32 and (u < 1).all()


# --------------------------------------------------------------------------- #
# GPU (the stand-in's meter): a step costs no sync, no float64 array
# --------------------------------------------------------------------------- #
def _meter():
    """The stand-in's meter when cupy is the stand-in (MINIDL_FAKE_CUDA=1), else skip."""
    fake = sys.modules.get("minidl.fakecupy")
    if fake is None or backend.cupy is not fake:
        pytest.skip("counts launches on minidl.fakecupy (MINIDL_FAKE_CUDA=1)")
    return fake.meter


def _launches_from(measurement, path):
    return sum(n for site, n in measurement.site_counts["launches"].items() if site.startswith(path))


@pytest.mark.gpu
def test_an_mlp_step_makes_no_sync_no_float64_and_no_gradient_copy():
    meter = _meter()
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5)).to("cuda")
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    x = minidl.randn(16, 20, device="cuda")
    y = minidl.tensor(np.arange(16) % 5, device="cuda")

    def step():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    with meter.measure() as m:
        step()
    cost = m.report()
    assert cost["syncs"] == 0 and cost["float64_arrays"] == 0, cost
    # the engine itself launches nothing: no .grad copy, no seed of ones per step
    for path in ("minidl/autograd.py", "minidl/tensor.py", "minidl/creation.py"):
        assert _launches_from(m, path) == 0, m.sites(30)
    # Linear: forward one product + one bias add; backward dW, db (and dx but for the input layer)
    assert cost["matmuls"] == 2 + 2 + 1, cost
    assert _launches_from(m, "minidl/ops/linalg.py") == 2, m.sites(30)  # the bias adds


@pytest.mark.gpu
@pytest.mark.parametrize("pipeline", ["cifar", "cifar-constant", "audio", "spectrogram"])
def test_a_transform_pipeline_makes_no_sync_and_no_float64(pipeline):
    meter = _meter()
    rng = np.random.default_rng(0)
    if pipeline.startswith("cifar"):
        batch = backend.to_device(rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8), "cuda")
        mode = "constant" if pipeline == "cifar-constant" else "reflect"
        transform = T.Compose([T.ToDtype("float32", scale=True), T.RandomCrop(32, padding=4, padding_mode=mode),
                               T.RandomHorizontalFlip(), T.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))])
    elif pipeline == "audio":
        batch = backend.to_device(rng.standard_normal((8, 800)).astype(np.float32), "cuda")
        transform = T.Compose([AT.RandomTimeShift(50), AT.RandomTimeShift(20, mode="zero"),
                               AT.AddGaussianNoise((10, 30)), AT.AddGaussianNoise(20)])
    else:
        batch = backend.to_device(rng.standard_normal((8, 40, 60)).astype(np.float32), "cuda")
        transform = T.Compose([AT.FrequencyMasking(8, num_masks=2), AT.TimeMasking(10),
                               AT.TimeMasking(5, axis=-1, mask_value=-1.0)])
    transform(batch)  # the first call uploads the constants it keeps (Normalize's mean and std)
    with meter.measure() as m:
        out = transform(batch)
    cost = m.report()
    assert out.dtype == np.float32
    assert cost["syncs"] == 0 and cost["float64_arrays"] == 0 and cost["h2d_bytes"] == 0, (cost, m.sites())


@pytest.mark.gpu
def test_a_loader_epoch_uploads_its_order_once_and_never_syncs():
    meter = _meter()
    images = np.random.default_rng(0).integers(0, 256, (40, 3, 8, 8), dtype=np.uint8)
    loader = DataLoader(ArrayDataset(images, np.arange(40) % 10), batch_size=8, shuffle=True, device="cuda",
                        transform=T.Compose([T.ToDtype("float32", scale=True), T.RandomHorizontalFlip()]),
                        generator=0)
    with meter.measure() as m:
        batches = [(x.data, y.data) for x, y in loader]
    cost = m.report()
    assert len(batches) == 5 and batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int64
    assert cost["syncs"] == 0 and cost["float64_arrays"] == 0 and cost["h2d_bytes"] == 40 * 8, cost


@pytest.mark.gpu
def test_max_backward_on_the_device_makes_no_float64():
    meter = _meter()
    x = minidl.randn(6, 7, device="cuda", requires_grad=True)
    with meter.measure() as m:
        (x.amax(dim=1).sum() + x.amin()).backward()
    assert m.report()["float64_arrays"] == 0 and m.report()["syncs"] == 0, m.report()
