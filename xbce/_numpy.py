"""The NumPy backend: its whole call path, large arrays in blocks on a thread pool.

Imported for NumPy arrays (and by the Dask backend, whose chunks are NumPy arrays).
Values are always read, on the host. Arrays of 2**18 elements or more are evaluated in
blocks (``_blocks``); 0-d results are arrays, never NumPy scalars.

Its primitives (:class:`NumPy`'s ``ops``): ufuncs and their ``reduce`` called directly
(the compat wrappers cost more than the operation at small sizes); a float32 ``log``
evaluated in float64 and rounded once (``Ops.log_via_float64``: equal to glibc's
``logf``, which torch's BCE kernel calls, in 99.5% of float32 inputs, where NumPy's
SIMD ``logf`` is in 90.7%; ~12% more time per BCE element); and where NumPy lacks
AVX-512, whose float32 ``log1p`` is glibc's scalar ``log1pf`` (torch's bits, ~7x slower
per element than NumPy's vectorised ``log``), from 4096 elements on the float64
``log(1 + u)`` rounded once (``Ops.log1p_via_float64``: <= 1 ulp from ``log1pf``; 1.3x
faster at 2**14, 1.9x at 2**16). With AVX-512, NumPy's own vectorised ``log1p``
(<= 1.2 ulp) is 3x faster than that detour.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from . import _blocks, _checks, _private
from . import _formulas as formulas
from ._compat import array_namespace
from ._typing import Array, Call

_NO_CONTEXT = contextlib.nullcontext()


def quiet() -> contextlib.AbstractContextManager[object]:
    """Silences NumPy's warnings of intended values (``log(0)``, ``0 * inf``), which
    libraries built on NumPy (array-api-strict, Dask's chunks) raise too."""
    np = sys.modules.get("numpy")
    if np is None:
        return _NO_CONTEXT
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")  # type: ignore[no-any-return]


#: whether NumPy dispatches float32 ``log1p`` to its AVX-512 (SVML) loop (a name
#: tests replace to try both paths)
has_vector_log1p = _private.numpy_has_avx512


class NumPy:
    """NumPy arrays (see the module)."""

    torch_wording = False
    devices = None  # one device
    grad_enabled = None  # no autodiff records a weight's gradient

    def __init__(self) -> None:
        import numpy as np

        self.ops = formulas.Ops(
            array_namespace(np.empty(0)), minimum=np.minimum, clamp_min=np.maximum,
            clamp_max=np.minimum, sum=partial(np.add.reduce, axis=None),
            min=partial(np.minimum.reduce, axis=None), max=partial(np.maximum.reduce, axis=None),
        )
        self.ops.log = self.ops.log_via_float64
        if not has_vector_log1p():
            self.ops.log1p = self.ops.log1p_via_float64
        self.threads = _blocks.cores()
        self._np = np  # NumPy's ops on 0-d arrays give scalars: made 0-d arrays again

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by name (Dask sends it to its workers with each chunk task)."""
        return (backend, ())

    def loss(self, call: Call) -> Array:
        _checks.arguments(call, self)
        x, loss = call.input, call.loss
        if x.size < _blocks.BLOCKED_FROM:
            return self._evaluated(formulas.loss, call)
        return self._blocked(loss.elementwise, x, call[1:5], loss.dtype(x, call.target),
                             call.reduction)

    def gradient(self, call: Call) -> Array:
        _checks.arguments(call, self)
        like = call.input if call.wrt == "input" else call.target
        if like.size < _blocks.BLOCKED_FROM:
            return self._evaluated(formulas.gradient, call)
        fn = partial(formulas.elementwise_gradient, call.loss, str(call.wrt),
                     formulas.mean_count(call.reduction, like))
        return self._blocked(fn, like, (call.grad, *call[1:5]), like.dtype, formulas.NONE)

    def _evaluated(self, whole: Callable[[Call, formulas.Ops], Array], call: Call) -> Array:
        """``whole(call, ops)`` on whole arrays, a 0-d result as an array."""
        with quiet():
            out = whole(call, self.ops)
        return self._np.asarray(out) if isinstance(out, self._np.generic) else out

    def _blocked(self, fn: Callable[..., Array], like: Array,
                 arrays: tuple[Array | None, ...], dtype: Any, reduction: str) -> Array:
        """``fn`` on blocks of ``arrays`` (``_blocks.reduced``: a 0-d result is an array)."""
        return _blocks.reduced(fn, like, arrays, dtype, reduction, self.ops, threads=self.threads,
                               contiguous=_c_contiguous, quiet=quiet)


def _c_contiguous(a: Array) -> bool:
    return bool(a.flags["C_CONTIGUOUS"])


@functools.cache
def backend() -> NumPy:
    """The backend of NumPy arrays (made on first use)."""
    return NumPy()
