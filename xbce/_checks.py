"""Argument checks: PyTorch's errors, raised before any arithmetic happens.

Exceptions carry PyTorch's messages and can be caught as the exception PyTorch raises
*and* as the Python exception a user of NumPy or JAX would expect (see the classes).
"""

from __future__ import annotations

import functools
import operator
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


def broadcastable(w: Array, shape: tuple[int, ...], backend: Backend) -> None:
    """binary_cross_entropy's Python-side ``torch.broadcast_shapes(target, weight)``
    (in torch's words; elsewhere :func:`broadcasts_into` says it all, later)."""
    if backend.torch_wording:
        _, msg = _messages.broadcast_shapes(tuple(shape), tuple(w.shape))
        if msg is not None:
            raise ShapeMismatchError(msg)


def broadcasts_into(
    w: Array, shape: tuple[int, ...], name: str, backend: Backend, *, into: str = "bce"
) -> None:
    """``w`` must broadcast into ``shape`` (right-aligned); the result never grows.

    In torch's words (torch tensors) the message is the one PyTorch raises where it applies ``w``:
    ``into='bce'``, binary_cross_entropy's ``weight`` (``broadcast_shapes`` with the
    target, then ``loss.mul_(weight)``); ``'result'``, ``loss.mul_(w)`` (the loss is
    tensor a); ``'pos_weight'``, ``(pos_weight - 1).mul(target)`` (pos_weight is
    tensor a), then ``log_sigmoid.mul_(...)``."""
    wshape, shape = tuple(w.shape), tuple(shape)
    if backend.torch_wording:
        if into == "bce":
            common, msg = _messages.broadcast_shapes(shape, wshape)
            grown: tuple[int, ...] = tuple(common)
        elif into == "pos_weight":
            grown, msg = _messages.infer_size(wshape, shape)
        else:
            grown, msg = _messages.infer_size(shape, wshape)
        if msg is None and grown != shape:
            msg = _messages.grows(shape, grown)
        if msg is not None:
            raise ShapeMismatchError(msg)
        return
    ndim = max(len(wshape), len(shape))
    for i in range(1, min(len(wshape), len(shape)) + 1):
        a, b = wshape[-i], shape[-i]
        if not (known(a) and known(b)):
            continue  # an unknown length (lazy arrays): NumPy checks each block
        if a not in (1, b):
            raise ShapeMismatchError(
                f"{name} of shape {wshape} does not broadcast to the input shape "
                f"{shape}: the size of tensor a ({a}) must match the size of tensor b "
                f"({b}) at non-singleton dimension {ndim - i}"
            )
    if len(wshape) > len(shape):
        bigger = wshape[: ndim - len(shape)] + shape
        raise ShapeMismatchError(
            f"{name} of shape {wshape} would grow the result: output with shape "
            f"{list(shape)} doesn't match the broadcast shape {list(bigger)}"
        )


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
) -> None:
    """Every check of the arguments that reads no values, in the order PyTorch makes
    them (its first error is the one raised). ``reduction`` is already validated.

    ``backend`` is the call's (``_backends``): torch tensors get torch's words, and
    torch refuses a weight that requires grad."""
    op = "binary_cross_entropy_with_logits" if logits else "binary_cross_entropy"
    same_shape(input, target, logits=logits)
    shape = tuple(input.shape)
    # in the order PyTorch checks (its first error is the one raised)
    if logits:
        floating(input, "log_sigmoid", backend)
        if backend.checks_devices:  # ``(pos_weight - 1).mul(target)``, then ``.mul_(input)``
            _devices(True, input, target, weight, pos_weight, grad_output)
        if pos_weight is not None:
            broadcasts_into(pos_weight, shape, "pos_weight", backend, into="pos_weight")
            not_bool(pos_weight, backend)
        logits_target(target, input, backend)
        if weight is not None:
            broadcasts_into(weight, shape, "weight", backend, into="result")
    else:
        if weight is not None:
            broadcastable(weight, shape, backend)
        if backend.checks_devices:  # TensorIterator: device, then dtype
            _devices(False, input, target, weight, None, grad_output)
        same_dtype(input, target, backend)
        floating(input, op, backend)
        if weight is not None:
            broadcasts_into(weight, shape, "weight", backend, into="bce")
    if grad_output is not None:
        shape_out = () if reduction != NONE else shape
        broadcasts_into(grad_output, shape_out, "grad_output", backend, into="result")
    backend.refuse_gradients(op, weight, pos_weight)
