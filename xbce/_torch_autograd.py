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


def needs_autograd(*tensors: Any, lazy: bool) -> bool:
    """Whether a plain evaluation would let autograd differentiate xbce's forward.

    ``lazy`` is ``_functional._is_lazy``: only then can something be compiling or a
    tensor be wrapped by a ``torch.func`` transform, and both always take the Function
    (Dynamo cannot trace ``is_functorch_wrapped_tensor``, a pybind builtin, so
    ``is_compiling`` is asked first; a Function costs nothing where no grad is needed).
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
            in_place = _in_place(ctx.lazy, which)
            terms = F.grad_terms(logits, which, x, t, w, p, r, xp=E.stand_in(xp),
                                 in_place=in_place)
            out.append(F.apply_backward(g, terms, xp=E.stand_in(xp)))
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
    xp, out = E.stand_in(ctx.xp), 0
    for which, tangent in zip(("input", "target"), tangents, strict=True):
        if tangent is not None:
            in_place = _in_place(ctx.lazy, which)
            terms = F.grad_terms(logits, which, x, t, w, p, F.NONE, xp=xp, in_place=in_place)
            out = out + F.apply_backward(tangent, terms._replace(dtype=t.dtype), xp=xp)
    return F.reduce(out, ctx.reduction, xp=xp)


class BinaryCrossEntropy(torch.autograd.Function):
    """``BinaryCrossEntropy.apply(input, target, weight, reduction, lazy, xp)``: torch's
    BCE gradients and forward-mode formula; ``lazy`` (values unchecked) NaN-poisons bad
    targets."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Any, y: Any, w: Any, reduction: str, lazy: bool, xp: Any) -> Any:  # type: ignore[override]
        if lazy:
            return F.bce(x, y, w, reduction, xp=E.stand_in(xp), lazy=True)
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
        return _jvp(ctx, False, (xt, yt), x, y, w, None)


class BinaryCrossEntropyWithLogits(torch.autograd.Function):
    """``BinaryCrossEntropyWithLogits.apply(input, target, weight, pos_weight, reduction,
    lazy, xp)``: torch's BCE-with-logits gradients and forward-mode formula."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Any, t: Any, w: Any, p: Any, reduction: str, lazy: bool, xp: Any) -> Any:  # type: ignore[override]
        if lazy:
            return F.bce_with_logits(x, t, w, p, reduction, xp=E.stand_in(xp))
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
        return _jvp(ctx, True, (xt, tt), x, t, w, p)
