"""Argument checks: PyTorch's errors, raised before any arithmetic happens.

Exceptions carry PyTorch's messages and can be caught as the exception PyTorch raises
*and* as the Python exception a user of NumPy or JAX would expect (see the classes).
"""

from __future__ import annotations

import math

from . import _messages
from ._formulas import MEAN, NONE, SUM
from ._typing import Array, Call, Library


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


#: the valid reductions (``torch.nn._reduction.get_enum``'s)
REDUCTIONS = (NONE, MEAN, SUM)


def reduction(value: object) -> str:
    """Validate ``reduction`` as ``torch.nn._reduction.get_enum`` does."""
    if value == "elementwise_mean":
        from ._legacy import warn_at_caller  # deprecated arguments: imported on use

        warn_at_caller(
            "reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead."
        )
        return MEAN
    if not isinstance(value, str) or value not in REDUCTIONS:
        raise ValueError(f"{value} is not a valid value for reduction")
    return value


def is_array(a: object) -> bool:
    return hasattr(a, "shape") and hasattr(a, "dtype")


def arrays(**named: object) -> None:
    for name, a in named.items():
        if a is not None and not is_array(a):
            raise TypeError(f"{name} must be an array, not {type(a).__name__}")


def different_shapes(x: Array, y: Array, *, logits: bool) -> None:
    """torch.nn.functional's error for a target not of the input's shape (there is no
    broadcasting between input and target)."""
    if logits:
        msg = f"Target size ({y.shape}) must be the same as input size ({x.shape})"
    else:
        msg = (
            f"Using a target size ({y.shape}) that is different to the input size "
            f"({x.shape}) is deprecated. Please ensure they have the same size."
        )
    raise ShapeMismatchError(msg)


def floating(x: Array, op: str, lib: Library) -> None:
    """``x`` must be real floating (PyTorch's dispatch: "not implemented for 'Long'")."""
    if not lib.ops.floating(x.dtype):
        torch = lib.torch_wording
        kernel = _messages.kernel_name(op, x, torch)
        raise UnsupportedDtypeError(
            f"\"{kernel}\" not implemented for '{_messages.dtype_name(x.dtype, torch)}'"
        )


def same_dtype(x: Array, y: Array, lib: Library) -> None:
    if x.dtype != y.dtype:
        found, expected = (_messages.dtype_name(a.dtype, lib.torch_wording) for a in (y, x))
        raise DtypeMismatchError(f"Found dtype {found} but expected {expected}")


def logits_target(t: Array, x: Array, lib: Library) -> None:
    """BCE-with-logits computes in the target's dtype, so it must be floating."""
    xp, torch = lib.ops, lib.torch_wording
    if xp.floating(t.dtype):
        return
    if xp.isdtype(t.dtype, "bool"):
        raise UnsupportedDtypeError(
            "Subtraction, the `-` operator, with two bool tensors is not supported. "
            "Use the `^` or `logical_xor()` operator instead."
        )
    raise UnsupportedDtypeError(_messages.cannot_cast(x.dtype, t.dtype, torch))


def not_bool(p: Array, lib: Library) -> None:
    """A bool ``pos_weight``: PyTorch's ``pos_weight - 1`` refuses it."""
    if not lib.ops.floating(p.dtype) and lib.ops.isdtype(p.dtype, "bool"):
        raise UnsupportedDtypeError(
            "Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
            "trying to invert a mask, use the `~` or `logical_not()` operator instead."
        )


def broadcasts_into(w: Array, shape: tuple[int, ...], lib: Library, *, into: str) -> None:
    """``w`` must broadcast into ``shape`` (right-aligned); the result never grows.

    The message is the one PyTorch raises where it applies ``w`` (shapes as tuples
    off torch): ``into='shapes'``, binary_cross_entropy's Python-side
    ``torch.broadcast_shapes(target, weight)``, whose error comes before every other
    but the shape's (growth is not checked there: broadcasting alone allows it);
    ``'bce'``, the same, then ``loss.mul_(weight)`` (growth); ``'result'``,
    ``loss.mul_(w)`` (the loss is tensor a); ``'pos_weight'``,
    ``(pos_weight - 1).mul(target)`` (pos_weight is tensor a), then
    ``log_sigmoid.mul_(...)``."""
    wshape, shape = tuple(w.shape), tuple(shape)
    if into in ("bce", "shapes"):
        common, msg = _messages.broadcast_shapes(shape, wshape, lib.torch_wording)
        grown: tuple[int, ...] = shape if into == "shapes" else tuple(common)
    elif into == "pos_weight":
        grown, msg = _messages.infer_size(wshape, shape)
    else:
        grown, msg = _messages.infer_size(shape, wshape)
    if msg is None and grown != shape:
        msg = _messages.grows(shape, grown)
    if msg is not None:
        raise ShapeMismatchError(msg)


def castable(w: Array, result: Array, lib: Library, *, dims: bool | None = None) -> None:
    """``result.mul_(w)`` in place: torch refuses a complex ``w`` (its product cannot be
    cast back to the real ``result``). ``dims``: whether ``w`` as multiplied is
    dimensioned (default: ``w.ndim > 0``)."""
    if not lib.ops.floating(w.dtype) and lib.ops.isdtype(w.dtype, "complex floating"):
        dims = w.ndim > 0 if dims is None else dims
        product = _messages.complex_product(result.dtype, result.ndim > 0, w.dtype, dims)
        message = _messages.cannot_cast(product, result.dtype, lib.torch_wording)
        raise UnsupportedDtypeError(message)


def pos_weight_castable(p: Array, x: Array, t: Array, lib: Library) -> None:
    """``log_sigmoid(x).mul_((p - 1).mul(t).add_(1))``: a complex ``p`` (or target)
    makes the log-weight complex, which the real ``log_sigmoid`` cannot take in place."""
    xp = lib.ops
    if xp.floating(p.dtype) or not xp.isdtype(p.dtype, "complex floating"):
        return
    if xp.floating(t.dtype):
        weight = _messages.complex_product(t.dtype, t.ndim > 0, p.dtype, p.ndim > 0)
    else:
        weight = _messages.natural_name(p.dtype)  # (p - 1).mul(integer or bool t)
    product = _messages.complex_product(x.dtype, x.ndim > 0, weight, p.ndim > 0 or t.ndim > 0)
    raise UnsupportedDtypeError(_messages.cannot_cast(product, x.dtype, lib.torch_wording))


def refuse_gradients(call: Call, lib: Library) -> None:
    """torch refuses ``weight``/``pos_weight`` that require grad (under grad mode)."""
    if lib.grad_enabled is None or not lib.grad_enabled():
        return
    for name, a in (("weight", call.weight), ("pos_weight", call.pos_weight)):
        if a is not None and a.requires_grad:
            raise RuntimeError(
                f"The function '{call.loss.name}' is not differentiable with respect to "
                f"argument '{name}'. This input cannot have requires_grad True."
            )


def unit_interval(x: Array, y: Array, lib: Library) -> None:
    """Eager arrays only: every input and target element must lie in [0, 1].

    Made where torch's kernel makes it: after the dtype checks, before the weight is
    multiplied in. The smallest and largest element of each array (NaN fails both
    comparisons) are read from the device once; when something fails, the first bad
    element in memory order decides the message, as in torch's per-element kernel.
    """
    if math.prod(x.shape) == 0:
        return
    ops = lib.ops
    if ops.extrema is None:
        lo_x, hi_x, lo_y, hi_y = ops.min(x), ops.max(x), ops.min(y), ops.max(y)
    else:
        (lo_x, hi_x), (lo_y, hi_y) = ops.extrema(x), ops.extrema(y)
    if bool((lo_x >= 0) & (hi_x <= 1) & (lo_y >= 0) & (hi_y <= 1)):
        return  # on a device: read in one synchronisation
    xp = ops.xp
    bad = [xp.reshape(~((a >= 0) & (a <= 1)), (-1,)) for a in (x, y)]
    first = [int(xp.argmax(ops.astype(b, xp.int8))) if bool(xp.any(b)) else math.inf
             for b in bad]  # the first bad element's index in each
    raise InvalidValueError(f"all elements of {'input' if first[0] <= first[1] else 'target'} "
                            "should be between 0 and 1")


def arguments(call: Call, lib: Library) -> None:
    """Every check of the call's arguments, in the order PyTorch makes them (its first
    error is the one raised); BCE's values only where they may be read (not
    ``call.lazy``) and not for an explicit backward (torch's backward checks none).
    ``reduction`` is already validated. ``lib`` is the call's backend: torch tensors
    get torch's words, and torch refuses a weight that requires grad.

    torch's order: ``F.binary_cross_entropy``'s shape check and
    ``broadcast_shapes(target, weight)``; the autograd kernel's refusal of a weight
    that requires grad; TensorIterator's dtype check; the kernel's dtype dispatch and
    per-element value check; ``loss.mul_(weight)`` (growth, then dtype).
    ``F.binary_cross_entropy_with_logits``'s shape check; the autograd kernel's
    refusal (``weight``, then ``pos_weight``); ``log_sigmoid(input)``; ``pos_weight -
    1`` (bool), ``.mul(target)`` (broadcast), ``log_sigmoid.mul_(...)`` (growth, then
    dtype); ``(1 - target).mul_(input)`` (the target's dtype); ``loss.mul_(weight)``."""
    x, t, weight, pos_weight = call.input, call.target, call.weight, call.pos_weight
    logits = call.loss.logits
    if x.shape != t.shape:
        different_shapes(x, t, logits=logits)
    shape = tuple(x.shape)
    if logits:
        if weight is not None or pos_weight is not None:
            refuse_gradients(call, lib)
        if x.dtype not in lib.ops.floating_dtypes:
            floating(x, "log_sigmoid", lib)
        if lib.devices is not None:  # ``(pos_weight - 1).mul(target)``, then ``.mul_(input)``
            lib.devices(call)
        if pos_weight is not None:
            not_bool(pos_weight, lib)
            broadcasts_into(pos_weight, shape, lib, into="pos_weight")
            pos_weight_castable(pos_weight, x, t, lib)
        if t.dtype not in lib.ops.floating_dtypes:
            logits_target(t, x, lib)
        if weight is not None:
            broadcasts_into(weight, shape, lib, into="result")
            castable(weight, t, lib)
    else:
        if weight is not None:
            broadcasts_into(weight, shape, lib, into="shapes")
            refuse_gradients(call, lib)
        if lib.devices is not None:  # TensorIterator: device, then dtype
            lib.devices(call)
        if x.dtype != t.dtype:
            same_dtype(x, t, lib)
        if x.dtype not in lib.ops.floating_dtypes:
            floating(x, call.loss.name, lib)
        if not call.lazy and call.wrt is None:
            unit_interval(x, t, lib)  # torch's kernel checks the values before ``mul_(weight)``
        if weight is not None:
            broadcasts_into(weight, shape, lib, into="bce")
            # the weight as torch multiplies it: expanded, dimensioned with the input
            castable(weight, x, lib, dims=x.ndim > 0 or weight.ndim > 0)
    if call.grad is not None:
        shape_out = () if call.reduction != NONE else shape
        broadcasts_into(call.grad, shape_out, lib, into="result")
