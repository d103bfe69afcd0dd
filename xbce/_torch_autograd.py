"""PyTorch adapter: torch's hand-written gradients, wired into ``torch.autograd``.

Imported only when xbce is handed torch tensors. The forward, backward and JVP bodies
are ``_formulas``; this module only connects them. The backward is written in
differentiable torch ops, so ``create_graph=True`` (double backward) works, and the
``setup_context`` form with ``generate_vmap_rule`` supports ``torch.func`` and
``torch.compile`` (which runs it with graph breaks: array-api-compat's torch namespace
calls ``torch.result_type``, which Dynamo cannot put in a graph).
"""

from __future__ import annotations

from typing import Any

import torch

from . import _evaluate as E
from . import _formulas as F


def needs_autograd(*tensors: Any, plain: bool = False) -> bool:
    """Whether a plain evaluation would let autograd differentiate xbce's forward.

    ``plain``: the caller knows that nothing is compiling and no tensor is wrapped by
    a ``torch.func`` transform (``_functional._is_lazy`` said so)."""
    if plain:
        return torch.autograd.forward_ad._current_level >= 0 or (
            torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        )
    if torch.compiler.is_compiling():
        # always the Function: Dynamo cannot trace ``is_functorch_wrapped_tensor``
        # below (a pybind builtin), and a Function costs nothing where no grad is needed
        return True
    if torch.autograd.forward_ad._current_level >= 0:  # inside fwAD.dual_level()
        return True
    grad_mode = torch.is_grad_enabled()
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor  # torch.func transforms
    return any((grad_mode and t.requires_grad) or wrapped(t) for t in tensors)


def _reduce_tangent(tangent: Any, reduction: str, xp: Any) -> Any:
    # derivatives.yaml: ``apply_loss_reduction(elementwise jvp, reduction)``, so ``mean``
    # divides the summed tangent by numel (the elementwise terms are built with NONE).
    return F.reduce(tangent, reduction, xp=xp)


def _lazy(*tensors: Any) -> bool:
    """Values xbce did not check (``_functional._is_lazy``): NaN-poison bad targets."""
    if torch.compiler.is_compiling():
        return True
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    return any(wrapped(t) or t.is_meta for t in tensors)


def _gradients(ctx: Any, logits: bool, g: Any, x: Any, t: Any, w: Any, p: Any) -> list[Any]:
    """The gradients autograd asks for (``None`` for the others).

    In blocks (``_evaluate``) unless autograd records the backward itself
    (``create_graph=True``: grad mode is on inside ``backward``) or the tensors are
    lazy (``torch.compile``, ``torch.func``), where whole-tensor ops are needed.
    """
    r, xp = ctx.reduction, ctx.xp
    blocked = not ctx.lazy and not torch.is_grad_enabled()
    out: list[Any] = []
    for which, needed in zip(("input", "target"), ctx.needs_input_grad[:2], strict=True):
        if not needed:
            out.append(None)
        elif blocked:
            out.append(E.gradient(logits, which, g, x, t, w, p, r, xp=xp))
        else:
            terms = F.grad_terms(logits, which, x, t, w, p, r, xp=xp)
            out.append(F.apply_backward(g, terms, xp=xp))
    return out


class BinaryCrossEntropy(torch.autograd.Function):
    """torch's BCE gradients and forward-mode formula (derivatives.yaml)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Any, y: Any, w: Any, reduction: str, lazy: bool, xp: Any) -> Any:  # type: ignore[override]
        if lazy:
            return F.bce(x, y, w, reduction, xp=xp, lazy=True)
        return E.reduced(F.bce_loss, x, x, y, w, dtype=x.dtype, reduction=reduction, xp=xp)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        x, y, w, reduction, lazy, xp = inputs
        ctx.save_for_backward(x, y, w)
        ctx.save_for_forward(x, y, w)
        ctx.reduction, ctx.lazy, ctx.xp = reduction, lazy, xp

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
        x, y, w = ctx.saved_tensors
        gx, gy = _gradients(ctx, False, g, x, y, w, None)
        return gx, gy, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, xt: Any, yt: Any, *_: Any) -> Any:  # type: ignore[override]
        x, y, w = ctx.saved_tensors
        r, xp = ctx.reduction, ctx.xp
        out = 0
        if xt is not None:
            terms = F.bce_input_grad_terms(x, y, w, F.NONE, xp=xp)
            out = out + F.apply_backward(xt, terms, xp=xp)
        if yt is not None:
            terms = F.bce_target_grad_terms(x, y, w, F.NONE, xp=xp)
            out = out + F.apply_backward(yt, terms, xp=xp)
        return _reduce_tangent(out, r, xp)


class BCE:
    """``BCE.apply(input, target, weight, reduction, xp)``: :class:`BinaryCrossEntropy`,
    told whether the values went unchecked (then bad targets become NaN)."""

    @staticmethod
    def apply(x: Any, y: Any, w: Any, reduction: str, xp: Any) -> Any:
        return BinaryCrossEntropy.apply(x, y, w, reduction, _lazy(x, y), xp)  # type: ignore[no-untyped-call]


class BinaryCrossEntropyWithLogits(torch.autograd.Function):
    """torch's BCE-with-logits gradients and forward-mode formula."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Any, t: Any, w: Any, p: Any, reduction: str, lazy: bool, xp: Any) -> Any:  # type: ignore[override]
        if lazy:
            return F.bce_with_logits(x, t, w, p, reduction, xp=xp)
        return E.reduced(
            F.bce_with_logits_loss, x, x, t, w, p, dtype=t.dtype, reduction=reduction, xp=xp
        )

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        x, t, w, p, reduction, lazy, xp = inputs
        ctx.save_for_backward(x, t, w, p)
        ctx.save_for_forward(x, t, w, p)
        ctx.reduction, ctx.lazy, ctx.xp = reduction, lazy, xp

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
        x, t, w, p = ctx.saved_tensors
        gx, gt = _gradients(ctx, True, g, x, t, w, p)
        return gx, gt, None, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, xt: Any, tt: Any, *_: Any) -> Any:  # type: ignore[override]
        x, t, w, p = ctx.saved_tensors
        r, xp = ctx.reduction, ctx.xp
        out = 0
        if xt is not None:
            terms = F.bce_with_logits_input_grad_terms(x, t, w, p, F.NONE, xp=xp)
            out = out + F.apply_backward(xt, terms._replace(dtype=t.dtype), xp=xp)
        if tt is not None:
            terms = F.bce_with_logits_target_grad_terms(x, t, w, p, F.NONE, xp=xp)
            out = out + F.apply_backward(tt, terms, xp=xp)
        return _reduce_tangent(out, r, xp)


class BCEWithLogits:
    """``BCEWithLogits.apply(input, target, weight, pos_weight, reduction, xp)``:
    :class:`BinaryCrossEntropyWithLogits`, told whether the values are lazy."""

    @staticmethod
    def apply(x: Any, t: Any, w: Any, p: Any, reduction: str, xp: Any) -> Any:
        return BinaryCrossEntropyWithLogits.apply(x, t, w, p, reduction, _lazy(x, t), xp)  # type: ignore[no-untyped-call]
