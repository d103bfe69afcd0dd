"""Running binary cross-entropy: torch's loss of a whole dataset, batch by batch.

The usual epoch loss (``epoch_loss += loss.item()`` per batch, divided by the number of
batches) is the mean of batch means: not the loss of the dataset when the last batch is
smaller or weights are given, a host synchronisation per batch, and, summed in float32
over millions of elements, short of digits. This module accumulates the dataset's loss
instead: :func:`result` equals torch's one-shot loss on the concatenated batches::

    torch.nn.functional.binary_cross_entropy[_with_logits](
        torch.cat(inputs), torch.cat(targets), weight=torch.cat(weights),
        pos_weight=pos_weight, reduction=reduction)

whatever the batch sizes (empty and one-element batches included) and their order,
within the tolerance of the one-shot ``mean``/``sum`` itself (a few ulps of the sum of
the elements' |loss|), on every array library xbce supports.

Two forms:

- functional (pure functions, as optax and clu): :func:`init`, :func:`update`,
  :func:`result`, :func:`merge`. The :class:`State` is a ``NamedTuple`` of 0-d arrays
  of the input's library on its device, hence a JAX pytree: ``jax.jit(update)``,
  ``jax.lax.scan`` and ``jax.lax.psum`` take it as it is;
- :class:`RunningBCE`, for eager code (as torchmetrics): ``update``, ``compute``,
  ``reset``, ``merge``, ``state_dict``/``load_state_dict``.

This module is a front end, like :mod:`xbce.conventions`: ``import xbce`` does not
import it (``from xbce import running``).

Each batch goes through xbce's own loss (:func:`xbce.binary_cross_entropy` or
:func:`xbce.binary_cross_entropy_with_logits`), so its elementwise values, its errors
and its value checks are the loss's: on the CPU (NumPy, torch CPU tensors,
array-api-strict) a probability outside [0, 1] raises at :func:`update` as the loss
raises; on Dask when the result is computed. On accelerators :func:`update` reads
nothing on the host (no ``.item()``, no ``bool()``): a bad value makes the result NaN
there, as under ``jax.jit``; on JAX :func:`update` runs jitted, and under
:func:`xbce.checkify` it stages torch's checks instead.

Accumulation: each batch's loss is summed by the loss itself (``reduction="sum"``, in
the loss's dtype; float16 and bfloat16 elements are summed in the accumulator's dtype,
as torch sums them in float32) and added to a float64 total where the library has
float64 (NumPy, torch, JAX with ``jax_enable_x64``, Dask, array-api-strict, CuPy).
Where it has not (JAX with 64-bit mode off, torch on MPS) the total is a float32 pair,
summed with Knuth's TwoSum (the rounding error of every addition is kept in
``compensation``). ``mean`` is ``sum(weight * loss) / numel`` as in torch: a weight does
not change the divisor; an empty dataset gives NaN for ``mean`` and 0 for ``sum``.

Examples
--------
The mean over batches of 3, 1 and 0 elements is torch's mean of all 4 elements:

>>> import numpy as np
>>> import xbce
>>> from xbce import running
>>> p = np.array([0.9, 0.2, 0.6, 0.3], dtype=np.float32)
>>> y = np.array([1.0, 0.0, 1.0, 1.0], dtype=np.float32)
>>> state = running.init(p)
>>> for lo, hi in [(0, 3), (3, 4), (4, 4)]:
...     state = running.update(state, p[lo:hi], y[lo:hi])
>>> mean = running.result(state)
>>> mean.dtype, mean.shape
(dtype('float32'), ())
>>> one_shot = xbce.binary_cross_entropy(p, y)  # torch's loss of all 4 at once
>>> bool(abs(float(mean) - float(one_shot)) <= 1e-6 * float(one_shot))
True
>>> round(float(mean), 4)
0.5108
>>> round(float(running.result(state, "sum")), 4)
2.0433

The mean of the batch means (what ``epoch_loss / len(loader)`` gives) is not that:

>>> means = [float(xbce.binary_cross_entropy(p[lo:hi], y[lo:hi])) for lo, hi in [(0, 3), (3, 4)]]
>>> round(sum(means) / len(means), 4)
0.7419

Logits, a weight per element and ``pos_weight``, as the loss takes them; states of
two workers (or devices) merge into the state of all their data:

>>> z = np.array([2.0, -1.0, 0.5, -0.5], dtype=np.float32)
>>> w = np.array([1.0, 2.0, 0.5, 1.0], dtype=np.float32)
>>> pw = np.array(3.0, dtype=np.float32)
>>> a = running.update(running.init(z), z[:2], y[:2], w[:2], logits=True, pos_weight=pw)
>>> b = running.update(running.init(z), z[2:], y[2:], w[2:], logits=True, pos_weight=pw)
>>> merged = running.result(running.merge(a, b))
>>> ref = xbce.binary_cross_entropy_with_logits(z, y, w, pos_weight=pw)
>>> bool(abs(float(merged) - float(ref)) <= 1e-6 * float(ref))
True

The object form, for eager training loops:

>>> metric = running.RunningBCE(logits=True, reduction="sum")
>>> metric.update(z[:3], y[:3])
>>> metric.update(z[3:], y[3:])
>>> round(float(metric.compute()), 4)
1.8883
>>> sorted(metric.state_dict())
['compensation', 'count', 'count_high', 'like', 'total']
>>> metric.reset()
>>> metric.state is None
True

On torch, JAX and the other libraries nothing changes but the arrays: the state and the
result are arrays of the input's library on the input's device. On JAX, ``update`` can
be jitted or scanned with the state as a pytree (``jax.jit(running.update)``), and the
states of devices combine with ``jax.lax.psum(state, axis_name)``; on torch,
``torch.distributed.all_reduce`` of each state tensor (``SUM``) merges the states of
processes, and ``RunningBCE.state_dict()`` goes into a checkpoint with ``torch.save``.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any, NamedTuple

from . import _backends, _checks, _private
from ._compat import array_namespace, device
from ._formulas import BCE
from ._functional import binary_cross_entropy, binary_cross_entropy_with_logits
from ._typing import Call

__all__ = ["RunningBCE", "State", "init", "merge", "result", "update"]

Array = Any

#: a 32-bit count (JAX with x64 off) keeps ``count`` below this and carries into
#: ``count_high``; float32 holds every integer below it exactly
_CARRY = 2**24

_MEAN, _SUM = "mean", "sum"


class State(NamedTuple):
    """The running loss: 0-d arrays of the input's library, on the input's device.

    Every field is a plain sum over the batches, so the fields of several states add
    up to the state of all their data (:func:`merge`; ``jax.lax.psum`` or
    ``torch.distributed.all_reduce`` with ``SUM`` field by field).

    Attributes:
        total: the sum of ``weight * loss`` so far, in the accumulator's dtype (float64,
            or float32 where the library has no float64).
        compensation: the rounding error of ``total`` (TwoSum) where the accumulator is
            float32; zero where it is float64.
        count: the number of elements seen (int64; int32 where the library has no
            64-bit integers, and then below ``2**24``).
        count_high: with a 32-bit ``count``, the number of ``2**24`` elements carried
            out of it; zero with an int64 count.
        like: a 0-d zero in the loss's dtype: the dtype, library and device of
            :func:`result`.
    """

    total: Array
    compensation: Array
    count: Array
    count_high: Array
    like: Array


# ----------------------------------------------------------------- the library
_LIBRARIES: dict[type, str] = {}
_KNOWN = {"numpy": "numpy", "torch": "torch", "jax": "jax", "jaxlib": "jax",
          "dask": "dask", "cupy": "cupy"}


def _library(a: object) -> str:
    """``numpy``, ``torch``, ``jax``, ``dask``, ``cupy`` or ``other``, by type (cached)."""
    kind = type(a)
    name = _LIBRARIES.get(kind)
    if name is None:
        name = _LIBRARIES[kind] = _KNOWN.get(kind.__module__.partition(".")[0], "other")
    return name


def _call_library(input: Array, target: Array) -> str:
    """The library of a call: the input's, or the target's when the input is NumPy's
    (xbce converts NumPy arrays that join another library's)."""
    name = _library(input)
    if name == "numpy" or name == "other":
        other = _library(target)
        if other not in ("numpy", "other"):
            return other
    return name


#: per dtype: (float16 or bfloat16, 64 bits wide); str() of a NumPy dtype costs microseconds
#: (keyed with the dtype's type: array-api-strict warns when its dtypes meet NumPy's)
_DTYPES: dict[tuple[type, Any], tuple[bool, bool]] = {}


def _dtype_kind(dtype: Any) -> tuple[bool, bool]:
    key = (type(dtype), dtype)
    try:
        return _DTYPES[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable dtype
        name = str(dtype)
        return "float16" in name, name.endswith("64")
    name = str(dtype)
    kind = _DTYPES[key] = ("float16" in name, name.endswith("64"))
    return kind


def _wide(dtype: Any) -> bool:
    """Whether a dtype is 64 bits wide (float64, int64)."""
    return _dtype_kind(dtype)[1]


def _half(a: Array) -> bool:
    """Whether ``a`` is float16 or bfloat16 (summed in the accumulator, as torch sums
    half-precision losses in float32)."""
    dtype = getattr(a, "dtype", None)
    return dtype is not None and _dtype_kind(dtype)[0]


# ---------------------------------------------------------------------- init
def init(like: Array) -> State:
    """The state of no data, for batches like ``like``.

    Args:
        like: an array of the library, device and floating dtype of the losses to
            accumulate (e.g. the first batch's input); only its type, dtype and device
            are used.

    Returns:
        A :class:`State` of zeros: float64 accumulators where the library has float64
        (float32 with compensation where it has not), int64 counts (int32 where the
        library has no int64), and ``like`` a 0-d zero of ``like``'s dtype.

    Raises:
        TypeError: ``like`` is not an array of a real floating dtype.
    """
    _checks.arrays(like=like)
    lib = _library(like)
    xp = array_namespace(like)
    if not xp.isdtype(like.dtype, "real floating"):
        raise TypeError(f"running.init: like must have a real floating dtype, not {like.dtype}")
    dev = _device(lib, like)
    zeros = functools.partial(_zeros, xp, dev)
    if lib == "jax":
        import jax

        wide = bool(getattr(jax.config, "jax_enable_x64"))  # noqa: B009 (untyped)
        acc = zeros(xp.float64 if wide else xp.float32)
    else:
        try:
            acc = zeros(xp.float64)
            wide = True
        except (TypeError, RuntimeError, ValueError, AttributeError):  # torch on MPS
            acc = zeros(xp.float32)
            wide = False
    count = zeros(xp.int64 if wide else xp.int32)
    return State(acc, zeros(acc.dtype), count, zeros(count.dtype), zeros(like.dtype))


def _device(lib: str, like: Array) -> Any:
    if lib == "jax":
        import jax

        if isinstance(like, jax.core.Tracer):
            return None
        devices = like.devices()
        return next(iter(devices)) if len(devices) == 1 else None
    if lib == "dask":
        return None
    return device(like)


def _zeros(xp: Any, dev: Any, dtype: Any) -> Array:
    if dev is None:
        return xp.zeros((), dtype=dtype)
    return xp.zeros((), dtype=dtype, device=dev)


# -------------------------------------------------------------------- update
def update(
    state: State | None,
    input: Array,
    target: Array,
    weight: Array | float | None = None,
    *,
    logits: bool = False,
    pos_weight: Array | float | None = None,
) -> State:
    """The state after one more batch.

    Args:
        state: the state so far (:func:`init`); ``None`` starts from ``init`` of this
            batch's loss.
        input: probabilities (``logits=False``) or logits (``logits=True``), any shape.
        target: targets, ``input``'s shape.
        weight: rescales each element's loss, as the loss's ``weight`` (it must
            broadcast into ``input``'s shape); it does not change the divisor of
            ``mean``.
        logits: accumulate :func:`xbce.binary_cross_entropy_with_logits` instead of
            :func:`xbce.binary_cross_entropy`.
        pos_weight: the logits loss's ``pos_weight``.

    Returns:
        A new :class:`State` (``state`` is not modified).

    Raises:
        What the loss raises for these arguments, with torch's types and messages; a
        value outside [0, 1] (``logits=False``) only where the loss reads values
        without a host synchronisation (NumPy, torch CPU tensors, array-api-strict),
        at compute time on Dask, and under :func:`xbce.checkify` on JAX.
        TypeError: the batch's loss has another dtype than the state's ``like``, or
            ``pos_weight`` is given with ``logits=False``.
    """
    if pos_weight is not None and not logits:
        raise TypeError("running.update: pos_weight is an argument of the logits loss "
                        "(logits=True)")
    lib = _call_library(input, target)
    if lib == "jax" and _jax_eager(input, target, weight, pos_weight):
        return _jax_update(bool(logits))(state, input, target, weight, pos_weight)  # type: ignore[no-any-return]
    return _update(state, lib, input, target, weight, bool(logits), pos_weight)


def _update(
    state: State | None,
    lib: str,
    input: Array,
    target: Array,
    weight: Array | None,
    logits: bool,
    pos_weight: Array | None,
) -> State:
    torch = lib == "torch"
    if torch:
        if getattr(input, "requires_grad", False):  # the state keeps no autograd graph
            input = input.detach()
        if getattr(target, "requires_grad", False):
            target = target.detach()
    half = _half(target)  # the loss's dtype: the target's (BCE: the input's too)
    reduction = "none" if half else _SUM
    loss = _loss(lib, logits, input, target, weight, pos_weight, reduction)
    if state is None:
        state = init(loss)
    like = state.like
    if loss.dtype != like.dtype:
        raise TypeError(
            f"running.update: this batch's loss is {loss.dtype}, the state accumulates "
            f"losses of {like.dtype} (init the state with an array of {loss.dtype})"
        )
    total = state.total
    if half:
        batch = array_namespace(loss).sum(loss, dtype=total.dtype)
        n = _numel(loss)
    else:
        batch = loss
        n = input.numel() if torch and hasattr(input, "numel") else _numel(input)
    total, compensation = _add(total, state.compensation, batch)
    count, count_high = _count(state.count + n, state.count_high)
    if lib == "numpy":  # NumPy's 0-d arithmetic gives scalars: keep 0-d arrays
        np = sys.modules["numpy"]
        total, compensation = np.asarray(total), np.asarray(compensation)
        count, count_high = np.asarray(count), np.asarray(count_high)
    return State(total, compensation, count, count_high, like)


def _numel(a: Array) -> Any:
    return math.prod(a.shape)


def _add(total: Array, compensation: Array, value: Array) -> tuple[Array, Array]:
    """``total + value``: plain in float64; TwoSum into ``compensation`` in float32."""
    if _wide(total.dtype):
        return total + value, compensation
    if value.dtype != total.dtype:  # a float32 accumulator: the losses are float32
        value = array_namespace(value).astype(value, total.dtype)
    new = total + value
    back = new - total
    error = (total - (new - back)) + (value - back)
    return new, compensation + error


def _count(count: Array, high: Array) -> tuple[Array, Array]:
    """A 32-bit count carried into ``high`` at ``2**24``; an int64 count as it is."""
    if _wide(count.dtype):
        return count, high
    return count % _CARRY, high + count // _CARRY


def _loss(
    lib: str,
    logits: bool,
    input: Array,
    target: Array,
    weight: Array | None,
    pos_weight: Array | None,
    reduction: str,
) -> Array:
    """The batch's loss, by xbce's loss; BCE's values are read only where that costs no
    host synchronisation (:func:`_reads`)."""
    if logits:  # reads no values anywhere
        return binary_cross_entropy_with_logits(
            input, target, weight, pos_weight=pos_weight, reduction=reduction
        )
    if _reads(lib, input, target):
        return binary_cross_entropy(input, target, weight, reduction=reduction)
    return _unread_bce(input, target, weight, reduction)


def _reads(lib: str, input: Array, target: Array) -> bool:
    """Whether the loss may check BCE's values here: everywhere but on accelerators,
    where the check would synchronise (torch off the CPU, CuPy). Torch's fake, meta
    and ``torch.func`` tensors are never read by the loss itself."""
    if lib == "torch":
        tensor = input if hasattr(input, "is_cpu") else target  # a NumPy input joins it
        if tensor.is_cpu:
            return True
        import torch

        from . import _torch

        if torch.compiler.is_compiling():
            return True  # before the functorch test, which Dynamo cannot trace
        return any(bool(_torch._is_wrapped(a)) or a.is_meta
                   for a in (tensor, target) if isinstance(a, torch.Tensor))
    return lib != "cupy"


def _unread_bce(input: Array, target: Array, weight: Array | None, reduction: str) -> Array:
    """binary_cross_entropy with every check that reads no values, its values unread:
    an element outside [0, 1] makes the loss NaN (as under ``jax.jit``)."""
    call = Call(BCE, input, target, weight, None, reduction, lazy=True)
    backend, call = _backends.of(call)
    return backend.loss(call)


def _jax_eager(*arrays: Array) -> bool:
    """Whether JAX arrays are concrete at the top level (not traced): ``update`` then
    runs jitted, so that nothing is read on the host."""
    import jax

    if any(isinstance(a, jax.core.Tracer) for a in arrays):
        return False
    return bool(_private.jax_is_top_level()())


@functools.cache
def _jax_update(logits: bool) -> Any:
    import jax

    def run(
        state: State | None, input: Array, target: Array, weight: Array, pos_weight: Array
    ) -> State:
        return _update(state, "jax", input, target, weight, logits, pos_weight)

    return jax.jit(run)


# ------------------------------------------------------------- merge, result
def merge(a: State, b: State) -> State:
    """The state of the data of ``a`` and ``b`` together (exact and associative within
    the tolerance of the one-shot loss).

    Raises:
        TypeError: the states accumulate losses of different dtypes.
    """
    if a.like.dtype != b.like.dtype:
        raise TypeError(
            f"running.merge: states of {a.like.dtype} and {b.like.dtype} losses do not merge"
        )
    total, compensation = _add(a.total, a.compensation + b.compensation, b.total)
    count, count_high = _count(a.count + b.count, a.count_high + b.count_high)
    if _library(a.total) == "numpy":
        np = sys.modules["numpy"]
        total, compensation = np.asarray(total), np.asarray(compensation)
        count, count_high = np.asarray(count), np.asarray(count_high)
    return State(total, compensation, count, count_high, a.like)


def result(state: State, reduction: str = "mean") -> Array:
    """The loss of all the data seen, as torch's one-shot loss on it.

    Args:
        state: the running state.
        reduction: ``"mean"`` (``sum(weight * loss) / numel``; NaN when no element was
            seen) or ``"sum"`` (0 when none was).

    Returns:
        A 0-d array of the loss's dtype, on the input's library and device.

    Raises:
        ValueError: ``reduction`` is neither ``"mean"`` nor ``"sum"``.
    """
    reduction = _reduction(reduction)
    xp = array_namespace(state.total)
    total = state.total + state.compensation
    if reduction == _MEAN:
        acc = total.dtype
        count = xp.astype(state.count, acc)
        if not _wide(state.count.dtype):
            count = count + xp.astype(state.count_high, acc) * float(_CARRY)
        empty = count == 0
        total = xp.where(empty, math.nan, total / xp.where(empty, 1.0, count))
    out = xp.astype(total, state.like.dtype)
    if _library(out) == "numpy":
        out = sys.modules["numpy"].asarray(out)
    return out


def _reduction(reduction: object) -> str:
    if reduction == "none":
        raise ValueError("a running loss has no reduction 'none': use 'mean' or 'sum'")
    reduction = _checks.reduction(reduction)  # torch's message for others
    return str(reduction)


# -------------------------------------------------------------- object form
class RunningBCE:
    """The running loss of an eager training loop (torchmetrics-style).

    Args:
        logits: accumulate the logits loss (:func:`xbce.binary_cross_entropy_with_logits`).
        pos_weight: the logits loss's ``pos_weight``, for every batch.
        reduction: what :meth:`compute` gives: ``"mean"`` or ``"sum"``.

    The state (:attr:`state`, a :class:`State`, ``None`` before the first batch) takes
    the library, device and dtype of the first batch's loss.

    Examples:
        >>> import numpy as np
        >>> from xbce import running
        >>> metric = running.RunningBCE()
        >>> for batch in np.array_split(np.linspace(0.1, 0.9, 9, dtype=np.float32), 4):
        ...     metric.update(batch, np.ones_like(batch))
        >>> round(float(metric.compute()), 4)
        0.8802
    """

    def __init__(
        self,
        *,
        logits: bool = False,
        pos_weight: Array | float | None = None,
        reduction: str = "mean",
    ) -> None:
        if pos_weight is not None and not logits:
            raise TypeError("RunningBCE: pos_weight is an argument of the logits loss "
                            "(logits=True)")
        self.logits = bool(logits)
        self.pos_weight = pos_weight
        self.reduction = _reduction(reduction)
        self.state: State | None = None

    def __repr__(self) -> str:
        seen = "no batch" if self.state is None else f"count={self.state.count!r}"
        return f"RunningBCE(logits={self.logits}, reduction={self.reduction!r}; {seen})"

    def update(self, input: Array, target: Array, weight: Array | float | None = None) -> None:
        """Add a batch (see :func:`update`)."""
        self.state = update(
            self.state, input, target, weight, logits=self.logits, pos_weight=self.pos_weight
        )

    def compute(self) -> Array:
        """The loss of every batch so far (see :func:`result`).

        Raises:
            RuntimeError: no batch was added yet (the library and dtype are unknown).
        """
        if self.state is None:
            raise RuntimeError(
                "RunningBCE.compute() before the first update(): no batch has been seen, "
                "so the library, device and dtype of the result are unknown"
            )
        return result(self.state, self.reduction)

    def reset(self) -> None:
        """Forget every batch."""
        self.state = None

    def merge(self, other: RunningBCE | State | None) -> RunningBCE:
        """Add another metric's (or state's) data to this one, in place; returns self.

        Raises:
            ValueError: ``other`` accumulates the other loss (``logits`` differs).
        """
        if isinstance(other, RunningBCE):
            if other.logits != self.logits:
                raise ValueError("RunningBCE.merge: one metric accumulates the logits loss, "
                                 "the other the probabilities loss")
            other = other.state
        if other is not None:
            self.state = other if self.state is None else merge(self.state, other)
        return self

    def state_dict(self) -> dict[str, Array]:
        """The state's arrays by field name (``{}`` before the first batch); for torch
        tensors it goes into ``torch.save`` as it is."""
        return {} if self.state is None else dict(self.state._asdict())

    def load_state_dict(self, state_dict: dict[str, Array]) -> None:
        """Restore a :meth:`state_dict`.

        Raises:
            KeyError: keys missing or unexpected (none at all restores the empty state).
        """
        if not state_dict:
            self.state = None
            return
        missing = [k for k in State._fields if k not in state_dict]
        unexpected = [k for k in state_dict if k not in State._fields]
        if missing or unexpected:
            raise KeyError(f"RunningBCE.load_state_dict: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        self.state = State(**{k: state_dict[k] for k in State._fields})
