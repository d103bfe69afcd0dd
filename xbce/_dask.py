"""The Dask backend: each loss is one ``map_blocks`` of a chunk kernel, never computed here.

Imported only when xbce is handed Dask arrays (``_backends._make``). Each chunk task
evaluates (and checks) its NumPy chunk with the NumPy backend when the graph is
computed, so errors reach ``compute()`` with torch's class and message; ``mean`` and
``sum`` are Dask's own reductions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

from . import _checks
from . import _formulas as formulas
from ._backends import Backend, numpy_backend

Array = Any
Elementwise = Callable[..., Array]


class Dask(Backend):
    """Dask: never read here. Each loss is one ``map_blocks`` of a chunk kernel that
    evaluates (and checks) its NumPy chunk with the :class:`NumPy` backend when the
    graph is computed; ``mean``/``sum`` are Dask's own reductions."""

    checks_devices = False

    def __init__(self, xp: Any) -> None:
        super().__init__(xp)
        self.chunks = numpy_backend()  #: evaluates each chunk

    def lazy(self, x: Array, t: Array) -> bool:
        return True

    def evaluate(
        self,
        logits: bool,
        x: Array,
        t: Array,
        w: Array | None,
        p: Array | None,
        reduction: str,
        lazy: bool,
    ) -> Array:
        fn = partial(_checked_chunk, logits, self.chunks)
        return self.reduced(fn, x, (x, t, w, p), t.dtype if logits else x.dtype, reduction)

    def elementwise(
        self, fn: Elementwise, like: Array, arrays: tuple[Array | None, ...], dtype: Any
    ) -> Array:
        import dask.array as da
        import numpy as np
        from dask.base import tokenize

        blocks = [None if a is None else _dask_operand(a, like) for a in arrays]
        present = [b for b in blocks if b is not None]
        kernel = partial(_numpy_chunk, fn, self.chunks, tuple(b is not None for b in blocks))
        meta = np.empty((0,) * like.ndim, dtype=dtype)
        # named from the arguments' names (None where absent) and ``fn``'s repr: dask
        # would otherwise tokenize ``kernel`` by pickling it, ~10 ms per call
        names = [None if b is None else b.name for b in blocks]
        name = "xbce-" + tokenize(repr(fn), names, str(dtype))
        return da.map_blocks(kernel, *present, dtype=dtype, meta=meta, name=name)  # type: ignore[no-untyped-call]

    def reduced(
        self,
        fn: Elementwise,
        like: Array,
        arrays: tuple[Array | None, ...],
        dtype: Any,
        reduction: str,
    ) -> Array:
        """``mean``/``sum`` of the elementwise result (half types in float32).

        Where the length is unknown (NaN), ``mean`` divides by the count of elements
        found at compute time (``da.mean``: the same tree of float32/float64 sums, then
        the division, correctly rounded as torch's ``sum / numel`` is)."""
        out = self.elementwise(fn, like, arrays, dtype)
        if reduction == formulas.NONE:
            return out
        xp = self.xp
        half = formulas.is_half(dtype, xp)
        acc = xp.astype(out, xp.float32) if half else out
        if reduction == formulas.MEAN and not math.isfinite(formulas.numel(out)):
            total = xp.mean(acc)
        else:
            total = formulas.reduce(acc, reduction, xp=xp)
        if half:  # round to half where NumPy's overflow warning is silenced
            return total.map_blocks(partial(_quiet_cast, to=dtype), dtype=dtype, meta=out._meta)
        return total


def _checked_chunk(
    logits: bool,
    chunks: Backend,
    x: Array,
    t: Array,
    w: Array | None,
    p: Array | None,
    *,
    xp: Any,
) -> Array:
    """Either loss of one Dask chunk (NumPy arrays), checked as an eager call is.

    Runs inside the chunk's own task at compute time: an error reaches ``compute()``
    with torch's class and message, without another pass or graph layer. Blocks of
    arrays of unknown size have their shapes compared here; BCE's value check rides
    on the chunk's summed loss (see :func:`_checks.unit_interval`)."""
    _checks.same_shape(x, t, logits=logits)
    loss = formulas.elementwise_loss(logits, x, t, w, p, xp=xp)
    if not logits:
        chunks.unit_interval(x, t, reduced=xp.sum(loss))
    return loss


def _numpy_chunk(
    fn: Elementwise, chunks: Backend, present: tuple[bool, ...], *blocks: Any
) -> Any:
    """``fn`` on one chunk of each array (``None`` where an argument is absent)."""
    it = iter(blocks)
    args = [next(it) if here else None for here in present]
    with chunks.quiet():
        return fn(*args, xp=chunks.ops)


def _quiet_cast(block: Any, to: Any) -> Any:
    import numpy as np

    with np.errstate(over="ignore"):
        return block.astype(to)


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
