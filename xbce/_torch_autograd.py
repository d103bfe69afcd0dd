"""PyTorch adapter: the whole call on torch tensors, and torch's hand-written gradients
wired into ``torch.autograd``.

Imported only when xbce is handed torch tensors. When every argument is a tensor,
``_functional`` hands the call here (:func:`binary_cross_entropy`,
:func:`binary_cross_entropy_with_logits`): the same checks (``_checks.arguments``), then one
of three evaluations, picked once per call:

* **eager, no gradient recorded**: the formula on the tensors (in blocks for large
  CPU tensors, ``_evaluate``), then the value check on the computed loss;
* **eager, autograd records** (a tensor requires grad, or forward-mode AD is on): an
  ``autograd.Function`` whose backward and JVP are torch's formulas. Its old-style
  form (``forward(ctx, ...)``) when no ``torch.func`` transform is active: the
  ``setup_context`` form costs an ``inspect.signature`` binding per call in
  ``Function.apply``; the ``setup_context`` form (with ``generate_vmap_rule``) under
  ``torch.func`` transforms, which require it;
* **torch.compile** (``torch.compiler.is_compiling()``): plain torch ops through the
  stand-in namespace (no array-api-compat wrapper in the traced code) and a Function
  without a ``jvp`` (Dynamo refuses one: "Unsupported custom jvp"), so that the whole
  call is one graph with ``fullgraph=True`` and ``torch.export``. Values are not read
  there (lazy): a bad BCE target makes the loss NaN instead of raising.

The forward, backward and JVP bodies are ``_formulas``; this module only connects them.
The backward is written in differentiable torch ops, so ``create_graph=True`` (double
backward) works.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch

from . import _checks
from . import _evaluate as E
from . import _formulas as F
from ._compat import array_namespace

#: array-api-compat's torch namespace (the ``xp`` of torch tensors), and the stand-in
#: the formulas get (``_evaluate._TorchNamespace``: torch's own primitives and dtype
#: arithmetic): module constants, so that nothing is looked up per call.
COMPAT = array_namespace(torch.empty(0))
XP = E.stand_in(COMPAT)

_is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
_transforms_active = torch._C._are_functorch_transforms_active


# ------------------------------------------------------------------ the torch call
def binary_cross_entropy(input: Any, target: Any, weight: Any, reduction: str) -> Any:
    """``xbce.binary_cross_entropy`` on torch tensors (every argument a tensor)."""
    input, target, weight = autocast(input, target, weight)
    reduction = _checks.reduction(reduction)
    _checks.arguments(False, input, target, reduction, XP, weight=weight)
    if torch.compiler.is_compiling():
        return _CompiledBinaryCrossEntropy.apply(input, target, weight, reduction)  # type: ignore[no-untyped-call]
    lazy = _lazy(input, target)
    if not lazy and reduction == F.NONE:
        check_unit_interval(input, target)
    if needs_autograd(input, target, lazy=lazy):
        cls = BinaryCrossEntropy if _transforms_active() else Eager.BinaryCrossEntropy
        out = cls.apply(input, target, weight, reduction, lazy, COMPAT)  # type: ignore[no-untyped-call]
    else:
        out = _evaluate(partial(F.bce_loss, lazy=lazy), input, target, weight,
                        dtype=input.dtype, reduction=reduction)
    if not lazy and reduction != F.NONE:
        check_unit_interval(input, target, reduced=out)  # raises before returning
    return out


def binary_cross_entropy_with_logits(
    input: Any, target: Any, weight: Any, reduction: str, pos_weight: Any
) -> Any:
    """``xbce.binary_cross_entropy_with_logits`` on torch tensors."""
    input, target, weight, pos_weight = autocast(input, target, weight, pos_weight)
    reduction = _checks.reduction(reduction)
    _checks.arguments(True, input, target, reduction, XP, weight=weight, pos_weight=pos_weight)
    if torch.compiler.is_compiling():
        return _CompiledBinaryCrossEntropyWithLogits.apply(  # type: ignore[no-untyped-call]
            input, target, weight, pos_weight, reduction
        )
    lazy = _lazy(input, target)
    if needs_autograd(input, target, lazy=lazy):
        cls = (
            BinaryCrossEntropyWithLogits
            if _transforms_active()
            else Eager.BinaryCrossEntropyWithLogits
        )
        return cls.apply(input, target, weight, pos_weight, reduction, lazy, COMPAT)  # type: ignore[no-untyped-call]
    return _evaluate(F.bce_with_logits_loss, input, target, weight, pos_weight,
                     dtype=target.dtype, reduction=reduction)


def _lazy(input: Any, target: Any) -> bool:
    """Tensors whose values xbce must not read: ``torch.func`` wrappers, meta tensors
    (``torch.compile`` is asked about before: Dynamo cannot trace the wrapper test)."""
    return bool(
        _is_wrapped(input) or _is_wrapped(target) or input.is_meta or target.is_meta
    )


def _large(like: Any) -> bool:
    """Whether ``_evaluate`` would cut ``like`` into blocks (a large CPU tensor)."""
    return F.numel(like) >= 4 * E.BLOCK and like.ndim > 0 and like.device.type == "cpu"


def _evaluate(fn: Any, like: Any, *arrays: Any, dtype: Any, reduction: str) -> Any:
    """``reduce(fn(*arrays))``: in blocks for a large CPU tensor, else in one go."""
    if _large(like):
        return E.reduced(fn, like, like, *arrays, dtype=dtype, reduction=reduction, xp=COMPAT)
    return F.reduce(fn(like, *arrays, xp=XP), reduction, xp=XP)


def check_unit_interval(x: Any, y: Any, *, reduced: Any = None) -> None:
    """``_checks.unit_interval`` for torch tensors, at less cost on the CPU.

    On the CPU, reading a 0-d value costs no device synchronisation: one ``aminmax``
    of the targets (and of the inputs without ``reduced``) and ``item()`` replace the
    separate ``min``/``max``/comparison ops. Whatever fails (or a tensor on another
    device) goes to ``_checks.unit_interval``, which finds the first bad element and
    raises torch's message (or finds that the NaN came from the weight)."""
    if x.device.type == "cpu" and F.numel(x) != 0:
        low, high = torch.aminmax(y)
        ok = low.item() >= 0 and high.item() <= 1
        if reduced is None:
            low, high = torch.aminmax(x)
            ok = ok and low.item() >= 0 and high.item() <= 1
        elif ok:
            ok = not math.isnan(reduced.item())
        if ok:
            return
    _checks.unit_interval(x, y, COMPAT, reduced=reduced)


def needs_autograd(*tensors: Any, lazy: bool) -> bool:
    """Whether a plain evaluation would let autograd differentiate xbce's forward.

    ``lazy`` is :func:`_lazy` (or ``_functional._is_lazy`` on the generic path): only
    then can something be compiling or a tensor be wrapped by a ``torch.func``
    transform, and both always take the Function (Dynamo cannot trace
    ``is_functorch_wrapped_tensor``, a pybind builtin, so ``is_compiling`` is asked
    first). The torch call of this module asks ``is_compiling`` before, and never gets
    here while compiling.
    """
    if lazy:
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor
        if torch.compiler.is_compiling() or any(wrapped(t) for t in tensors):
            return True
    if torch.autograd.forward_ad._current_level >= 0:  # inside fwAD.dual_level()
        return True
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def autocast(*tensors: Any) -> tuple[Any, ...]:
    """``torch.autocast``'s policy for both losses: while autocast is on for the input's
    device, every floating tensor argument but a float64 one is cast to float32 (a
    differentiable cast: gradients flow back in the argument's dtype), as torch does for
    the ops of its float32 list (CPU: both losses; CUDA: BCE-with-logits). On CUDA torch
    refuses ``binary_cross_entropy`` under autocast as unsafe; xbce computes it in
    float32 there too, which is what torch's message tells users to do by hand."""
    first = tensors[0]
    if not torch.is_autocast_enabled(first.device.type):
        return tensors
    return tuple(
        t.to(torch.float32)
        if t is not None and t.is_floating_point() and t.dtype != torch.float64
        else t
        for t in tensors
    )


def _gradients(ctx: Any, logits: bool, g: Any, x: Any, t: Any, w: Any, p: Any) -> list[Any]:
    """The gradients autograd asks for (``None`` for the others).

    In blocks (``_evaluate``) for large CPU tensors, unless autograd records the
    backward itself (``create_graph=True``: grad mode is on inside ``backward``) or the
    tensors are lazy (``torch.compile``, ``torch.func``), where whole-tensor ops are
    needed.
    """
    r = ctx.reduction
    plain = not ctx.lazy and not torch.is_grad_enabled()
    out: list[Any] = []
    for which, needed in zip(("input", "target"), ctx.needs_input_grad[:2], strict=True):
        if not needed:
            out.append(None)
        elif plain and _large(x):
            out.append(E.gradient(logits, which, g, x, t, w, p, r, xp=COMPAT))
        else:
            in_place = _in_place(ctx.lazy, which)
            terms = F.grad_terms(logits, which, x, t, w, p, r, xp=XP, in_place=in_place)
            out.append(F.apply_backward(g, terms, xp=XP))
    return out


def _in_place(lazy: bool, which: str) -> bool:
    """Whether torch's BCE-with-logits backward runs its in-place ops here: not for
    ``torch.func``/``torch.compile`` tensors (``lazy``), nor, for the input's gradient,
    while autograd records the backward (grad mode on: ``create_graph=True``, or a
    forward-mode JVP). They differ only where the dtypes are mixed."""
    return not lazy and (which == "target" or not torch.is_grad_enabled())


def _jvp(ctx: Any, logits: bool, tangents: tuple[Any, Any], x: Any, t: Any, w: Any,
         p: Any) -> Any:
    """torch's forward-mode formula (derivatives.yaml): the elementwise gradient terms
    applied to each tangent, in the loss's dtype, then ``apply_loss_reduction``."""
    out = 0
    for which, tangent in zip(("input", "target"), tangents, strict=True):
        if tangent is not None:
            in_place = _in_place(ctx.lazy, which)
            terms = F.grad_terms(logits, which, x, t, w, p, F.NONE, xp=XP, in_place=in_place)
            out = out + F.apply_backward(tangent, terms._replace(dtype=t.dtype), xp=XP)
    return F.reduce(out, ctx.reduction, xp=XP)


# --------------------------------------------------------------- BCE, as a Function
def _bce_forward(x: Any, y: Any, w: Any, reduction: str, lazy: bool) -> Any:
    if lazy:
        return F.bce(x, y, w, reduction, xp=XP, lazy=True)
    return _evaluate(F.bce_loss, x, y, w, dtype=x.dtype, reduction=reduction)


def _bce_backward(ctx: Any, g: Any) -> tuple[Any, Any]:
    x, y, w = ctx.saved_tensors
    gx, gy = _gradients(ctx, False, g, x, y, w, None)
    return gx, gy


def _bce_jvp(ctx: Any, xt: Any, yt: Any) -> Any:
    x, y, w = ctx.saved_tensors
    return _jvp(ctx, False, (xt, yt), x, y, w, None)


class BinaryCrossEntropy(torch.autograd.Function):
    """``BinaryCrossEntropy.apply(input, target, weight, reduction, lazy, xp)``: torch's
    BCE gradients and forward-mode formula; ``lazy`` (values unchecked) NaN-poisons bad
    targets. The ``setup_context`` form, which ``torch.func`` transforms require."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Any, y: Any, w: Any, reduction: str, lazy: bool, xp: Any) -> Any:  # type: ignore[override]
        return _bce_forward(x, y, w, reduction, lazy)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        x, y, w, reduction, lazy, _ = inputs
        ctx.save_for_backward(x, y, w)
        ctx.save_for_forward(x, y, w)
        ctx.reduction, ctx.lazy = reduction, lazy

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
        return *_bce_backward(ctx, g), None, None, None, None

    @staticmethod
    def jvp(ctx: Any, xt: Any, yt: Any, *_: Any) -> Any:  # type: ignore[override]
        return _bce_jvp(ctx, xt, yt)


class _CompiledBinaryCrossEntropy(torch.autograd.Function):
    """``apply(input, target, weight, reduction)`` under ``torch.compile``: lazy, no
    ``jvp`` (Dynamo traces no Function that has one)."""

    @staticmethod
    def forward(x: Any, y: Any, w: Any, reduction: str) -> Any:  # type: ignore[override]
        return F.bce(x, y, w, reduction, xp=XP, lazy=True)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        x, y, w, reduction = inputs
        ctx.save_for_backward(x, y, w)
        ctx.reduction, ctx.lazy = reduction, True

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
        return *_bce_backward(ctx, g), None, None


# --------------------------------------------------- BCE with logits, as a Function
def _bcewl_forward(x: Any, t: Any, w: Any, p: Any, reduction: str) -> Any:
    return _evaluate(F.bce_with_logits_loss, x, t, w, p, dtype=t.dtype, reduction=reduction)


def _bcewl_backward(ctx: Any, g: Any) -> tuple[Any, Any]:
    x, t, w, p = ctx.saved_tensors
    gx, gt = _gradients(ctx, True, g, x, t, w, p)
    return gx, gt


def _bcewl_jvp(ctx: Any, xt: Any, tt: Any) -> Any:
    x, t, w, p = ctx.saved_tensors
    return _jvp(ctx, True, (xt, tt), x, t, w, p)


class BinaryCrossEntropyWithLogits(torch.autograd.Function):
    """``BinaryCrossEntropyWithLogits.apply(input, target, weight, pos_weight, reduction,
    lazy, xp)``: torch's BCE-with-logits gradients and forward-mode formula (the
    ``setup_context`` form, for ``torch.func``)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Any, t: Any, w: Any, p: Any, reduction: str, lazy: bool, xp: Any) -> Any:  # type: ignore[override]
        if lazy:
            return F.bce_with_logits(x, t, w, p, reduction, xp=XP)
        return _bcewl_forward(x, t, w, p, reduction)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        x, t, w, p, reduction, lazy, _ = inputs
        ctx.save_for_backward(x, t, w, p)
        ctx.save_for_forward(x, t, w, p)
        ctx.reduction, ctx.lazy = reduction, lazy

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
        return *_bcewl_backward(ctx, g), None, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, xt: Any, tt: Any, *_: Any) -> Any:  # type: ignore[override]
        return _bcewl_jvp(ctx, xt, tt)


class _CompiledBinaryCrossEntropyWithLogits(torch.autograd.Function):
    """``apply(input, target, weight, pos_weight, reduction)`` under ``torch.compile``
    (see :class:`_CompiledBinaryCrossEntropy`)."""

    @staticmethod
    def forward(x: Any, t: Any, w: Any, p: Any, reduction: str) -> Any:  # type: ignore[override]
        return F.bce_with_logits(x, t, w, p, reduction, xp=XP)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        x, t, w, p, reduction = inputs
        ctx.save_for_backward(x, t, w, p)
        ctx.reduction, ctx.lazy = reduction, True

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
        return *_bcewl_backward(ctx, g), None, None, None


class Eager:
    """The Functions of eager autograd outside ``torch.func`` transforms, old-style
    (``forward(ctx, ...)``): ``Function.apply`` binds no signature for them (a third of
    a small call's time otherwise). Same class names as the ``setup_context`` forms, so
    a loss's ``grad_fn`` reads ``BinaryCrossEntropyBackward`` either way."""

    class BinaryCrossEntropy(torch.autograd.Function):
        """The module's :class:`BinaryCrossEntropy`, old-style."""

        @staticmethod
        def forward(ctx: Any, x: Any, y: Any, w: Any, reduction: str, lazy: bool, xp: Any) -> Any:  # type: ignore[override]
            ctx.save_for_backward(x, y, w)
            ctx.save_for_forward(x, y, w)
            ctx.reduction, ctx.lazy = reduction, lazy
            return _bce_forward(x, y, w, reduction, lazy)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
            return *_bce_backward(ctx, g), None, None, None, None

        @staticmethod
        def jvp(ctx: Any, xt: Any, yt: Any, *_: Any) -> Any:  # type: ignore[override]
            return _bce_jvp(ctx, xt, yt)

    class BinaryCrossEntropyWithLogits(torch.autograd.Function):
        """The module's :class:`BinaryCrossEntropyWithLogits` in the old-style form."""

        @staticmethod
        def forward(ctx: Any, x: Any, t: Any, w: Any, p: Any, reduction: str, lazy: bool,  # type: ignore[override]
                    xp: Any) -> Any:
            ctx.save_for_backward(x, t, w, p)
            ctx.save_for_forward(x, t, w, p)
            ctx.reduction, ctx.lazy = reduction, lazy
            if lazy:
                return F.bce_with_logits(x, t, w, p, reduction, xp=XP)
            return _bcewl_forward(x, t, w, p, reduction)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
            return *_bcewl_backward(ctx, g), None, None, None, None, None

        @staticmethod
        def jvp(ctx: Any, xt: Any, tt: Any, *_: Any) -> Any:  # type: ignore[override]
            return _bcewl_jvp(ctx, xt, tt)
