"""minidl: a deep-learning package written from scratch for teaching.

A Tensor wraps a numpy (CPU) or cupy (GPU) array; every op records how it was made,
and ``backward()`` walks that record to compute gradients. The layers of the package,
bottom to top: backend -> autograd/tensor -> ops -> nn -> optim; data beside them.
"""

from minidl import autograd  # noqa: I001  (first: it closes the Tensor <-> Function loop)
from minidl import backend, cuda, ops
from minidl.autograd import (
    Function,
    detect_anomaly,
    enable_grad,
    is_anomaly_enabled,
    is_grad_enabled,
    no_grad,
    set_detect_anomaly,
    set_grad_enabled,
)
from minidl.backend import Device, get_default_device, set_default_device
from minidl.cuda import get_float32_matmul_precision, set_float32_matmul_precision  # TF32 on the GPU, as torch
from minidl import random  # generators and their saved states (minidl.Generator, get_rng_state)
from minidl.random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from minidl.creation import (
    arange,
    as_tensor,
    eye,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from minidl.gradcheck import GradcheckError, grad, gradcheck, gradgradcheck
from minidl.graph import to_dot
from minidl.io import CheckpointError, load, save
from minidl.ops import *  # noqa: F401,F403  (minidl.exp, minidl.matmul, ...)
from minidl.tensor import Tensor
from minidl import nn, optim  # noqa: E402  (after the core they stand on)
from minidl import amp  # noqa: E402  (mixed precision: autocast, GradScaler)

float32 = "float32"
float64 = "float64"
int64 = "int64"

device = Device

__version__ = "0.1.0"
