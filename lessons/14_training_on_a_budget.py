# %% [markdown]
# # Lesson 14: training within a budget. What mixed precision, gradient accumulation, early
# stopping and more augmentation cost and buy, measured side by side on CIFAR-10.
#
# Training is paid for in time and in memory, and four standard techniques trade them:
#
# 1. **Mixed precision** (`minidl.amp`). Inside `amp.autocast()` the matrix products of
#    convolutions and dense layers run in float16 on float16 copies of their inputs, while
#    losses, softmax, reductions and batch-norm statistics stay in float32, and the weights
#    themselves stay float32 ("master weights": an update of $10^{-4}$ on a weight of 1 is lost in
#    float16, whose spacing near 1 is $2^{-10} \approx 10^{-3}$). Small gradients underflow in float16 (below
#    $2^{-24} \approx 6 \times 10^{-8}$ they are 0), so `amp.GradScaler` multiplies the loss by a large scale $S$ before backward
#    (every gradient is then $S$ times larger, by the chain rule: $\partial (S L) / \partial w = S\, \partial L / \partial w$),
#    divides the gradients by $S$ before the optimizer step, skips the step when a gradient overflowed to inf, and halves $S$
#    then; after 2000 clean steps it doubles $S$ again. Activations stored for backward take half
#    the memory. Time is another matter: a GPU's tensor cores are built for float16 products
#    (run with `--device cuda` to measure what they give), but NumPy has no float16 matrix
#    product in BLAS (part 4 times it), so on the CPU minidl multiplies float16 inputs in float32
#    and rounds the result to float16 (the numbers a tensor core gives), and NumPy's float16
#    elementwise work and conversions still make the whole step slower than float32 there.
# 2. **Gradient accumulation.** The gradient of a mean loss over a batch of $B$ samples is the
#    mean of the gradients over $k$ chunks of $B/k$:
#
#    $$\frac{\partial}{\partial w} \frac{1}{B} \sum_{i=1}^{B} L_i
#      = \frac{1}{k} \sum_{j=1}^{k} \left[ \frac{\partial}{\partial w} \frac{k}{B} \sum_{i \in \text{chunk } j} L_i \right]$$
#
#    so `(loss / k).backward()` on each chunk (gradients add up in `.grad`) and one
#    `optimizer.step()` after the $k$-th gives the batch-$B$ step with the memory of batch $B/k$.
#    Exactly, for layers that treat samples independently; batch norm does not (it normalises
#    with the statistics of the chunk it sees), and part 2 measures by how much.
# 3. **Early stopping** on a validation split held out of the training set (never the test
#    set, which must stay unseen until the end): stop when the validation accuracy has not
#    improved for `patience` epochs, and go back to the best weights. The same validation
#    accuracy drives `ReduceLROnPlateau`, which halves the learning rate after an epoch
#    without improvement: smaller steps often find a little more before stopping is right.
# 4. **Augmentation by rotation**, on the device, one random angle per image, on top of random
#    crops and flips: more varied training images, at a cost per batch.
#
# The table at the end puts time per epoch, peak memory, epochs and test accuracy side by side.
# On the CPU the default is a small budget (a 10,000-image subset, a few epochs) so the whole
# lesson runs in minutes; with `--device cuda` give it the full set (`--train-size 50000`).
#
# Measured with the defaults on the 2-core build machine (numpy, seed 0, 2026-12-06, 405 s):
#
#     run                                         s/epoch  peak step memory  epochs    test acc
#     float32, crop + flip                            8.6        131.3 MiB   4 of 4       43.6 %
#     mixed precision (float16 products)             33.5         90.2 MiB   4 of 4       45.3 %
#     batch 512, one step                             7.6        523.1 MiB   4 of 4       34.8 %
#     batch 512 = 4 x 128 accumulated                 8.4        131.9 MiB   4 of 4       34.9 %
#     rotation + crop + flip                          8.5        131.3 MiB   4 of 4       40.2 %
#     no augmentation, early stopping (patience 2)    7.8        131.3 MiB  15 of 20      50.3 %
#
# Mixed precision took 31 % less memory per step and did not cost accuracy here (45.3 % against
# 43.6 %; one of its 280 steps overflowed and was skipped, the scale halved to 32768), but on NumPy
# it was 3.9x slower.
# Four accumulated chunks of 128 gave the batch-512 result (34.8 % and 34.9 %) with a quarter of
# its memory; both trail batch 128 because four times fewer steps fit in the same epochs. Rotation
# on top of crop and flip cost 3.4 points in this 4-epoch budget: a harder training task needs more
# epochs to pay off (try `--epochs 20`; not measured here). Without augmentation, early stopping
# ended the run 5 epochs early and went back to the best validation epoch (13).
#
# Run:  python lessons/14_training_on_a_budget.py [--device cuda] [--epochs N] [--data DIR] [--smoke]
# Data: --data, else `$MINIDL_DATA`, else ./datasets, else it is downloaded (163 MB).

# %% [markdown]
# ## Setup: arguments, device, output folder

# %%
import time
import tracemalloc
from pathlib import Path

import numpy as np

import common  # noqa: E402  (lessons/common.py: the flags and set-up every lesson shares)
import minidl  # noqa: E402
import minidl.nn as nn  # noqa: E402
import minidl.nn.functional as F  # noqa: E402
from minidl import amp, optim  # noqa: E402
from minidl.data import ArrayDataset, DataLoader, random_split  # noqa: E402
from minidl.data import transforms as T  # noqa: E402

p = common.parser("Lesson 14: training within a budget", epochs=4, batch_size=128, out="runs/14_training_on_a_budget")
p.add_argument("--lr", type=float, default=2e-3, help="Adam's learning rate (default: 2e-3)")
p.add_argument("--train-size", type=int, default=10000, help="training images (default: 10000; 50000 = all)")
p.add_argument("--test-size", type=int, default=2000, help="test images (default: 2000; 10000 = all)")
p.add_argument("--patience", type=int, default=2, help="early stopping: epochs without improvement (default: 2)")
args, _ = p.parse_known_args()
if args.smoke:
    args.epochs, args.train_size, args.test_size, args.batch_size = 1, 512, 256, 64
device = common.setup(args)
out = Path(args.out)
lesson_start = time.perf_counter()

# %% [markdown]
# ## 1. The data, with a validation split held out of the training images

# %%
train_x, train_y, test_x, test_y, classes = common.cifar10(args, args.train_size, args.test_size)
train_set, val_set = random_split(ArrayDataset(train_x, train_y), [0.9, 0.1], generator=args.seed)
print(f"{len(train_set):,} images to train on, {len(val_set):,} held out for validation (early stopping)")
to_unit_range = T.ToDtype("float32", scale=True)
crop_flip = T.Compose([to_unit_range, T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()])
rotate_crop_flip = T.Compose([to_unit_range, T.RandomRotation(15), T.RandomCrop(32, padding=4),
                              T.RandomHorizontalFlip()])
val_loader = DataLoader(val_set, batch_size=500, device=device, transform=to_unit_range)
test_loader = DataLoader(ArrayDataset(test_x, test_y), batch_size=500, device=device, transform=to_unit_range)


def make_model(batch_norm=False):
    """Lesson 05's classic CNN (optionally with batch norm after each convolution)."""
    norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
    return nn.Sequential(
        nn.Conv2d(3, 32, kernel_size=3), norm(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, kernel_size=3), norm(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 6 * 6, 64), nn.ReLU(), nn.Linear(64, len(classes)),
    ).to(device)


# %% [markdown]
# ## 2. Gradient accumulation: $k$ chunks of $B/k$ give the gradient of one batch of $B$

# %%
def gradients(model, x, y, chunks):
    """The gradient of the mean loss over (x, y), accumulated over ``chunks`` equal chunks."""
    model.zero_grad()
    for xc, yc in zip(x.chunk(chunks), y.chunk(chunks)):
        (F.cross_entropy(model(xc), yc) / chunks).backward()
    return np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])


x, y = next(iter(DataLoader(train_set, batch_size=128, device=device, transform=to_unit_range)))
print("\nthe gradient of one batch of 128, and of 4 accumulated chunks of 32 (float64 weights and inputs):")
for batch_norm in (False, True):
    minidl.manual_seed(args.seed)
    model = make_model(batch_norm).double()
    whole, accumulated = gradients(model, x.double(), y, 1), gradients(model, x.double(), y, 4)
    difference = np.abs(whole - accumulated).max() / np.abs(whole).max()
    print(f"  {'with' if batch_norm else 'without':>7} batch norm: largest difference {difference:.1e} "
          f"of the largest gradient element")
print("Without batch norm they agree to rounding; batch norm normalises each chunk with its own mean and\n"
      "variance, so its accumulated gradient is that of a different function of the batch.")


# %% [markdown]
# ## 3. One training run, under a configuration; everything the table needs comes back

# %%
def train(name, epochs, augment, batch_size=args.batch_size, use_amp=False, accumulate=1, early_stopping=False):
    """Adam on the training split, one optimizer step per batch of ``batch_size`` images, which
    go through the model in ``accumulate`` chunks; with ``early_stopping``, the validation
    accuracy also halves the learning rate when it stalls; returns the row of the table."""
    minidl.manual_seed(args.seed)
    model = make_model()
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scaler = amp.GradScaler(enabled=use_amp)  # with enabled=False every call passes straight through
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, device=device, transform=augment,
                        generator=args.seed, drop_last=True)

    skipped = 0

    def step(x, y):  # one optimizer step: the gradients of the chunks add up in .grad
        nonlocal skipped
        with np.errstate(over="ignore"):  # a float16 overflow is expected now and then: the scaler catches it
            for xc, yc in zip(x.chunk(accumulate), y.chunk(accumulate)):
                with amp.autocast(enabled=use_amp):
                    loss = F.cross_entropy(model(xc), yc) / accumulate
                scaler.scale(loss).backward()
        scale = scaler.get_scale()
        scaler.step(optimizer)  # skipped when a gradient is inf or NaN
        scaler.update()  # ... and then the scale halves
        skipped += scaler.get_scale() < scale
        optimizer.zero_grad()

    peak = peak_memory_of(step, next(iter(loader)))
    minidl.manual_seed(args.seed)
    model = make_model()  # the measured step changed the weights: start again from the same ones
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scaler, skipped = amp.GradScaler(enabled=use_amp), 0
    if early_stopping:  # both decide from the validation split, never from the test set
        stopper = optim.EarlyStopping(patience=args.patience, mode="max")
        plateau = optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=0)
    clock, ran = common.Stopwatch(device), 0
    for epoch in range(1, epochs + 1):
        with clock:
            model.train()
            for x, y in loader:
                step(x, y)
        ran = epoch
        _, predicted, targets = common.evaluate(model, val_loader)
        val_accuracy = float((predicted == targets).mean())
        print(f"  {name}: epoch {epoch}/{epochs}, validation accuracy {val_accuracy:.1%} ({clock.seconds:.0f} s)")
        if early_stopping:
            plateau.step(val_accuracy)
            if stopper.step(val_accuracy, model):
                print(f"  no improvement for {stopper.patience} epochs: stop, back to the weights of epoch "
                      f"{stopper.best_epoch + 1} (learning rate now {plateau.get_last_lr()[0]:g})")
                break
    if early_stopping:
        stopper.restore_best(model)
    if use_amp:
        print(f"  GradScaler: {skipped} of {ran * len(loader)} steps skipped (a float16 gradient overflowed), "
              f"scale {scaler.get_scale():g} (it started at {2.0**16:g})")
    _, predicted, targets = common.evaluate(model, test_loader)
    return {"run": name, "s/epoch": clock.seconds / ran, "peak": peak, "epochs": f"{ran} of {epochs}",
            "test": float((predicted == targets).mean())}


def peak_memory_of(step, batch):
    """Bytes allocated at the fullest moment of one training step: the GPU memory pool on cuda;
    on the CPU, what tracemalloc sees numpy allocate (activations, gradients, temporaries)."""
    if device.type == "cuda":
        minidl.cuda.synchronize()
        minidl.cuda.reset_peak_memory_stats()
        step(*batch)
        minidl.cuda.synchronize()
        return minidl.cuda.max_memory_allocated()
    tracemalloc.start()
    step(*batch)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


# %% [markdown]
# ## 4. The runs

# %%
if device.type == "cpu":  # why float16 on NumPy is not about speed: no float16 BLAS
    a32 = np.random.default_rng(args.seed).standard_normal((512, 512)).astype(np.float32)
    seconds = {}
    for dtype in (np.float32, np.float16):
        a = a32.astype(dtype)
        start = time.perf_counter()
        for _ in range(3):
            a @ a
        seconds[dtype] = (time.perf_counter() - start) / 3
    print(f"\nNumPy, a 512x512 matrix product: float32 {seconds[np.float32] * 1e3:.1f} ms, float16 "
          f"{seconds[np.float16] * 1e3:.0f} ms ({seconds[np.float16] / seconds[np.float32]:.0f}x slower)")
print(f"\ntraining runs: {args.epochs} epochs each, batch {args.batch_size}, Adam lr {args.lr}")
rows = [train("float32, crop + flip", args.epochs, crop_flip),
        train("mixed precision (float16 products), crop + flip", args.epochs, crop_flip, use_amp=True)]
big = 4 * args.batch_size  # the same big batch in one step, then as 4 accumulated chunks
rows.append(train(f"batch {big}, one step", args.epochs, crop_flip, batch_size=big))
rows.append(train(f"batch {big} = 4 x {args.batch_size} accumulated", args.epochs, crop_flip, batch_size=big,
                  accumulate=4))
rows.append(train("rotation + crop + flip", args.epochs, rotate_crop_flip))
# Without augmentation the model memorises its 9,000 images within a few epochs: the validation
# accuracy peaks and then falls, which is what early stopping is for.
rows.append(train(f"no augmentation, early stopping (patience {args.patience})", 5 * args.epochs, to_unit_range,
                  early_stopping=True))

# %% [markdown]
# ## 5. Side by side

# %%
table = [f"{'run':<50} {'s/epoch':>8} {'peak step memory':>17} {'epochs':>8} {'test acc':>8}"]
for row in rows:
    table.append(f"{row['run']:<50} {row['s/epoch']:>8.1f} {row['peak'] / 2**20:>13.1f} MiB {row['epochs']:>8} "
                 f"{row['test']:>8.1%}")
print("\n" + "\n".join(table))
(out / "budget_table.txt").write_text("\n".join(table) + "\n")
print(f"saved {out / 'budget_table.txt'}")
common.synchronize(device)
print(f"lesson 14 | {len(train_set):,} training images | wall time {time.perf_counter() - lesson_start:.0f} s | "
      f"peak memory {common.peak_memory(device)} | device {device}")
