"""Random state that can be saved: minidl.Generator, manual_seed, get/set_rng_state.

The key test: a training run stopped after two epochs, saved, rebuilt from fresh objects and
resumed ends bit-identical to the run that never stopped (dropout and a shuffling loader
included). The rest checks the pieces: the CPU generator is numpy's default_rng(seed), a state
restores the exact same draws (after a save/load too), the devices keep separate states, and
a wrong state is refused with a message that says what was expected.
"""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import nn
from minidl.data import ArrayDataset, DataLoader
from minidl.optim import Adam
from minidl.optim.lr_scheduler import StepLR


# --------------------------------------------------------------------------- #
# The key test: resume a training run from a checkpoint, bit for bit
# --------------------------------------------------------------------------- #
def _dataset():
    rng = np.random.default_rng(0)  # fixed data, independent of minidl's generators
    x = rng.standard_normal((48, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return ArrayDataset(x, y)


def _build(init_seed):
    """Every object of a run, made fresh: model, optimizer, schedule, shuffling loader."""
    minidl.manual_seed(init_seed)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
    optimizer = Adam(model.parameters(), lr=0.01)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    loader = DataLoader(_dataset(), batch_size=10, shuffle=True, generator=minidl.Generator().manual_seed(99))
    return model, optimizer, scheduler, loader


def _train_epoch(model, optimizer, scheduler, loader):
    """One epoch; returns the summed loss as a float (read once, after the epoch)."""
    model.train()
    total = 0.0
    for x, y in loader:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        total += float(loss.item())
    scheduler.step()
    return total


def test_a_resumed_run_ends_bit_identical_to_the_run_that_never_stopped(tmp_path):
    run_a = _build(init_seed=1)
    losses_a = [_train_epoch(*run_a) for _ in range(4)]

    run_b = _build(init_seed=1)
    for _ in range(2):
        _train_epoch(*run_b)
    model, optimizer, scheduler, loader = run_b
    minidl.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "rng": minidl.get_rng_state(),
                 "loader_rng": loader.generator.get_state()}, tmp_path / "ckpt.npz")
    minidl.manual_seed(12345)  # scramble the process's state: only the checkpoint may count
    minidl.randn(7)

    model, optimizer, scheduler, loader = _build(init_seed=2)  # another init: all of it must be restored
    checkpoint = minidl.load(tmp_path / "ckpt.npz")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    minidl.set_rng_state(checkpoint["rng"])
    loader.generator.set_state(checkpoint["loader_rng"])
    losses_b = [_train_epoch(model, optimizer, scheduler, loader) for _ in range(2)]

    assert losses_b == losses_a[2:]
    assert scheduler.get_last_lr() == run_a[2].get_last_lr()
    for (name, p_a), (_, p_b) in zip(run_a[0].named_parameters(), model.named_parameters()):
        assert np.array_equal(p_a.numpy(), p_b.numpy()), f"{name} differs after resuming"


def test_resuming_without_the_rng_state_does_not_match():
    """The key test can fail: skip restoring the CPU state (the dropout masks) and runs part."""
    run_a = _build(init_seed=1)
    for _ in range(3):
        _train_epoch(*run_a)
    run_b = _build(init_seed=1)
    for _ in range(2):
        _train_epoch(*run_b)
    minidl.manual_seed(12345)  # the state is lost
    _train_epoch(*run_b)
    params_a, params_b = run_a[0].parameters(), run_b[0].parameters()
    assert not all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(params_a, params_b))


# --------------------------------------------------------------------------- #
# minidl.Generator on the CPU
# --------------------------------------------------------------------------- #
def test_a_cpu_generator_draws_what_numpys_default_rng_draws():
    g = minidl.Generator().manual_seed(5)
    reference = np.random.default_rng(5)
    np.testing.assert_array_equal(g.random((2, 3)), reference.random((2, 3)))
    np.testing.assert_array_equal(g.standard_normal(4, dtype=np.float32),
                                  reference.standard_normal(4, dtype=np.float32))
    np.testing.assert_array_equal(g.integers(0, 10, size=6), reference.integers(0, 10, size=6))
    np.testing.assert_array_equal(g.uniform(-2, 3, size=3), reference.uniform(-2, 3, size=3))
    np.testing.assert_array_equal(g.permutation(9), reference.permutation(9))
    assert g.uniform(size=2, dtype=np.float32).dtype == np.float32


def test_manual_seed_returns_the_generator_and_initial_seed_reports_it():
    g = minidl.Generator()
    assert g.manual_seed(42) is g and g.initial_seed() == 42 and g.device == "cpu"
    assert "initial_seed=42" in repr(g)
    assert minidl.manual_seed(7) is minidl.random.default_generator("cpu") and minidl.initial_seed() == 7


def test_seed_is_non_deterministic_and_reported():
    chosen = minidl.seed()
    assert isinstance(chosen, int) and minidl.initial_seed() == chosen
    assert minidl.seed() != chosen  # 64 random bits: equal only by a miracle
    g = minidl.Generator()
    assert g.initial_seed() != minidl.Generator().initial_seed()
    assert g.seed() == g.initial_seed()


draws = st.lists(st.sampled_from(["random", "random32", "normal", "integers", "permutation"]), max_size=6)


def _draw(generator, how):
    if how == "random":
        return generator.random(3)
    if how == "random32":  # an odd count of 32-bit draws leaves half a 64-bit word cached (has_uint32)
        return generator.random(3, dtype=np.float32)
    if how == "normal":
        return generator.standard_normal(2)
    if how == "integers":
        return generator.integers(0, 1000, size=3)
    return generator.permutation(5)


@given(seed=st.integers(0, 2**64), before=draws, after=draws)
def test_a_saved_state_repeats_every_later_draw(seed, before, after):
    g = minidl.Generator().manual_seed(seed)
    for how in before:
        _draw(g, how)
    state = g.get_state()
    first = [_draw(g, how) for how in after]
    other = minidl.Generator().manual_seed(seed + 1)
    other.set_state(json.loads(json.dumps(state)))  # plain data: survives JSON
    for how, expected in zip(after, first):
        np.testing.assert_array_equal(_draw(other, how), expected)
    assert other.initial_seed() == seed


def test_the_half_word_numpy_caches_is_part_of_the_state():
    g = minidl.Generator().manual_seed(3)
    g.random(1, dtype=np.float32)
    state = g.get_state()
    assert state["has_uint32"] == 1
    expected = g.random(1, dtype=np.float32)
    g.set_state(state)
    np.testing.assert_array_equal(g.random(1, dtype=np.float32), expected)


def test_a_state_is_a_copy_and_plain_data(tmp_path):
    g = minidl.Generator().manual_seed(1)
    state = g.get_state()
    state["state"]["state"] = 0  # changing the copy changes nothing
    assert g.get_state()["state"]["state"] != 0
    minidl.save({"rng": g.get_state()}, tmp_path / "rng.npz")
    loaded = minidl.load(tmp_path / "rng.npz")["rng"]
    assert loaded == g.get_state() and json.loads(json.dumps(loaded)) == loaded


def test_get_and_set_rng_state_rewind_randn_and_dropout():
    state = minidl.get_rng_state()
    noise = minidl.randn(4).numpy()
    mask = nn.functional.dropout(minidl.ones(20), 0.5).numpy()
    minidl.randn(3)
    minidl.set_rng_state(state)
    np.testing.assert_array_equal(minidl.randn(4).numpy(), noise)
    np.testing.assert_array_equal(nn.functional.dropout(minidl.ones(20), 0.5).numpy(), mask)


def test_a_private_generator_leaves_the_default_one_alone():
    state = minidl.get_rng_state()
    nn.init.normal_(minidl.zeros(5), generator=minidl.Generator().manual_seed(0))
    assert minidl.get_rng_state() == state
    weights = nn.init.normal_(minidl.zeros(5), generator=minidl.Generator().manual_seed(0)).numpy()
    np.testing.assert_array_equal(weights, np.random.default_rng(0).standard_normal(5).astype(np.float32))


# --------------------------------------------------------------------------- #
# Wrong states and seeds are refused, and change nothing
# --------------------------------------------------------------------------- #
def _good():
    return minidl.Generator().manual_seed(0).get_state()


def _with(**changes):
    state = _good()
    state.update(changes)
    return state


@pytest.mark.parametrize(
    "state, error, message",
    [
        ([1, 2], TypeError, r"Generator.set_state: expected a dict from Generator.get_state\(\) .* got list"),
        (np.zeros(3, np.uint8), TypeError, "Generator.set_state: expected a dict .* got ndarray"),
        (_with(kind="numpy"), ValueError, "expected a state with kind 'minidl.Generator', got kind 'numpy'"),
        (_with(device="cuda:0"), ValueError, "this state belongs to a generator on device 'cuda:0', not on 'cpu'"),
        (_with(bit_generator="MT19937"), ValueError, "expected a PCG64 state for 'cpu', got 'MT19937'"),
        (_with(seed=-1), ValueError, r"expected 'seed' to be an integer in \[0, 2\*\*128\), got -1"),
        (_with(state={"state": 1}), ValueError, r"expected state\['inc'\] to be an integer .* got None"),
        (_with(state={"state": 2**128, "inc": 1}), ValueError, r"state\['state'\] to be an integer"),
        (_with(state=[1, 2]), ValueError, "expected 'state' to be a dict with 'state' and 'inc', got"),
        (_with(has_uint32=True), ValueError, r"expected 'has_uint32' to be an integer in \[0, 2\*\*1\), got True"),
        (_with(uinteger=1.5), ValueError, "expected 'uinteger' to be an integer"),
        ({k: v for k, v in _good().items() if k != "seed"}, ValueError, "expected 'seed' to be an integer .* got None"),
    ],
)
def test_set_state_refuses_what_is_not_a_state_for_this_generator(state, error, message):
    g = minidl.Generator().manual_seed(8)
    before = g.get_state()
    with pytest.raises(error, match=message):
        g.set_state(state)
    assert g.get_state() == before


def test_set_rng_state_names_itself_and_the_device():
    wrong_device = "set_rng_state: this state belongs to a generator on device 'cpu', not on 'cuda:0'"
    with pytest.raises(ValueError, match=wrong_device):
        minidl.set_rng_state(minidl.get_rng_state(), device="cuda")
    with pytest.raises(TypeError, match="set_rng_state: expected a dict"):
        minidl.set_rng_state(b"\x00\x01")


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True, None])
def test_bad_seeds_are_refused(seed):
    with pytest.raises(ValueError, match="Generator.manual_seed: expected a non-negative integer"):
        minidl.Generator().manual_seed(seed)
    with pytest.raises(ValueError, match="manual_seed: expected a non-negative integer"):
        minidl.manual_seed(seed)


def test_generator_device_must_exist():
    with pytest.raises(ValueError, match="Device: expected 'cpu', 'cuda' or 'cuda:N', got 'tpu'"):
        minidl.Generator("tpu")


# --------------------------------------------------------------------------- #
# CUDA generators: counter-based state (seed, draws); on the fake GPU without one
# --------------------------------------------------------------------------- #
needs_gpu = [pytest.mark.gpu, pytest.mark.skipif(not minidl.cuda.is_available(), reason="needs cupy and a GPU")]


@pytest.mark.parametrize("_", [pytest.param(0, marks=needs_gpu)])
def test_a_cuda_state_counts_draws_and_repeats_them(_):
    g = minidl.Generator("cuda").manual_seed(3)
    assert g.device == "cuda:0" and g.get_state()["draws"] == 0
    g.random(4)
    state = g.get_state()
    assert state == {"kind": "minidl.Generator", "device": "cuda:0", "seed": 3, "bit_generator": "Philox4x3210",
                     "draws": 1}
    later = [g.random(5, dtype=np.float32), g.standard_normal((2, 2)), g.integers(0, 9, size=4), g.uniform(1, 2, 3)]
    assert minidl.backend.is_cupy_array(later[0]) and later[0].dtype == np.float32
    fresh = minidl.Generator("cuda").manual_seed(77)
    fresh.set_state(state)
    again = [fresh.random(5, dtype=np.float32), fresh.standard_normal((2, 2)), fresh.integers(0, 9, size=4),
             fresh.uniform(1, 2, 3)]
    for expected, got in zip(later, again):
        np.testing.assert_array_equal(minidl.backend.to_numpy(got), minidl.backend.to_numpy(expected))
    first, second = g.random(50), g.random(50)  # each draw its own stream: no repeats
    assert not np.array_equal(minidl.backend.to_numpy(first), minidl.backend.to_numpy(second))


@pytest.mark.parametrize("_", [pytest.param(0, marks=needs_gpu)])
def test_devices_keep_separate_default_generators_and_states(_):
    minidl.manual_seed(4)
    cpu_state, cuda_state = minidl.get_rng_state(), minidl.get_rng_state("cuda")
    assert cuda_state["seed"] == 4 and cuda_state["device"] == "cuda:0"
    cuda_noise = minidl.randn(6, device="cuda").numpy()
    assert minidl.get_rng_state() == cpu_state  # a GPU draw leaves the CPU generator alone
    cpu_noise = minidl.randn(6).numpy()
    assert minidl.get_rng_state("cuda") != cuda_state
    minidl.set_rng_state(cuda_state, device="cuda")
    np.testing.assert_array_equal(minidl.randn(6, device="cuda").numpy(), cuda_noise)
    minidl.set_rng_state(cpu_state)
    np.testing.assert_array_equal(minidl.randn(6).numpy(), cpu_noise)
    with pytest.raises(ValueError, match="set_rng_state: this state belongs to a generator on device 'cuda:0'"):
        minidl.set_rng_state(cuda_state)
    with pytest.raises(ValueError, match=r"expected 'draws' to be an integer in \[0, 2\*\*64\), got -1"):
        minidl.set_rng_state(dict(cuda_state, draws=-1), device="cuda")


@pytest.mark.parametrize("_", [pytest.param(0, marks=needs_gpu)])
def test_a_cuda_generator_cannot_shuffle_but_feeds_dropout_and_init(_):
    g = minidl.Generator("cuda").manual_seed(0)
    with pytest.raises(RuntimeError, match="Generator.permutation: only a CPU generator can shuffle .* on 'cuda:0'"):
        g.permutation(5)
    weight = minidl.zeros(3, 4, device="cuda")
    nn.init.normal_(weight, generator=g)
    assert weight.device == "cuda:0" and float(abs(weight).sum().item()) > 0
