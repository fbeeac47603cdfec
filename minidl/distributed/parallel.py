"""DistributedDataParallel: a Module wrapper that averages gradients over the ranks during backward."""

from __future__ import annotations

import contextlib
import time

import numpy

from minidl import checks
from minidl.autograd import topological_order
from minidl.distributed import group as _groups
from minidl.distributed.group import broadcast
from minidl.grad_mode import is_grad_enabled
from minidl.nn.module import Module
from minidl.tensor import Tensor


class DistributedDataParallel(Module):
    """``module`` with its gradients averaged over the ranks at the end of every backward.

    * Construction copies rank 0's parameters and buffers to every rank (``broadcast``), so
      all copies start equal. Move the model to its device before wrapping it.
    * When: each forward (grad mode on) walks the recorded graph from the outputs to find the
      parameters that backward will reach. A hook on every parameter counts their gradients as
      they arrive; the hook of the last one reduces. minidl's backward finishes every leaf at
      the end of its walk, so there is no computation left to overlap with the communication:
      the buckets are reduced one after another, in a fixed order, the same on every rank.
    * Buckets: the parameters, last layer first (the order gradients arrive in), are cut into
      buckets of at most ``bucket_cap_mb`` MiB (one dtype each). A bucket's gradients are copied
      into one flat array, reduced with one all-reduce, divided by R, and each ``p.grad`` becomes
      its slice of it: a few large messages instead of one small one per parameter.
    * Parameters without a gradient on this rank (unused in this forward; PyTorch's
      ``find_unused_parameters=True``, always on here) send zeros, so no rank waits for a
      message that never comes; a parameter no rank used keeps ``grad`` None (optimizers skip
      it). One more small all-reduce per step, on the host, counts who used what.
    * ``no_sync()``: backwards inside it accumulate local gradients without communicating; the
      first backward after it averages the accumulated sums (gradient accumulation).
    * ``comm_stats``: the last reduction's ``seconds`` (host wall time; on a GPU the time to
      queue it), ``bytes`` (sent per rank) and ``all_reduces``.

    One forward, one backward per step, as in PyTorch: a backward that does not reach every
    parameter the forward used (e.g. ``minidl.grad`` of a part) leaves the reduction unfinished,
    and the next forward raises rather than let the other ranks wait forever.
    """

    def __init__(self, module, bucket_cap_mb: float = 25):
        super().__init__()
        op = "DistributedDataParallel"
        if not isinstance(module, Module):
            checks.fail(op, "a minidl.nn.Module to wrap", type(module).__name__, TypeError)
        self.bucket_cap_mb = checks.positive_float(bucket_cap_mb, op, "bucket_cap_mb")
        _groups._require(op)
        self.module = module
        for tensor in [*module.parameters(), *module.buffers()]:
            broadcast(tensor, 0)
        params = [p for p in module.parameters() if p.requires_grad]
        self.buckets = _buckets(params[::-1], self.bucket_cap_mb * 2**20)
        object.__setattr__(self, "_params", params)
        self._expected, self._arrived, self._synced = set(), set(), True
        self.comm_stats = {"seconds": 0.0, "bytes": 0, "all_reduces": 0}
        for p in params:
            p.register_hook(lambda grad, p=p: self._on_gradient(p, grad))

    def forward(self, *args, **kwargs):
        output = self.module(*args, **kwargs)
        if is_grad_enabled() and self._synced:
            self._prepare_for_backward(output)
        return output

    @contextlib.contextmanager
    def no_sync(self):
        """Backwards in this block keep their gradients local (no communication)."""
        self._synced = False
        try:
            yield
        finally:
            self._synced = True

    def _prepare_for_backward(self, output):
        """Note which parameters the coming backward will reach (a walk of the recorded graph)."""
        if self._arrived:
            raise RuntimeError(
                f"DistributedDataParallel: the previous backward reached only {len(self._arrived)} of the "
                f"{len(self._expected)} parameters its forward used, so their gradients were never averaged "
                "(the other ranks are waiting); run one backward of the whole loss per forward")
        roots = [t.grad_fn for t in _tensors_in(output) if t.grad_fn is not None]
        ids = {id(p) for p in self._params}
        self._expected = {id(x) for f in topological_order(roots, ()) for x in f.inputs if id(x) in ids}
        self._arrived = set()

    def _on_gradient(self, param, grad):
        """The hook on every parameter: the last expected gradient to arrive reduces all buckets.

        Its own gradient is not stored yet (backward stores it after the hook), so it joins
        the buckets as ``param.grad + grad``, and the hook clears ``param.grad`` and returns the
        average: backward then stores exactly the average."""
        if id(param) not in self._expected or id(param) in self._arrived:
            return None
        self._arrived.add(id(param))
        if len(self._arrived) < len(self._expected):
            return None
        own = grad.data if param.grad is None else param.grad.data + grad.data
        self._expected, self._arrived = set(), set()
        self._reduce({id(param): own})
        averaged, param.grad = param.grad, None
        return averaged

    def _reduce(self, pending):
        """Average every parameter's gradient over the ranks, bucket by bucket."""
        group, start = _groups._group, time.perf_counter()
        local = {id(p): pending.get(id(p), None if p.grad is None else p.grad.data) for p in self._params}
        used = numpy.array([local[id(p)] is not None for p in self._params], numpy.int64)
        group.host_all_reduce_(used)  # how many ranks have a gradient for each parameter
        self.comm_stats = {"seconds": 0.0, "bytes": used.nbytes, "all_reduces": 1}
        used = {id(p): count > 0 for p, count in zip(self._params, used)}
        for bucket in self.buckets:
            first = bucket[0]
            flat = first.xp.zeros(sum(p.data.size for p in bucket), first.dtype)
            offsets = numpy.cumsum([0] + [p.data.size for p in bucket])
            for p, begin, end in zip(bucket, offsets, offsets[1:]):
                if local[id(p)] is not None:
                    flat[begin:end] = local[id(p)].ravel()
            group.all_reduce_(flat, "DistributedDataParallel")
            flat /= group.world_size
            for p, begin, end in zip(bucket, offsets, offsets[1:]):
                p.grad = Tensor.wrap(flat[begin:end].reshape(p.shape)) if used[id(p)] else p.grad
            self.comm_stats["bytes"] += flat.nbytes
            self.comm_stats["all_reduces"] += 1
        self.comm_stats["seconds"] = time.perf_counter() - start


def _buckets(params, cap_bytes):
    """``params`` cut, in order, into lists of one dtype and device of at most ``cap_bytes`` each
    (a parameter larger than the cap gets a bucket of its own)."""
    buckets = []
    for p in params:
        last = buckets[-1] if buckets else None
        if (last and last[0].dtype == p.dtype and last[0].device == p.device
                and sum(q.data.nbytes for q in last) + p.data.nbytes <= cap_bytes):
            last.append(p)
        else:
            buckets.append([p])
    return buckets


def _tensors_in(output):
    """The Tensors in a forward's output: a Tensor, or tuples, lists and dicts of them."""
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _tensors_in(item)]
    return []
