# %% [markdown]
# # Lesson 04: convolution and pooling from scratch, and what a filter does to an image.
#
# A convolution slides a small kernel over the image and takes a weighted sum at every
# position (deep learning's "convolution" is, strictly, cross-correlation: the kernel is
# not flipped; PyTorch's is the same), with stride $s$ and $x^{\text{pad}}$ the zero-padded input:
#
# $$y_{n,o,p,q} = b_o + \sum_{c,i,j} W_{o,c,i,j}\; x^{\text{pad}}_{n,\,c,\,ps + i,\,qs + j}$$
#
# Written as seven nested loops it is the definition, and far too slow to train with.
# minidl computes it as im2col: copy every window into one column, then do one matrix
# product (see minidl/ops/conv.py). This lesson measures:
#
# 1. the loops against im2col (`F.conv2d`): the same numbers, and how much faster (the
#    printed ratio of median times: it depends on the machine and how busy it is);
# 2. im2col itself on a $4 \times 4$ image, and the convolution as `W @ cols`;
# 3. max and average pooling by loops against `F.max_pool2d` / `F.avg_pool2d`, and
#    where max pooling sends its gradient;
# 4. gradcheck of convolution and pooling, and the gradient of a convolution written as
#    another convolution (with the kernel flipped);
# 5. hand-made filters (blur, sharpen, Sobel edges, Laplacian) applied to real CIFAR-10
#    images (synthetic ones, saying so, when CIFAR-10 is not found): the kind of feature a
#    conv layer's first filters compute (lesson 05 plots the ones it learns).
#
# Run:  python lessons/04_conv_and_pool.py [--device cuda] [--smoke] [--data DIR] [--out DIR]
# Then write im2col and col2im yourself:  python -m minidl.exercises check im2col_col2im

# %% [markdown]
# ## Setup: arguments, device, output folder

# %%
import os
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # draws without a display

import common  # lessons/common.py: the flags and set-up every lesson shares
import minidl
import minidl.nn.functional as F
from minidl import datasets, gradcheck, plot

flags = common.parser("Lesson 04: convolution and pooling from scratch", out="runs/04_conv_and_pool")
args, _ = flags.parse_known_args()
device = common.setup(args)  # seeds, checks the device, makes --out
rng = np.random.default_rng(args.seed)
out = Path(args.out)
lesson_start = time.perf_counter()


def on_device(values, requires_grad=False):
    return minidl.tensor(np.asarray(values), dtype=np.float64, device=device, requires_grad=requires_grad)


# %% [markdown]
# ## 1. Convolution by loops: the definition, one multiply-add at a time

# %%
def conv2d_loops(x, weight, bias, stride=1, padding=0):
    """y[n, o, p, q] = b[o] + sum_(c, i, j) W[o, c, i, j] * x_pad[n, c, p*stride + i, q*stride + j]
    on numpy arrays: x (N, C, H, W), weight (O, C, KH, KW), bias (O,)."""
    batch, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out_h = (height + 2 * padding - kh) // stride + 1
    out_w = (width + 2 * padding - kw) // stride + 1
    y = np.zeros((batch, out_channels, out_h, out_w))
    for n in range(batch):
        for o in range(out_channels):
            for p in range(out_h):
                for q in range(out_w):
                    total = bias[o]
                    for c in range(channels):
                        for i in range(kh):
                            for j in range(kw):
                                total += weight[o, c, i, j] * x_pad[n, c, p * stride + i, q * stride + j]
                    y[n, o, p, q] = total
    return y


print("\nconv2d by 7 nested loops vs F.conv2d (im2col + one matmul), float64")
print(f"{'x shape':>16} {'W shape':>14} {'stride':>6} {'pad':>4} {'max |loops - im2col|':>21}")
for x_shape, w_shape, stride, padding in [
    ((2, 3, 7, 7), (4, 3, 3, 3), 1, 0),
    ((2, 3, 7, 7), (4, 3, 3, 3), 2, 1),
    ((1, 2, 6, 5), (3, 2, 2, 4), 1, 2),  # non-square kernel and image
    ((3, 1, 5, 5), (2, 1, 1, 1), 1, 0),  # a 1x1 convolution mixes channels only
]:
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    by_loops = conv2d_loops(x, w, b, stride, padding)
    by_im2col = F.conv2d(on_device(x), on_device(w), on_device(b), stride=stride, padding=padding).numpy()
    assert by_loops.shape == by_im2col.shape, (by_loops.shape, by_im2col.shape)
    print(f"{str(x_shape):>16} {str(w_shape):>14} {stride:>6} {padding:>4} {np.abs(by_loops - by_im2col).max():>21.1e}")

# The same numbers; now the time, on a CIFAR-sized batch with 16 filters (3x3, padding 1).
# One call's time depends on what else the machine is doing, so each way runs once to warm up
# (on a GPU: compile kernels, fill the memory pool) and then `calls` times; we keep the median.
# On a CPU the matrix product runs in OpenBLAS, with one thread per core unless OPENBLAS_NUM_THREADS
# says otherwise, so the line says which. Try OPENBLAS_NUM_THREADS=1 too: on a busy 2-core machine
# the threads waited for each other and one thread was about 13x faster (lessons/README.md, results).
x_shape, w_shape = ((2, 3, 8, 8), (4, 3, 3, 3)) if args.smoke else ((8, 3, 32, 32), (16, 3, 3, 3))
x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
xd, wd, bd = on_device(x), on_device(w), on_device(b)
calls = 5


def seconds_per_call(fn):
    """The result of a warm-up call, and the median, fastest and slowest of `calls` timed calls."""
    result = fn()
    times = []
    for _ in range(calls):
        with common.Stopwatch(device) as clock:
            fn()
        times.append(clock.seconds)
    return result, float(np.median(times)), min(times), max(times)


by_loops, loops_s, loops_min, loops_max = seconds_per_call(lambda: conv2d_loops(x, w, b, padding=1))
by_im2col, im2col_s, im2col_min, im2col_max = seconds_per_call(lambda: F.conv2d(xd, wd, bd, padding=1))
multiply_adds = np.prod(by_loops.shape) * np.prod(w_shape[1:])
print(f"\nx {x_shape}, W {w_shape}: {multiply_adds:,} multiply-adds; median of {calls} calls after a warm-up "
      f"(fastest-slowest) on {device}"
      + (f", OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}" if device.type == "cpu" else ""))
print(f"loops  {loops_s:8.3f} s ({loops_min:.3f}-{loops_max:.3f})     "
      f"({multiply_adds / loops_s / 1e6:8.2f} million multiply-adds per second)")
print(f"im2col {im2col_s:8.4f} s ({im2col_min:.4f}-{im2col_max:.4f})   "
      f"({multiply_adds / im2col_s / 1e6:8.0f} million multiply-adds per second)")
print(f"im2col is {loops_s / im2col_s:,.0f}x faster here (ratio of the medians; it depends on the machine, "
      f"its load and the sizes), max difference {np.abs(by_loops - by_im2col.numpy()).max():.1e}")
print(f"The loops spend {1e9 * loops_s / multiply_adds:.0f} ns per multiply-add on Python's bookkeeping (fetch, "
      "box, add, store);\none big matrix product does the same arithmetic in compiled, vectorised code.")


# %% [markdown]
# ## 2. im2col: every window becomes a column
#
# For a $4 \times 4$ image and a $3 \times 3$ kernel there are $2 \times 2 = 4$ windows; `cols[:, l]` is window $l$,
# read row by row. Then the convolution of every window at once is one matrix product
# (`y = W.reshape(O, C*KH*KW) @ cols`), of shape (O, 4), reshaped to (O, 2, 2):
# $$y = W_{\text{mat}}\, \text{cols}, \qquad W_{\text{mat}} \in \mathbb{R}^{O \times C K_H K_W}.$$

# %%
image = on_device(np.arange(16.0).reshape(1, 1, 4, 4))
cols = F.unfold(image, kernel_size=3)  # PyTorch's name for im2col: (N, C*KH*KW, windows)
print(f"\nimage (1, 1, 4, 4):\n{image.numpy()[0, 0]}")
print(f"im2col with a 3x3 kernel: cols {tuple(cols.shape)} (window elements x windows)\n{cols.numpy()[0]}")
kernel = on_device(rng.standard_normal((2, 1, 3, 3)))
as_matmul = (kernel.reshape(2, 9) @ cols[0]).reshape(1, 2, 2, 2)
print("max |W @ cols - F.conv2d| =", f"{np.abs(as_matmul.numpy() - F.conv2d(image, kernel).numpy()).max():.1e}")
print("Every pixel is copied once per window it lies in (here the 4 centre pixels 4 times):\n"
      "im2col trades memory (KH*KW copies) for speed (one matmul).")


# %% [markdown]
# ## 3. Pooling by loops vs the library

# %%
def pool2d_loops(x, kernel, stride, reduce):
    """y[n, c, p, q] = reduce(x[n, c, p*stride : p*stride + kernel, q*stride : q*stride + kernel])."""
    batch, channels, height, width = x.shape
    out_h, out_w = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    y = np.zeros((batch, channels, out_h, out_w))
    for n in range(batch):
        for c in range(channels):
            for p in range(out_h):
                for q in range(out_w):
                    y[n, c, p, q] = reduce(x[n, c, p * stride:p * stride + kernel, q * stride:q * stride + kernel])
    return y


print("\npooling by loops vs F.max_pool2d / F.avg_pool2d")
print(f"{'x shape':>16} {'kernel':>6} {'stride':>6} {'max: max |diff|':>16} {'avg: max |diff|':>16}")
for x_shape, kernel_size, stride in [((2, 3, 8, 8), 2, 2), ((2, 3, 7, 7), 3, 2), ((1, 2, 5, 6), 2, 1)]:
    x = rng.standard_normal(x_shape)
    max_diff = np.abs(pool2d_loops(x, kernel_size, stride, np.max)
                      - F.max_pool2d(on_device(x), kernel_size, stride).numpy()).max()
    avg_diff = np.abs(pool2d_loops(x, kernel_size, stride, np.mean)
                      - F.avg_pool2d(on_device(x), kernel_size, stride).numpy()).max()
    print(f"{str(x_shape):>16} {kernel_size:>6} {stride:>6} {max_diff:>16.1e} {avg_diff:>16.1e}")

# Max pooling's gradient: each window's output came from one input (its maximum), so
# d y / d x is 1 there and 0 elsewhere: the gradient is routed to the winners.
x = on_device(rng.permutation(16).reshape(1, 1, 4, 4), requires_grad=True)
F.max_pool2d(x, 2).sum().backward()
print(f"\nx (4x4), max-pooled 2x2 -> 2x2:\n{x.numpy()[0, 0].astype(int)}")
print(f"d sum(max_pool2d(x)) / dx: 1 at each window's maximum, 0 elsewhere:\n{x.grad.numpy()[0, 0].astype(int)}")


# %% [markdown]
# ## 4. Gradient checks, and the gradient of a convolution is a convolution

# %%
def check(label, fn, inputs, names):
    began = time.perf_counter()
    passed = gradcheck(fn, inputs, names=names)
    elements = sum(t.numel() for t in inputs)
    print(f"gradcheck {label:<44} {passed}  ({elements} elements, {time.perf_counter() - began:.2f} s)")


print()
size = 5 if args.smoke else 7
x = on_device(rng.standard_normal((2, 3, size, size)), requires_grad=True)
w = on_device(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
b = on_device(rng.standard_normal(4), requires_grad=True)
check("conv2d(x, W, b)", lambda x, w, b: F.conv2d(x, w, b), [x, w, b], ["x", "W", "b"])
check("conv2d(x, W, b, stride=2, padding=1)", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
      [x, w, b], ["x", "W", "b"])
check("max_pool2d(x, 2)", lambda x: F.max_pool2d(x, 2), [x], ["x"])
check("max_pool2d(x, 3, stride=2) (windows overlap)", lambda x: F.max_pool2d(x, 3, stride=2), [x], ["x"])
check("avg_pool2d(x, 3, stride=2)", lambda x: F.avg_pool2d(x, 3, stride=2), [x], ["x"])
print("(max pooling has kinks where two inputs tie; random inputs almost surely have no ties,\n"
      " and a tie closer than gradcheck's step eps = 1e-6 would show up as a failure)")

# At stride 1 and no padding, each input pixel x[c, h, w] meets weight W[o, c, i, j] in output
# y[o, h - i, w - j]. So dL/dx[c, h, w] = sum_(o, i, j) W[o, c, i, j] * dL/dy[o, h - i, w - j]:
# a convolution of dL/dy, zero-padded by KH-1, with the kernel flipped and in/out channels swapped.
# That is what ConvTranspose2d computes; autograd gets it from im2col's backward, col2im.
y = F.conv2d(x, w)
gy = on_device(rng.standard_normal(y.shape))
x.grad = None
y.backward(gy)
flipped = on_device(w.numpy()[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).copy())  # (C, O, KH, KW)
as_convolution = F.conv2d(gy, flipped, padding=2)
print(f"max |dL/dx from backward - conv2d(dL/dy, flipped W, padding 2)| = "
      f"{np.abs(x.grad.numpy() - as_convolution.numpy()).max():.1e}")


# %% [markdown]
# ## 5. Hand-made filters on real images

# %%
def load_images(count):
    """``count`` CIFAR-10 test images (one per class, in order) as floats (N, 3, 32, 32) in [0, 1],
    with their class names; synthetic shapes when CIFAR-10 is not found."""
    try:
        test = datasets.CIFAR10(root=args.data, train=False, progress=False)
    except datasets.DatasetNotFoundError as missing:
        print(f"\nCIFAR-10 not found ({str(missing).splitlines()[0][:160]}...).\n"
              "Using SYNTHETIC images instead (a square, a disc, stripes, a ramp): pass --data DIR or set "
              "MINIDL_DATA to see real photographs.")
        return synthetic_images(count)
    picks = [int(np.argmax(test.targets == k)) for k in range(count)]  # the first image of class k
    print(f"\nCIFAR-10 test images {picks} from {test.source[1]}")
    images = test.data[picks].transpose(0, 3, 1, 2) / 255.0  # uint8 (N, H, W, C) -> float (N, C, H, W)
    return images, [test.classes[k] for k in range(count)]


def synthetic_images(count):
    rows, cols_ = np.mgrid[0:32, 0:32] / 31.0
    shapes = {
        "square": ((np.abs(rows - 0.5) < 0.25) & (np.abs(cols_ - 0.5) < 0.25)) * 0.8 + 0.1,
        "disc": (((rows - 0.5) ** 2 + (cols_ - 0.5) ** 2) < 0.1) * 0.8 + 0.1,
        "stripes": 0.5 + 0.4 * np.sign(np.sin(2 * np.pi * 4 * (rows + cols_) / 2)),
        "ramp": cols_,
    }
    names = [list(shapes)[k % len(shapes)] for k in range(count)]
    tint = np.array([1.0, 0.8, 0.6])[:, None, None]  # a colour, so RGB -> gray has something to do
    return np.stack([shapes[name][None] * tint for name in names]), [f"synthetic {name}" for name in names]


count = 3 if args.smoke else 6
images, names = load_images(count)
# Luma (ITU-R BT.601): how bright each pixel looks; a 1x1 convolution from 3 channels to 1.
gray = F.conv2d(on_device(images), on_device(np.array([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)))

# Sobel x responds to left-to-right change (vertical edges), Sobel y to top-to-bottom change
# (horizontal edges); the Laplacian to spots and thin lines (a pixel unlike its 4 neighbours).
filters = {
    "box blur": np.ones((3, 3)) / 9,
    "Gaussian blur": np.outer([1, 2, 1], [1, 2, 1]) / 16,
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "Sobel x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "Sobel y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
    "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
}
bank = on_device(np.stack(list(filters.values()))[:, None])  # (6, 1, 3, 3): 6 filters, 1 input channel
# Padding 1 keeps the 32x32 size. Zero padding would paint a false edge around the border (the
# photo does not turn black there), so the border pixels are repeated instead (numpy's 'edge' mode).
gray_padded = on_device(np.pad(gray.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge"))
responses = F.conv2d(gray_padded, bank)  # (N, 6, 32, 32)
sobel_x, sobel_y = responses[:, 3:4], responses[:, 4:5]
edges = (sobel_x * sobel_x + sobel_y * sobel_y).sqrt()  # edge strength, whatever the direction
pooled = F.max_pool2d(edges, 2)  # (N, 1, 16, 16): "is there an edge in this 2x2 patch?"

print(f"gray {tuple(gray.shape)} -> conv2d with {tuple(bank.shape)} filters -> {tuple(responses.shape)}; "
      f"edge strength max-pooled 2x2 -> {tuple(pooled.shape)}")
flat = on_device(np.full((1, 1, 5, 5), 0.5))  # a flat gray patch: no change anywhere
on_flat = F.conv2d(flat, bank).numpy()[0, :, 1, 1]  # each filter's response at the centre of the patch
print(f"{'filter':<24} {'sum of weights':>14} {'mean response':>14} {'mean |response|':>16} {'on a flat 0.5':>14}")
mean = responses.numpy().mean(axis=(0, 2, 3))
mean_abs = np.abs(responses.numpy()).mean(axis=(0, 2, 3))
for (name, kernel), value, magnitude, constant in zip(filters.items(), mean, mean_abs, on_flat):
    print(f"{name:<24} {kernel.sum():>14.2f} {value:>14.3f} {magnitude:>16.3f} {constant + 0.0:>14.3g}")
print(f"{'(the gray image itself)':<24} {'':>14} {gray.numpy().mean():>14.3f} {np.abs(gray.numpy()).mean():>16.3f}")
print("Weights summing to 1 keep the brightness (mean response = the gray image's mean); weights summing\n"
      "to 0 answer only to change (edges, Laplacian): on a flat patch their response is exactly 0.")


def signed(v):
    """Responses below 0 dark, above 0 bright, 0 mid-gray (each image scaled by its largest |value|)."""
    return 0.5 + v / (2 * np.abs(v).max(axis=(1, 2, 3), keepdims=True) + 1e-12)


def scaled(v):
    """Non-negative values scaled to [0, 1], each image by its own largest value."""
    return v / (v.max(axis=(1, 2, 3), keepdims=True) + 1e-12)


g = gray.numpy()
r = responses.numpy()
panels = [images, g, np.clip(r[:, 0:1], 0, 1), np.clip(r[:, 1:2], 0, 1), np.clip(r[:, 2:3], 0, 1),
          signed(r[:, 3:4]), signed(r[:, 4:5]), signed(r[:, 5:6]),
          scaled(edges.numpy()), scaled(pooled.numpy()).repeat(2, axis=2).repeat(2, axis=3)]  # 16x16 shown 32x32
titles = ["image", "gray", *filters, "edge strength", "edges, max-pool 2x2"]
grid = np.stack([np.broadcast_to(panel, images.shape) for panel in panels], axis=1)  # (N, 10, 3, 32, 32)
path = plot.image_grid(grid.reshape(-1, 3, 32, 32), out / "filters_on_images.png", columns=len(panels),
                       titles=[name if k == 0 else titles[k] if row == 0 else ""
                               for row, name in enumerate(names) for k in range(len(panels))],
                       title="Hand-made 3x3 filters applied to the gray image")
print(f"saved {common.show(path)}")
# The kernels themselves, with their numbers: red positive, blue negative.
fig = Figure(figsize=(2.1 * len(filters), 2.5))
for ax, (name, kernel) in zip(fig.subplots(1, len(filters)), filters.items()):
    limit = np.abs(kernel).max()
    ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for (i, j), weight in np.ndenumerate(kernel):
        ax.text(j, i, f"{weight:.3g}", ha="center", va="center", fontsize=8)
    ax.set_title(name, fontsize=9)
    ax.axis("off")
fig.suptitle("The six 3x3 kernels")
fig.savefig(out / "hand_made_filters.png", dpi=110, bbox_inches="tight")
print(f"saved {common.show(out / 'hand_made_filters.png')}")

# %% [markdown]
# ## Measurements for the results table

# %%
common.synchronize(device)
print(f"\nlesson 04 | loops vs im2col max difference {np.abs(by_loops - by_im2col.numpy()).max():.1e}, "
      f"im2col {loops_s / im2col_s:,.0f}x faster (median of {calls}) | wall time "
      f"{time.perf_counter() - lesson_start:.1f} s | peak memory {common.peak_memory(device)} | device {device}")
