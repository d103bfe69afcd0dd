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
from ._array_api import known, known_lengths
from ._numpy import NumPy, quiet
from ._numpy import backend as numpy_backend
from ._typing import Array, Call, Loss, Namespace


class Dask:
    """Dask arrays: never read here (see the module)."""

    torch_wording = False
    grad_enabled: Callable[[], bool] | None = None  # no weight's gradient is recorded
    devices = None  # one device

    def __init__(self, xp: Namespace) -> None:
        self.xp = xp
        self.ops = formulas.Ops(xp)
        self.chunks = numpy_backend()  #: evaluates each chunk

    def loss(self, call: Call) -> Array:
        call = call._replace(lazy=True)
        _checks.arguments(known_lengths(call), self)
        x, t = call.input, call.target
        fn = partial(_checked_chunk, call.loss, self.chunks)
        out = self._map_blocks(fn, x, call, call.loss.dtype(x, t))
        return out if call.reduction == formulas.NONE else self._reduce(out, call.reduction)

    def gradient(self, call: Call) -> Array:
        _checks.arguments(known_lengths(call), self)
        like = call.input if call.wrt == "input" else call.target
        # the chain ends with torch's ``/ numel`` of the whole array
        count = formulas.mean_count(call.reduction, like)
        if count is not None and not known(count):
            raise ValueError(
                "the gradient of reduction='mean' divides by the number of elements, unknown "
                "for this Dask array: call its compute_chunk_sizes() first"
            )
        fn = partial(formulas.elementwise_gradient, call.loss, str(call.wrt), count)
        return self._map_blocks(fn, like, call, like.dtype,
                                first=call.grad)

    def _map_blocks(self, fn: Callable[..., Array], like: Array, call: Call, dtype: Any,
                    first: Array | None = None) -> Array:
        """``fn(*blocks, ops)`` on each chunk (of ``first`` if given, then the input,
        target, weight and pos_weight; ``None`` where absent), as NumPy arrays."""
        import dask.array as da
        import numpy as np
        from dask.base import tokenize

        arrays: tuple[Array | None, ...] = (call.input, call.target, call.weight, call.pos_weight)
        if first is not None:
            arrays = (first, *arrays)
        blocks = [None if a is None else _dask_operand(a, like) for a in arrays]
        present = [b for b in blocks if b is not None]
        kernel = partial(_numpy_chunk, fn, self.chunks, tuple(b is not None for b in blocks))
        meta = np.empty((0,) * like.ndim, dtype=dtype)
        # named from the arguments' names (None where absent) and ``fn``'s repr: dask
        # would otherwise tokenize ``kernel`` by pickling it, ~10 ms per call
        names = [None if b is None else b.name for b in blocks]
        name = "xbce-" + tokenize(repr(fn), names, str(dtype))
        return da.map_blocks(kernel, *present, dtype=dtype, meta=meta, name=name)  # type: ignore[no-untyped-call]

    def _reduce(self, out: Array, reduction: str) -> Array:
        """``mean``/``sum`` of the elementwise result (half types in float32).

        Where the length is unknown (NaN), ``mean`` divides by the count of elements
        found at compute time (``da.mean``: the same tree of float32/float64 sums, then
        the division, correctly rounded as torch's ``sum / numel`` is)."""
        xp, dtype = self.xp, out.dtype
        half = formulas.is_half(dtype)
        acc = xp.astype(out, xp.float32) if half else out
        if reduction == formulas.MEAN and not math.isfinite(formulas.numel(out)):
            total = xp.mean(acc)
        else:
            total = formulas.reduce(acc, reduction, self.ops)
        if half:  # round to half where NumPy's overflow warning is silenced
            return total.map_blocks(partial(_quiet_cast, to=dtype), dtype=dtype, meta=out._meta)
        return total


def _checked_chunk(loss: Loss, chunks: NumPy, x: Array, t: Array, w: Array | None,
                   p: Array | None, ops: formulas.Ops) -> Array:
    """Either loss of one Dask chunk (NumPy arrays), checked as an eager call is.

    Runs inside the chunk's own task at compute time: an error reaches ``compute()``
    with torch's class and message, without another pass or graph layer. Blocks of
    arrays of unknown size have their shapes compared here."""
    if x.shape != t.shape:
        _checks.different_shapes(x, t, logits=loss.logits)
    if not loss.logits:
        _checks.unit_interval(x, t, chunks)
    return loss.elementwise(x, t, w, p, ops)


def _numpy_chunk(
    fn: Callable[..., Array], chunks: NumPy, present: tuple[bool, ...], *blocks: Any
) -> Any:
    """``fn`` on one chunk of each array (``None`` where an argument is absent)."""
    it = iter(blocks)
    args = [next(it) if here else None for here in present]
    with quiet():
        return fn(*args, chunks.ops)


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
    if all(map(known, like.shape)):
        return da.broadcast_to(a, like.shape).rechunk(like.chunks)  # type: ignore[no-untyped-call]
    if a.ndim == like.ndim and not all(map(known, a.shape)):
        return a
    trailing = like.chunks[like.ndim - a.ndim:]
    chunks = tuple((1,) if n == 1 else c for n, c in zip(a.shape, trailing, strict=True))
    return a.rechunk(chunks)
