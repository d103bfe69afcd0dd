"""Argument checks: PyTorch's errors, raised before any arithmetic happens.

Exceptions carry PyTorch's messages and can be caught as the exception PyTorch raises
*and* as the Python exception a user of NumPy or JAX would expect (see the classes).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

from . import _messages
from ._compat import device
from ._formulas import MEAN, NONE, SUM, numel
from ._legacy import warn_at_caller

Array = Any
Backend = Any  # _backends.Backend: its ``xp``, ``torch_wording``, ``on_host`` and
#                ``refuse_gradients`` are all these checks ask of a library


class InvalidValueError(ValueError, RuntimeError):
    """An input or target element outside [0, 1], NaN or inf (binary_cross_entropy).

    PyTorch raises ``RuntimeError: all elements of input should be between 0 and 1``."""


class ShapeMismatchError(ValueError, RuntimeError):
    """Shapes that do not fit: ``target`` not of ``input``'s shape (PyTorch raises
    ``ValueError``), or a ``weight``, ``pos_weight`` or ``grad_output`` that does not
    broadcast into ``input``'s shape (PyTorch raises ``RuntimeError``)."""


class DtypeMismatchError(TypeError, RuntimeError):
    """``input`` and ``target`` of different dtypes in binary_cross_entropy (PyTorch:
    ``RuntimeError: Found dtype Double but expected Float``)."""


class UnsupportedDtypeError(TypeError, NotImplementedError):
    """A dtype the loss is not defined for: an integer, bool or complex ``input``
    (PyTorch: ``NotImplementedError``), or, in binary_cross_entropy_with_logits, an
    integer or bool ``target`` or a bool ``pos_weight`` (PyTorch: ``RuntimeError``,
    of which ``NotImplementedError`` is a subclass)."""


_REDUCTIONS = (NONE, MEAN, SUM)


def reduction(value: object) -> str:
    """Validate ``reduction`` as ``torch.nn._reduction.get_enum`` does."""
    if value == "elementwise_mean":
        warn_at_caller(
            "reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead."
        )
        return MEAN
    if not isinstance(value, str) or value not in _REDUCTIONS:
        raise ValueError(f"{value} is not a valid value for reduction")
    return value


def is_array(a: object) -> bool:
    return hasattr(a, "shape") and hasattr(a, "dtype")


def arrays(**named: object) -> None:
    for name, a in named.items():
        if a is not None and not is_array(a):
            raise TypeError(f"{name} must be an array, not {type(a).__name__}")


def known(n: object) -> bool:
    """Whether an axis length is known: Dask writes an unknown one as NaN (after boolean
    masking, or from a dataframe without computed lengths), the array API as None."""
    return n is not None and n == n


def same_shape(x: Array, y: Array, *, logits: bool) -> None:
    """torch.nn.functional's shape check: no broadcasting between input and target.

    An axis whose length is unknown (lazy arrays) is not compared here: the Dask chunk
    kernels compare the blocks' shapes when they are computed (:func:`same_shape` on
    each pair of blocks)."""
    xs, ys = tuple(x.shape), tuple(y.shape)
    if xs == ys:
        return
    agree = all(a == b for a, b in zip(xs, ys, strict=False) if known(a) and known(b))
    if len(xs) == len(ys) and agree and not all(map(known, xs + ys)):
        return  # unknown lengths that may be equal: checked per block at compute time
    if logits:
        msg = f"Target size ({y.shape}) must be the same as input size ({x.shape})"
    else:
        msg = (
            f"Using a target size ({y.shape}) that is different to the input size "
            f"({x.shape}) is deprecated. Please ensure they have the same size."
        )
    raise ShapeMismatchError(msg)


def floating(x: Array, op: str, backend: Backend) -> None:
    """``x`` must be real floating (PyTorch's dispatch: "not implemented for 'Long'")."""
    if not backend.xp.isdtype(x.dtype, "real floating"):
        torch = backend.torch_wording
        kernel = _messages.kernel_name(op, x, torch)
        raise UnsupportedDtypeError(
            f"\"{kernel}\" not implemented for '{_messages.dtype_name(x.dtype, torch)}'"
        )


def same_dtype(x: Array, y: Array, backend: Backend) -> None:
    if x.dtype != y.dtype:
        torch = backend.torch_wording
        found = _messages.dtype_name(y.dtype, torch)
        expected = _messages.dtype_name(x.dtype, torch)
        raise DtypeMismatchError(f"Found dtype {found} but expected {expected}")


def logits_target(t: Array, x: Array, backend: Backend) -> None:
    """BCE-with-logits computes in the target's dtype, so it must be floating."""
    xp, torch = backend.xp, backend.torch_wording
    if xp.isdtype(t.dtype, "bool"):
        raise UnsupportedDtypeError(
            "Subtraction, the `-` operator, with two bool tensors is not supported. "
            "Use the `^` or `logical_xor()` operator instead."
        )
    if not xp.isdtype(t.dtype, "real floating"):
        raise UnsupportedDtypeError(
            f"result type {_messages.dtype_name(x.dtype, torch)} can't be cast to the desired "
            f"output type {_messages.dtype_name(t.dtype, torch)}"
        )


def not_bool(p: Array, backend: Backend) -> None:
    """A bool ``pos_weight``: PyTorch's ``pos_weight - 1`` refuses it."""
    if backend.xp.isdtype(p.dtype, "bool"):
        raise UnsupportedDtypeError(
            "Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
            "trying to invert a mask, use the `~` or `logical_not()` operator instead."
        )


def _with_known(
    wshape: tuple[Any, ...], shape: tuple[Any, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Both shapes with each unknown length (lazy arrays: NaN or None) replaced by the
    other shape's length on that axis (1 where neither is known), so that torch's
    broadcasting rules judge only what is known; NumPy checks each block later."""
    w, s = list(wshape), list(shape)
    for i in range(1, min(len(w), len(s)) + 1):
        a, b = w[-i], s[-i]
        if not known(a):
            w[-i] = b if known(b) else 1
        if not known(b):
            s[-i] = w[-i]
    w = [n if known(n) else 1 for n in w]
    s = [n if known(n) else 1 for n in s]
    return tuple(w), tuple(s)


def broadcastable(w: Array, shape: tuple[int, ...], backend: Backend) -> None:
    """binary_cross_entropy's Python-side ``torch.broadcast_shapes(target, weight)``:
    its error comes before every other but the shape's (the growth of the result,
    which broadcasting alone allows, is checked later: see :func:`arguments`)."""
    wshape, shape = _with_known(tuple(w.shape), tuple(shape))
    _, msg = _messages.broadcast_shapes(shape, wshape, backend.torch_wording)
    if msg is not None:
        raise ShapeMismatchError(msg)


def broadcasts_into(
    w: Array, shape: tuple[int, ...], name: str, backend: Backend, *, into: str = "bce"
) -> None:
    """``w`` must broadcast into ``shape`` (right-aligned); the result never grows.

    The message is the one PyTorch raises where it applies ``w`` (shapes as tuples
    off torch): ``into='bce'``, binary_cross_entropy's ``weight``
    (``broadcast_shapes`` with the target, then ``loss.mul_(weight)``); ``'result'``,
    ``loss.mul_(w)`` (the loss is tensor a); ``'pos_weight'``,
    ``(pos_weight - 1).mul(target)`` (pos_weight is tensor a), then
    ``log_sigmoid.mul_(...)``. ``name`` is not part of torch's message."""
    msg = _broadcast_problem(w, shape, backend, into=into)
    if msg is not None:
        raise ShapeMismatchError(msg)


def _broadcast_problem(
    w: Array, shape: tuple[int, ...], backend: Backend, *, into: str
) -> str | None:
    wshape, shape = _with_known(tuple(w.shape), tuple(shape))
    if into == "bce":
        common, msg = _messages.broadcast_shapes(shape, wshape, backend.torch_wording)
        grown: tuple[int, ...] = tuple(common)
    elif into == "pos_weight":
        grown, msg = _messages.infer_size(wshape, shape)
    else:
        grown, msg = _messages.infer_size(shape, wshape)
    if msg is None and grown != shape:
        msg = _messages.grows(shape, grown)
    return msg


def castable(
    w: Array, result: Array, backend: Backend, *, dims: bool | None = None
) -> None:
    """``result.mul_(w)`` in place: torch refuses a complex ``w`` (its product cannot be
    cast back to the real ``result``). ``dims``: whether ``w`` as multiplied is
    dimensioned (default: ``w.ndim > 0``)."""
    if backend.xp.isdtype(w.dtype, "complex floating"):
        product = _messages.complex_product(
            result.dtype, result.ndim > 0, w.dtype, w.ndim > 0 if dims is None else dims
        )
        raise UnsupportedDtypeError(
            _messages.cannot_cast(product, result.dtype, backend.torch_wording)
        )


def pos_weight_castable(p: Array, x: Array, t: Array, backend: Backend) -> None:
    """``log_sigmoid(x).mul_((p - 1).mul(t).add_(1))``: a complex ``p`` (or target)
    makes the log-weight complex, which the real ``log_sigmoid`` cannot take in place."""
    xp = backend.xp
    if not xp.isdtype(p.dtype, "complex floating"):
        return
    if xp.isdtype(t.dtype, "real floating"):
        weight = _messages.complex_product(t.dtype, t.ndim > 0, p.dtype, p.ndim > 0)
    else:
        weight = _messages.natural_name(p.dtype)  # (p - 1).mul(integer or bool t)
    product = _messages.complex_product(
        x.dtype, x.ndim > 0, weight, p.ndim > 0 or t.ndim > 0
    )
    raise UnsupportedDtypeError(_messages.cannot_cast(product, x.dtype, backend.torch_wording))


def same_device(*arrays: Array | None) -> None:
    """All arrays on one device, as torch's TensorIterator requires and words it ("...
    at least two devices, cuda:0 and cpu!"): the common device is the first one that
    is not the host's (``cpu`` in its name; the first array's when all are), and the
    first array elsewhere is named after it. ``arrays`` come in the order torch's op
    that combines them takes them; ``None`` (an absent argument) is skipped. For
    libraries whose own error is not torch's (array-api-strict raises ``ValueError``);
    torch tensors meet torch's own check.

    Unlike torch's binary ops, a 0-d host array is not let through next to device
    arrays (torch lets BCE with logits take a 0-d CPU ``weight`` or ``pos_weight``)."""
    devices = [device(a) for a in arrays if a is not None]
    if not devices:
        return
    common = next((d for d in devices if "cpu" not in str(d).lower()), devices[0])
    for where in devices:
        if where != common:
            raise RuntimeError(
                "Expected all tensors to be on the same device, but found at least two "
                f"devices, {common} and {where}!"
            )


def unit_interval(
    x: Array, y: Array, backend: Backend, *, reduced: Array | None = None
) -> None:
    """Eager arrays only: every input and target element must lie in [0, 1].

    One host synchronisation: ``min``/``max`` propagate NaN, and NaN fails both
    comparisons. ``reduced``, the loss's ``mean`` or ``sum`` when it is already
    computed, stands in for the input's check: an input element outside [0, 1], NaN or
    inf makes its loss NaN (through ``log``/``log1p``, whatever the target and weight),
    hence the sum, so only the targets need their own ``min``/``max``. When something
    fails, the first bad element in memory order decides the message, as in torch's
    per-element kernel; a NaN from the weight alone is not an error.
    """
    if numel(x) == 0:
        return
    xp = backend.xp
    conditions = [xp.min(y) >= 0, xp.max(y) <= 1]
    if reduced is None:
        conditions += [xp.min(x) >= 0, xp.max(x) <= 1]
    else:
        conditions.append(reduced == reduced)  # not NaN, in one op
    if backend.on_host(x):  # reading 0-d values is free: no chain of ops on them
        ok = all(map(bool, conditions))
    else:  # one host synchronisation for all of them
        ok = bool(functools.reduce(operator.and_, conditions))
    if ok:
        return
    bad_x = xp.reshape(~((x >= 0) & (x <= 1)), (-1,))
    bad_y = xp.reshape(~((y >= 0) & (y <= 1)), (-1,))
    first_x = int(xp.argmax(xp.astype(bad_x, xp.int8))) if bool(xp.any(bad_x)) else None
    first_y = int(xp.argmax(xp.astype(bad_y, xp.int8))) if bool(xp.any(bad_y)) else None
    if first_x is None and first_y is None:
        return  # valid values; the NaN came from the weight
    which = (
        "input" if first_y is None or (first_x is not None and first_x <= first_y) else "target"
    )
    raise InvalidValueError(f"all elements of {which} should be between 0 and 1")


def _devices(
    logits: bool, x: Array, t: Array, w: Array | None, p: Array | None, g: Array | None
) -> None:
    """:func:`same_device` in the order of torch's first op combining them: BCE's kernel
    (its output on the input's device; the backward's takes ``grad`` next), BCE with
    logits' ``(pos_weight - 1).mul(target)`` or ``(1 - target).mul_(input)`` (its
    backward: ``input.sigmoid() - target``), then ``mul_(weight)``."""
    order: tuple[Array | None, ...]
    if not logits:
        order = (x, t, w) if g is None else (x, g, t, w)
    elif p is not None:
        order = (p, t, x, g, w)
    else:
        order = (t, x, w) if g is None else (x, t, g, w)
    same_device(*order)


def arguments(
    logits: bool,
    input: Array,
    target: Array,
    reduction: str,
    backend: Backend,
    *,
    weight: Array | None = None,
    pos_weight: Array | None = None,
    grad_output: Array | None = None,
    values: Callable[[], None] | None = None,
) -> None:
    """Every check of the arguments that reads no values, in the order PyTorch makes
    them (its first error is the one raised). ``reduction`` is already validated.

    ``backend`` is the call's (``_backends``): torch tensors get torch's words, and
    torch refuses a weight that requires grad. ``values`` (BCE on eager arrays): the
    value check, which torch's kernel makes before it multiplies by the weight; it is
    called here only when the weight is refused (it grows the result, or is complex),
    so that a bad value is reported first, as torch does.

    torch's order: ``F.binary_cross_entropy``'s shape check and
    ``broadcast_shapes(target, weight)``; the autograd kernel's refusal of a weight
    that requires grad; TensorIterator's dtype check; the kernel's dtype dispatch and
    per-element value check; ``loss.mul_(weight)`` (growth, then dtype).
    ``F.binary_cross_entropy_with_logits``'s shape check; the autograd kernel's
    refusal (``weight``, then ``pos_weight``); ``log_sigmoid(input)``; ``pos_weight -
    1`` (bool), ``.mul(target)`` (broadcast), ``log_sigmoid.mul_(...)`` (growth, then
    dtype); ``(1 - target).mul_(input)`` (the target's dtype); ``loss.mul_(weight)``."""
    op = "binary_cross_entropy_with_logits" if logits else "binary_cross_entropy"
    same_shape(input, target, logits=logits)
    shape = tuple(input.shape)
    if logits:
        backend.refuse_gradients(op, weight, pos_weight)
        floating(input, "log_sigmoid", backend)
        if backend.checks_devices:  # ``(pos_weight - 1).mul(target)``, then ``.mul_(input)``
            _devices(True, input, target, weight, pos_weight, grad_output)
        if pos_weight is not None:
            not_bool(pos_weight, backend)
            broadcasts_into(pos_weight, shape, "pos_weight", backend, into="pos_weight")
            pos_weight_castable(pos_weight, input, target, backend)
        logits_target(target, input, backend)
        if weight is not None:
            broadcasts_into(weight, shape, "weight", backend, into="result")
            castable(weight, target, backend)
    else:
        if weight is not None:
            broadcastable(weight, shape, backend)
        backend.refuse_gradients(op, weight, None)
        if backend.checks_devices:  # TensorIterator: device, then dtype
            _devices(False, input, target, weight, None, grad_output)
        same_dtype(input, target, backend)
        floating(input, op, backend)
        if weight is not None:
            try:
                broadcasts_into(weight, shape, "weight", backend, into="bce")
                # the weight as torch multiplies it: expanded, dimensioned with the input
                castable(weight, input, backend, dims=input.ndim > 0 or weight.ndim > 0)
            except (ShapeMismatchError, UnsupportedDtypeError):
                if values is not None:
                    values()  # torch's kernel checks the values before ``mul_(weight)``
                raise
    if grad_output is not None:
        shape_out = () if reduction != NONE else shape
        broadcasts_into(grad_output, shape_out, "grad_output", backend, into="result")
