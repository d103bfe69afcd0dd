"""The generic backend: any library array-api-compat knows (CuPy, array-api-strict, ...).

Imported for arrays of libraries that have no backend of their own. Values are read
unless array-api-compat calls the arrays lazy; the formulas run in one go on the
standard's functions; there is no autodiff (the explicit ``*_backward`` functions give
gradients). Unlike NumPy, torch and JAX, these libraries have devices whose mixing
raises no torch-like error of its own: :func:`devices` raises torch's.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from . import _checks
from . import _formulas as formulas
from ._compat import device, is_lazy_array
from ._numpy import quiet
from ._typing import Array, Call, Namespace


def known(n: object) -> bool:
    """Whether an axis length is known: a lazy array writes an unknown one as None (the
    array API standard) or NaN (Dask, after boolean masking or from a dataframe)."""
    return n is not None and n == n


class _Shaped(NamedTuple):
    """What the argument checks read of an array: its shape, dtype, rank and device."""

    shape: tuple[int, ...]
    dtype: Any
    ndim: int
    device: Any


def known_lengths(call: Call) -> Call:
    """The call as the argument checks see it where a length is unknown: each unknown
    length is the first known one other than 1 on that axis (right-aligned) among the
    input, target, weight, pos_weight and grad_output, else 1, so that torch's rules
    judge only what is known (the values, and with them the true lengths, are compared
    when the arrays are computed: Dask's chunk kernels check each block)."""
    arrays = (call.input, call.target, call.weight, call.pos_weight, call.grad)
    present = [a for a in arrays if a is not None]
    if all(known(n) for a in present for n in a.shape):
        return call
    rank = max(a.ndim for a in present)
    common = [next((a.shape[i - rank] for a in present
                    if a.ndim >= rank - i and known(a.shape[i - rank]) and a.shape[i - rank] != 1),
                   1) for i in range(rank)]
    shaped = [None if a is None else _Shaped(
        tuple(n if known(n) else common[rank - a.ndim + k] for k, n in enumerate(a.shape)),
        a.dtype, a.ndim, getattr(a, "device", None)) for a in arrays]
    return call._replace(input=shaped[0], target=shaped[1], weight=shaped[2],
                         pos_weight=shaped[3], grad=shaped[4])


def same_device(*arrays: Array | None) -> None:
    """All arrays on one device, as torch's TensorIterator requires and words it ("...
    at least two devices, cuda:0 and cpu!"): the common device is the first one that
    is not the host's (``cpu`` in its name; the first array's when all are), and the
    first array elsewhere is named after it. ``arrays`` come in the order torch's op
    that combines them takes them; ``None`` (an absent argument) is skipped.

    Unlike torch's binary ops, a 0-d host array is not let through next to device
    arrays (torch lets BCE with logits take a 0-d CPU ``weight`` or ``pos_weight``)."""
    devices = [device(a) for a in arrays if a is not None]
    common = next((d for d in devices if "cpu" not in str(d).lower()), devices[0])
    for where in devices:
        if where != common:
            raise RuntimeError(
                "Expected all tensors to be on the same device, but found at least two "
                f"devices, {common} and {where}!"
            )


def devices(call: Call) -> None:
    """:func:`same_device` in the order of torch's first op combining them: BCE's kernel
    (its output on the input's device; the backward's takes ``grad`` next), BCE with
    logits' ``(pos_weight - 1).mul(target)`` or ``(1 - target).mul_(input)`` (its
    backward: ``input.sigmoid() - target``), then ``mul_(weight)``."""
    x, t, w, p, g = call.input, call.target, call.weight, call.pos_weight, call.grad
    if not call.loss.logits:
        same_device(*((x, t, w) if g is None else (x, g, t, w)))
    elif p is not None:
        same_device(p, t, x, g, w)
    else:
        same_device(*((t, x, w) if g is None else (x, t, g, w)))


class ArrayAPI:
    """An array API library (see the module)."""

    torch_wording = False
    devices = staticmethod(devices)
    grad_enabled = None  # no autodiff records a weight's gradient

    def __init__(self, xp: Namespace) -> None:
        self.ops = formulas.Ops(xp)

    def loss(self, call: Call) -> Array:
        if is_lazy_array(call.input) or is_lazy_array(call.target):
            call = call._replace(lazy=True)
        _checks.arguments(known_lengths(call), self)
        with quiet():
            return formulas.loss(call, self.ops)

    def gradient(self, call: Call) -> Array:
        _checks.arguments(known_lengths(call), self)
        with quiet():
            return formulas.gradient(call, self.ops)
