"""How an elementwise formula of ``_formulas`` is evaluated on each kind of backend.

The formula is the same everywhere; only the evaluation strategy differs:

* **Dask**: chunk by chunk with NumPy (``map_blocks``), never computing anything
  here; NumPy's ``log(0)`` warnings are silenced inside each chunk.
* **NumPy and PyTorch on the CPU, large arrays**: in cache-sized blocks, so that the
  formula's temporaries stay in cache instead of making several passes over
  full-size arrays; ``mean``/``sum`` then never hold more than a block of losses
  (bounded memory), and NumPy blocks run on a thread pool (NumPy releases the GIL).
* **NumPy float32 without AVX-512**: ``log1p`` is NumPy's scalar libm call there, ~7x
  slower than its vectorised ``log``; :class:`_NumPyNamespace` computes it as the
  float64 ``log(1 + u)`` rounded to float32 (correctly rounded, so <= 1 ulp from glibc's
  ``log1pf``, which PyTorch uses), about twice as fast. Its ``log`` is the float64 ``log``
  rounded once too, which matches glibc's ``logf`` (PyTorch's BCE kernel) far more
  often than NumPy's own SIMD ``logf``. Where NumPy has its AVX-512
  (SVML) loops, its own ``log1p`` is vectorised, <= 1.2 ulp, and 3x faster than that
  detour, so it is used as is.
* **Everything else** (small arrays, CuPy and torch on GPUs, JAX, array-api-strict):
  in one go. Under ``jax.jit`` or ``torch.compile`` the compiler fuses it anyway.

``fn(*arrays, xp=xp)`` must be elementwise in its arrays (each either ``like``'s
shape or broadcasting into it) and return an array of ``like``'s shape.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from . import _checks
from . import _formulas as F
from ._compat import (
    array_namespace,
    is_dask_namespace,
    is_jax_namespace,
    is_numpy_namespace,
    is_torch_namespace,
)

Array = Any
Elementwise = Callable[..., Array]

#: Elements per block: 2**16 float32 values are 256 KiB per temporary (L2-sized).
BLOCK = 1 << 16


_NO_CONTEXT = contextlib.nullcontext()


def quiet(xp: Any) -> contextlib.AbstractContextManager[Any]:
    """Silence NumPy's ``log(0)`` and ``0 * inf`` warnings: those values are intended."""
    np = sys.modules.get("numpy")
    if np is None or is_torch_namespace(xp) or is_jax_namespace(xp):
        return _NO_CONTEXT
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")  # type: ignore[no-any-return]


def elementwise(fn: Elementwise, like: Array, *arrays: Array | None, dtype: Any, xp: Any) -> Array:
    """``fn(*arrays, xp=xp)``, the full elementwise result (``reduction='none'``)."""
    if is_dask_namespace(xp):
        return _dask(fn, like, arrays, dtype)
    if _blockable(like, xp):
        return _blocked(fn, like, arrays, dtype, F.NONE, xp)
    with quiet(xp):
        return fn(*arrays, xp=_fast(xp))


def reduced(
    fn: Elementwise, like: Array, *arrays: Array | None, dtype: Any, reduction: str, xp: Any
) -> Array:
    """``reduce(fn(*arrays, xp=xp), reduction)`` without a full-size intermediate."""
    if reduction == F.NONE:
        return elementwise(fn, like, *arrays, dtype=dtype, xp=xp)
    if _blockable(like, xp):
        return _blocked(fn, like, arrays, dtype, reduction, xp)
    out = elementwise(fn, like, *arrays, dtype=dtype, xp=xp)
    if is_dask_namespace(xp):
        return _dask_reduce(out, reduction, dtype, xp)
    with quiet(xp):
        return F.reduce(out, reduction, xp=_fast(xp))


def gradient(
    logits: bool,
    which: str,
    grad: Array,
    x: Array,
    t: Array,
    weight: Array | None,
    pos_weight: Array | None,
    reduction: str,
    *,
    xp: Any,
) -> Array:
    """A gradient of ``_formulas`` (:func:`~._formulas.grad_terms`) applied to ``grad``."""
    like = x if which == "input" else t
    # the elementwise chain ends with torch's ``/ numel`` of the whole array (blocks too)
    n = F.numel(like) if reduction == F.MEAN else None
    if n is not None and not _checks.known(n):  # a Dask array of unknown size
        raise ValueError(
            "the gradient of reduction='mean' divides by the number of elements, unknown "
            "for this Dask array: call its compute_chunk_sizes() first"
        )
    fn = partial(_apply_gradient, logits, which, n)
    return elementwise(fn, like, grad, x, t, weight, pos_weight, dtype=like.dtype, xp=xp)


def _apply_gradient(
    logits: bool,
    which: str,
    n: int | None,
    g: Array,
    x: Array,
    t: Array,
    w: Array | None,
    p: Array | None,
    *,
    xp: Any,
) -> Array:
    terms = F.grad_terms(logits, which, x, t, w, p, F.NONE, xp=xp)._replace(numel=n)
    return F.apply_backward(g, terms, xp=xp)


# ---------------------------------------------------------------------- namespaces
class _NumPyNamespace:
    """NumPy's array API namespace with a faster, as accurate, float32 ``log1p``, and a
    float32 ``log`` evaluated in float64 and rounded once (closer to glibc's ``logf``)."""

    def __init__(self, xp: Any) -> None:
        self._xp = xp

    def __getattr__(self, name: str) -> Any:
        return getattr(self._xp, name)

    def log(self, u: Array) -> Array:
        """float32: the float64 ``log`` rounded once, as glibc's ``logf`` (which torch's
        BCE kernel calls) evaluates it: equal to glibc's in 99.5% of float32 inputs,
        where NumPy's own SIMD ``logf`` is in 90.7% (tests/cases.py's probabilities),
        for ~12% more time per BCE element."""
        xp = self._xp
        if u.dtype != xp.float32:
            return xp.log(u)
        return xp.astype(xp.log(xp.astype(u, xp.float64)), xp.float32)

    def log1p(self, u: Array) -> Array:
        xp = self._xp
        if u.dtype != xp.float32:
            return xp.log1p(u)
        # 1 + u is exact in float64 for |u| >= 2**-23; below, log1p(u) rounds to u
        wide = xp.astype(xp.log(xp.astype(u, xp.float64) + 1.0), xp.float32)
        return xp.where(xp.abs(u) < 2.0**-23, u, wide)


class _TorchNamespace:
    """array-api-compat's torch namespace with torch's own ``log_sigmoid``/``sigmoid``
    (the primitives torch's BCE-with-logits kernel and backward call, so the results
    are torch's bit for bit), and a faster ``maximum``/``minimum`` of an array and a
    Python float: ``torch.clamp_min``/``clamp_max``, the same values (NaN propagates),
    without the compat wrapper's type promotion (half the time)."""

    def __init__(self, xp: Any) -> None:
        import torch

        self._xp = xp
        self._torch = torch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._xp, name)

    def log_sigmoid(self, x: Array) -> Array:
        """``torch.nn.functional.logsigmoid`` (half types in float32, rounded once)."""
        return self._torch.nn.functional.logsigmoid(x)

    def sigmoid(self, x: Array) -> Array:
        """``torch.sigmoid`` (half types in float32, rounded once)."""
        return self._torch.sigmoid(x)

    def maximum(self, a: Array, b: Array | float) -> Array:
        if isinstance(b, float):
            return self._torch.clamp_min(a, b)
        return self._xp.maximum(a, b)

    def minimum(self, a: Array, b: Array | float) -> Array:
        if isinstance(b, float):
            return self._torch.clamp_max(a, b)
        return self._xp.minimum(a, b)

    def sum(self, a: Array, *, dtype: Any = None) -> Array:
        """The whole-array sum (the only one xbce takes), without the compat wrapper."""
        return self._torch.sum(a, dtype=dtype)

    def loss_mean(self, loss: Array) -> Array:
        """``loss.mean()``, as torch's ``apply_loss_reduction`` takes it (float32 and
        float64: on the CPU, ``sum`` then ``div_(numel)``, the formulas' ``sum / numel``
        bit for bit, in one call)."""
        return self._torch.mean(loss)

    # The formulas' dtype arithmetic, in torch's own terms: the same results as the
    # compat wrappers for torch dtypes, a fraction of their cost per call, and plain
    # torch calls that ``torch.compile`` puts in its graph (the compat ``result_type``
    # makes Dynamo break the graph).
    def result_type(self, a: Any, b: Any) -> Any:
        """The promoted dtype of two torch dtypes (the only form xbce uses)."""
        return self._torch.promote_types(a, b)

    def astype(self, x: Array, dtype: Any) -> Array:
        """``x`` converted to ``dtype`` (a new tensor: xbce casts only when they differ)."""
        return x.to(dtype)

    def isdtype(self, dtype: Any, kind: str) -> bool:
        """The three kinds xbce asks about, as the compat ``isdtype`` answers them."""
        if kind == "real floating":
            return bool(dtype.is_floating_point)
        if kind == "bool":
            return bool(dtype == self._torch.bool)
        return bool(self._xp.isdtype(dtype, kind))


@functools.cache
def _numpy_has_vector_log1p() -> bool:
    """Whether NumPy dispatches float32 ``log1p`` to its AVX-512 (SVML) loop."""
    try:
        features = importlib.import_module("numpy._core._multiarray_umath").__cpu_features__
    except (ImportError, AttributeError):  # NumPy 1.x, or a layout unknown here: assume not
        return False
    return bool(features.get("AVX512_SKX", False))


def _numpy(xp: Any) -> Any:
    return xp if _numpy_has_vector_log1p() else _NumPyNamespace(xp)


def stand_in(xp: Any) -> Any:
    """The namespace the formulas get for ``xp``: ``xp``, or its stand-in (the classes
    above: faster ops, and a library's own primitives where it has them)."""
    return _fast(xp)


def _fast(xp: Any) -> Any:
    """``xp``, or its faster stand-in (the classes above)."""
    if is_numpy_namespace(xp):
        return _numpy(xp)
    if is_torch_namespace(xp):
        return _torch(xp)
    return xp


@functools.cache
def _torch(xp: Any) -> _TorchNamespace:
    return _TorchNamespace(xp)


# -------------------------------------------------------------------------- blocks
def _blockable(like: Array, xp: Any) -> bool:
    if F.numel(like) < 4 * BLOCK or like.ndim == 0:
        return False
    if is_numpy_namespace(xp):
        return True
    return is_torch_namespace(xp) and bool(like.device.type == "cpu")


# One pool per thread count, created on first use. A child made by ``fork`` inherits
# the pool objects but none of their threads: work submitted there would wait forever.
# So the child forgets them (``os.register_at_fork``) and makes its own on first use.
# Idle workers exit when the interpreter does (ThreadPoolExecutor joins them at exit).
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    with _pools_lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="xbce")
        return pool


def _forget_pools() -> None:
    """In a forked child: the inherited pools have no threads (and the lock may have
    been held by a parent thread at the fork): start afresh."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_pools)


def _run_blocks(run: Callable[[int], None], count: int, threads: int) -> None:
    """``run(k)`` for every block ``k``, on the pool when it is worth it.

    Falls back to this thread when no pool can take work (interpreter shutdown)."""
    if threads > 1 and count > 1:
        try:
            futures = [_pool(threads).submit(run, k) for k in range(count)]
        except RuntimeError:  # "cannot schedule new futures after (interpreter) shutdown"
            pass
        else:
            for future in futures:
                future.result()
            return
    for k in range(count):
        run(k)


def _threads(xp: Any) -> int:
    if is_torch_namespace(xp):
        return 1  # torch parallelises each op itself (intra-op threads)
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _slicer(like: Array, arrays: tuple[Array | None, ...]) -> tuple[int, Callable[..., Any]]:
    """How to cut the arrays into blocks: the flat view when every array has
    ``like``'s shape (the common case), else along the leading axis."""
    shape = tuple(like.shape)
    if all(a is None or tuple(a.shape) == shape for a in arrays) and _contiguous(like, arrays):
        flat = [None if a is None else a.reshape(-1) for a in arrays]
        return F.numel(like), lambda i, j: [None if a is None else a[i:j] for a in flat]

    def lead(i: int, j: int) -> list[Any]:
        return [
            a[i:j] if a is not None and a.ndim == len(shape) and a.shape[0] != 1 else a
            for a in arrays
        ]

    return shape[0], lead


def _contiguous(like: Array, arrays: tuple[Array | None, ...]) -> bool:
    for a in (like, *arrays):
        if a is None:
            continue
        flags = getattr(a, "flags", None)
        ok = flags["C_CONTIGUOUS"] if flags is not None else a.is_contiguous()
        if not ok:
            return False
    return True


def _blocked(
    fn: Elementwise,
    like: Array,
    arrays: tuple[Array | None, ...],
    dtype: Any,
    reduction: str,
    xp: Any,
) -> Array:
    length, cut = _slicer(like, arrays)
    fast = _fast(xp)
    row = F.numel(like) // length if length else 1
    step = max(1, BLOCK // max(row, 1))
    bounds = [(i, min(i + step, length)) for i in range(0, length, step)]
    acc = xp.float32 if F.is_half(dtype, xp) else dtype
    out = xp.empty(tuple(like.shape), dtype=dtype) if reduction == F.NONE else None
    flat_out = out.reshape(-1) if out is not None and row == 1 else out
    # allocated up front: a small result allocated after each block's temporaries
    # would pin them in the C heap (torch: ~100 MiB of heap growth at 3e7 elements)
    sums = xp.empty((len(bounds),), dtype=acc) if out is None else None

    def run(k: int) -> None:
        i, j = bounds[k]
        with quiet(xp):
            part = fn(*cut(i, j), xp=fast)
            if flat_out is not None:
                flat_out[i:j] = part
            else:
                sums[k] = fast.sum(part, dtype=acc)  # type: ignore[index]

    _run_blocks(run, len(bounds), _threads(xp))
    if out is not None:
        return out
    total = fast.sum(sums, dtype=acc)
    if reduction == F.MEAN:
        n = F.numel(like)
        total = total / n if n else total * math.nan
    with quiet(xp):  # a half-precision sum may overflow to inf, silently as in torch
        return xp.asarray(total if total.dtype == dtype else xp.astype(total, dtype))


# ---------------------------------------------------------------------------- dask
def _quiet_cast(block: Any, to: Any) -> Any:
    import numpy as np

    with np.errstate(over="ignore"):
        return block.astype(to)


def _dask_reduce(out: Array, reduction: str, dtype: Any, xp: Any) -> Array:
    """``mean``/``sum`` of the elementwise Dask array ``out`` (half types in float32).

    Where the length is unknown (NaN), ``mean`` divides by the count of elements found
    at compute time (``da.mean``: the same tree of float32/float64 sums, then the
    division, correctly rounded as torch's ``sum / numel`` is)."""
    half = F.is_half(dtype, xp)
    acc = xp.astype(out, xp.float32) if half else out
    if reduction == F.MEAN and not math.isfinite(F.numel(out)):
        total = xp.mean(acc)
    else:
        total = F.reduce(acc, reduction, xp=xp)
    if half:  # round to half where NumPy's overflow warning is silenced
        return total.map_blocks(partial(_quiet_cast, to=dtype), dtype=dtype, meta=out._meta)
    return total


def _dask_operand(a: Array, like: Array) -> Array:
    """``a`` chunked like ``like``, so that the blocks of both pair up.

    Where ``like``'s length is unknown, blocks pair up by position: an array of
    ``like``'s rank (input, target) is used as it is, a weight is aligned on the
    trailing axes it has (NumPy broadcasts it inside each block)."""
    import dask.array as da

    a = da.asarray(a)  # type: ignore[no-untyped-call]
    if all(map(_checks.known, like.shape)):
        return da.broadcast_to(a, like.shape).rechunk(like.chunks)  # type: ignore[no-untyped-call]
    if a.ndim == like.ndim and not all(map(_checks.known, a.shape)):
        return a
    trailing = like.chunks[like.ndim - a.ndim:]
    chunks = tuple((1,) if n == 1 else c for n, c in zip(a.shape, trailing, strict=True))
    return a.rechunk(chunks)


def _dask(fn: Elementwise, like: Array, arrays: tuple[Array | None, ...], dtype: Any) -> Array:
    import dask.array as da
    import numpy as np
    from dask.base import tokenize

    blocks = [None if a is None else _dask_operand(a, like) for a in arrays]
    present = [b for b in blocks if b is not None]
    kernel = partial(_numpy_chunk, fn, tuple(b is not None for b in blocks))
    meta = np.empty((0,) * like.ndim, dtype=dtype)
    # named from the arguments' names (None where absent) and ``fn``'s repr: dask would
    # otherwise tokenize ``kernel`` by pickling it, ~10 ms per call
    names = [None if b is None else b.name for b in blocks]
    name = "xbce-" + tokenize(repr(fn), names, str(dtype))
    return da.map_blocks(kernel, *present, dtype=dtype, meta=meta, name=name)  # type: ignore[no-untyped-call]


def _numpy_chunk(fn: Elementwise, present: tuple[bool, ...], *chunks: Any) -> Any:
    """``fn`` on one chunk of each array (``None`` where an argument is absent)."""
    import numpy as np

    it = iter(chunks)
    args = [next(it) if here else None for here in present]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return fn(*args, xp=_numpy(array_namespace(np.empty(0))))
