"""Large arrays in cache-sized blocks (NumPy, and PyTorch on the CPU).

The formula runs on blocks of :data:`BLOCK` elements, so that its temporaries stay in
cache instead of making several passes over full-size arrays; ``mean``/``sum`` then
never hold more than a block of losses (bounded memory), and blocks run on one thread
pool (NumPy and torch release the GIL). The pool is the only parallelism: torch's
blocks run on threads set to one intra-op thread (:data:`Workers`), so torch never
forks its own threads under xbce's (two pools nested fight for the cores as soon
as another process wants one: a call took 8x torch's time beside two busy processes).
The backend that calls this module decides whether an array is cut at all
(:data:`BLOCKED_FROM`), on how many threads, and hands the formula and its
:class:`~._formulas.Ops`; nothing here knows a library by name.

``fn(*arrays, ops)`` must be elementwise in its arrays (each either ``like``'s shape or
broadcasting into it) and return an array of ``like``'s shape.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ._formulas import NONE, Ops, finish, is_half, numel
from ._typing import Array, DType

Quiet = Callable[[], contextlib.AbstractContextManager[object]]
#: Elements per block: 2**16 float32 values are 256 KiB per temporary (L2-sized).
BLOCK = 1 << 16
#: Arrays from this many elements on are worth cutting into blocks.
BLOCKED_FROM = 1 << 18


def cores() -> int:
    """The cores this process may use, at most ``OMP_NUM_THREADS`` when it is set (the
    knob that tells every library's threads to stay within a share of the machine)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "")
    return min(n, int(limit)) if limit.isdigit() and int(limit) > 0 else n


#: How a library's work runs on the threads that take blocks: ``(in_worker, after)``:
#: ``in_worker()`` runs once in each of a pool's threads when it starts, and in the
#: calling thread before it takes blocks (torch: one intra-op thread); ``after()`` in
#: the calling thread when every block is done (torch: its thread count again).
Workers = tuple[Callable[[], object], Callable[[], object]]

# One pool per thread count (and library setup), created on first use. A child made by
# ``fork`` inherits the pool objects but none of their threads: work submitted there
# would wait forever. So the child forgets them (``os.register_at_fork``) and makes its
# own on first use. Idle workers exit when the interpreter does.
_pools: dict[tuple[int, object], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(threads: int, workers: Workers | None) -> ThreadPoolExecutor:
    in_worker = None if workers is None else workers[0]
    with _pools_lock:
        pool = _pools.get((threads, in_worker))
        if pool is None:
            pool = _pools[(threads, in_worker)] = ThreadPoolExecutor(
                threads, thread_name_prefix="xbce", initializer=in_worker)
        return pool


def _forget_pools() -> None:
    """In a forked child: the inherited pools have no threads (and the lock may have
    been held by a parent thread at the fork): start afresh."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_pools)


def _run(run: Callable[[int], None], count: int, threads: int, workers: Workers | None
         ) -> None:
    """``run(k)`` for every block ``k``: this thread and ``threads - 1`` of the pool's
    each take the next block until none is left (a busy core's thread takes fewer:
    nothing waits for it but the last block it took), set up as ``workers`` says. This
    thread alone, as it is, for one thread or block, or when no pool can take work
    (interpreter shutdown)."""
    if threads <= 1 or count <= 1:
        for k in range(count):
            run(k)
        return
    blocks, lock = iter(range(count)), threading.Lock()

    def work() -> None:
        while True:
            with lock:
                k = next(blocks, None)
            if k is None:
                return
            run(k)

    futures = []
    with contextlib.suppress(RuntimeError):  # "cannot schedule new futures after shutdown"
        pool = _pool(threads - 1, workers)
        futures = [pool.submit(work) for _ in range(min(threads, count) - 1)]
    try:
        if workers is not None:
            workers[0]()
        work()
    finally:
        for future in futures:
            future.result()
        if workers is not None:
            workers[1]()


def _slicer(like: Array, arrays: tuple[Array | None, ...], contiguous: Callable[[Array], bool]
            ) -> tuple[int, Callable[[int, int], list[Array | None]]]:
    """How to cut the arrays into blocks: the flat view when every array has
    ``like``'s shape and is C-contiguous or is 0-d (a ``mean``'s upstream gradient, a
    scalar weight), the common case; else along the leading axis.

    Flat blocks are :data:`BLOCK` elements, each torch op on a block one task (one
    intra-op thread), whose vectorised loops group the elements as one task over the
    whole tensor does (its scalar remainder loop, where ``exp`` may round differently,
    runs at the tensor's end only): a block's result is that of one thread over the
    whole tensor, at every thread count. Blocks of rows have it too where
    each block starts a multiple of 64 elements (four AVX-512 vectors) from the start
    (:func:`_rows_per_block`) and the arrays the library's transcendental functions
    take are C-contiguous (the torch backend cuts no other)."""
    shape = tuple(like.shape)
    present = [a for a in arrays if a is not None]
    if all(a.ndim == 0 or (tuple(a.shape) == shape and contiguous(a)) for a in present):
        flat = [a if a is None or a.ndim == 0 else a.reshape(-1) for a in arrays]
        return numel(like), lambda i, j: [a if a is None or a.ndim == 0 else a[i:j]
                                          for a in flat]

    def lead(i: int, j: int) -> list[Array | None]:
        return [a[i:j] if a is not None and a.ndim == len(shape) and a.shape[0] != 1 else a
                for a in arrays]

    return shape[0], lead


def _rows_per_block(row: int) -> int:
    """Rows (of ``row`` elements) per block: at most :data:`BLOCK` elements, a multiple
    of 64 elements where that allows it (rows of up to 512 elements, or of a multiple
    of 64/2^k elements up to 2^k * 512), so that a vectorised loop over a block groups
    its elements as one over the whole array does."""
    step = max(1, BLOCK // max(row, 1))
    align = 64 // math.gcd(row, 64)
    return step - step % align if step >= align else step


def reduced(fn: Callable[..., Array], like: Array, arrays: tuple[Array | None, ...],
            dtype: DType, reduction: str, ops: Ops, *, threads: int = 1,
            workers: Workers | None = None, contiguous: Callable[[Array], bool],
            quiet: Quiet = contextlib.nullcontext) -> Array:
    """``reduce(fn(*arrays, ops), reduction)`` evaluated block by block (``none``: the
    elementwise result, written block by block into one array), on ``threads`` threads
    (``workers``: see :data:`Workers`). ``quiet()`` is entered in each block's thread:
    it silences the library's warnings of intended values (NumPy) or records no graph
    there (torch: grad mode is per thread)."""
    xp = ops.xp
    length, cut = _slicer(like, arrays, contiguous)
    row = numel(like) // length if length else 1
    step = _rows_per_block(row)
    bounds = [(i, min(i + step, length)) for i in range(0, length, step)]
    acc = xp.float32 if is_half(dtype) else dtype
    out = xp.empty(tuple(like.shape), dtype=dtype) if reduction == NONE else None
    flat_out = out.reshape(-1) if out is not None and row == 1 else out
    # allocated up front: a small result allocated after each block's temporaries
    # would pin them in the C heap (torch: ~100 MiB of heap growth at 3e7 elements)
    sums = xp.empty((len(bounds),), dtype=acc) if out is None else None

    def run(k: int) -> None:
        i, j = bounds[k]
        with quiet():
            part = fn(*cut(i, j), ops)
            if flat_out is not None:
                flat_out[i:j] = part
            else:
                sums[k] = ops.sum(part, dtype=acc)  # type: ignore[index]

    _run(run, len(bounds), threads, workers)
    if out is not None:
        return out
    with quiet():  # a half-precision sum may overflow to inf, silently as in torch
        return xp.asarray(finish(ops.sum(sums, dtype=acc), numel(like), reduction, dtype, ops))
