"""How an elementwise formula of ``_formulas`` is evaluated: in one go, or in blocks.

Nothing here knows a library by name: the backend policy (``_backends``) says whether
an array is worth cutting into blocks (:meth:`~._backends.Backend.blockable`), on how
many threads they run, which namespace the formula gets (``backend.ops``) and which
warnings to silence (``backend.quiet``). Dask, which evaluates chunk by chunk, has its
own strategy there.

**Blocks** (NumPy and PyTorch on the CPU, large arrays): the formula runs on
cache-sized blocks, so that its temporaries stay in cache instead of making several
passes over full-size arrays; ``mean``/``sum`` then never hold more than a block of
losses (bounded memory), and NumPy blocks run on a thread pool (NumPy releases the
GIL). Everything else is evaluated in one go; under ``jax.jit`` or ``torch.compile``
the compiler fuses it anyway.

``fn(*arrays, xp=ops)`` must be elementwise in its arrays (each either ``like``'s
shape or broadcasting into it) and return an array of ``like``'s shape.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from . import _checks
from . import _formulas as formulas

Array = Any
Backend = Any  # _backends.Backend (not imported: it imports this module)
Elementwise = Callable[..., Array]

#: Elements per block: 2**16 float32 values are 256 KiB per temporary (L2-sized).
BLOCK = 1 << 16
#: Arrays from this many elements on are worth cutting into blocks.
BLOCKED_FROM = 4 * BLOCK


def large(like: Array) -> bool:
    """Whether ``like`` is large enough for blocks (the backend decides whether its
    arrays are cut at all)."""
    return formulas.numel(like) >= BLOCKED_FROM and like.ndim > 0


def gradient(
    backend: Backend,
    logits: bool,
    which: str,
    grad: Array,
    x: Array,
    t: Array,
    weight: Array | None,
    pos_weight: Array | None,
    reduction: str,
) -> Array:
    """A gradient of ``_formulas`` (:func:`~._formulas.grad_terms`, then the one chain
    :func:`~._formulas.apply_backward`) applied to ``grad``: the explicit backward."""
    like = x if which == "input" else t
    # the chain ends with torch's ``/ numel`` of the whole array (blocks too)
    count = formulas.mean_count(reduction, like)
    if count is not None and not _checks.known(count):  # a Dask array of unknown size
        raise ValueError(
            "the gradient of reduction='mean' divides by the number of elements, unknown "
            "for this Dask array: call its compute_chunk_sizes() first"
        )
    fn = partial(_apply_gradient, logits, which, count)
    return backend.elementwise(fn, like, (grad, x, t, weight, pos_weight), like.dtype)


def _apply_gradient(
    logits: bool,
    which: str,
    count: int | None,
    g: Array,
    x: Array,
    t: Array,
    w: Array | None,
    p: Array | None,
    *,
    xp: Any,
) -> Array:
    terms = formulas.grad_terms(logits, which, x, t, w, p, count, xp=xp)
    return formulas.apply_backward(g, terms, xp=xp)


# -------------------------------------------------------------------------- blocks
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


def cores() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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


def _slicer(
    backend: Backend, like: Array, arrays: tuple[Array | None, ...]
) -> tuple[int, Callable[..., Any]]:
    """How to cut the arrays into blocks: the flat view when every array has
    ``like``'s shape (the common case), else along the leading axis."""
    shape = tuple(like.shape)
    contiguous = all(a is None or backend.contiguous(a) for a in (like, *arrays))
    if contiguous and all(a is None or tuple(a.shape) == shape for a in arrays):
        flat = [None if a is None else a.reshape(-1) for a in arrays]
        return formulas.numel(like), lambda i, j: [None if a is None else a[i:j] for a in flat]

    def lead(i: int, j: int) -> list[Any]:
        return [
            a[i:j] if a is not None and a.ndim == len(shape) and a.shape[0] != 1 else a
            for a in arrays
        ]

    return shape[0], lead


def blocked(
    backend: Backend,
    fn: Elementwise,
    like: Array,
    arrays: tuple[Array | None, ...],
    dtype: Any,
    reduction: str,
) -> Array:
    """``reduce(fn(*arrays), reduction)`` evaluated block by block (see the module)."""
    xp, ops = backend.xp, backend.ops
    length, cut = _slicer(backend, like, arrays)
    row = formulas.numel(like) // length if length else 1
    step = max(1, BLOCK // max(row, 1))
    bounds = [(i, min(i + step, length)) for i in range(0, length, step)]
    acc = xp.float32 if formulas.is_half(dtype, xp) else dtype
    out = xp.empty(tuple(like.shape), dtype=dtype) if reduction == formulas.NONE else None
    flat_out = out.reshape(-1) if out is not None and row == 1 else out
    # allocated up front: a small result allocated after each block's temporaries
    # would pin them in the C heap (torch: ~100 MiB of heap growth at 3e7 elements)
    sums = xp.empty((len(bounds),), dtype=acc) if out is None else None

    def run(k: int) -> None:
        i, j = bounds[k]
        with backend.quiet():
            part = fn(*cut(i, j), xp=ops)
            if flat_out is not None:
                flat_out[i:j] = part
            else:
                sums[k] = ops.sum(part, dtype=acc)  # type: ignore[index]

    _run_blocks(run, len(bounds), backend.threads)
    if out is not None:
        return out
    total = ops.sum(sums, dtype=acc)
    if reduction == formulas.MEAN:
        n = formulas.numel(like)
        total = total / n if n else total * math.nan
    with backend.quiet():  # a half-precision sum may overflow to inf, silently as in torch
        return xp.asarray(total if total.dtype == dtype else xp.astype(total, dtype))
