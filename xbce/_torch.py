"""The PyTorch backend: its whole call path, from the checks to autograd's backward.

Imported only when xbce is handed torch tensors. :meth:`Torch.loss` takes one of three
paths, decided once per call:

* **compiled** (``torch.compile``): the checks run at trace time (shapes and dtypes,
  never values), then :class:`_Compiled`, a Function without a ``jvp`` (Dynamo refuses
  one: "Unsupported custom jvp"), so that the whole call is one graph with
  ``fullgraph=True`` and ``torch.export``; a bad BCE target makes the loss NaN there
  instead of raising;
* **recorded**: when autograd would record (a tensor requires grad, forward-mode AD,
  or a ``torch.func`` transform wraps the tensors), an ``autograd.Function`` whose
  backward and JVP are torch's hand-written formulas: its old-style form
  (``forward(ctx, ...)``, :class:`Eager`) outside ``torch.func`` transforms, because
  ``Function.apply`` binds the signature of the setup-context form with ``inspect``
  on every call; the setup-context form (with ``generate_vmap_rule``) under
  ``torch.func``, which requires it;
* **plain**: the formula, large CPU tensors in blocks on xbce's pool (``_blocks``).

Under ``torch.autocast`` every floating argument but a float64 one is cast to float32
first. The formulas get torch's own primitives (:data:`OPS`): ``logsigmoid`` and
``sigmoid`` (the ones torch's kernels call, so the results are torch's bit for bit),
``clamp_min``/``clamp_max``, torch's dtype arithmetic (cheaper than the compat
wrappers, and traceable by ``torch.compile``). Torch's own loss kernels are never
called: torch is the reference xbce is measured against. The backward is written in
differentiable torch ops, so ``create_graph=True`` (double backward) works.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch

from . import _blocks, _checks, _private
from . import _formulas as formulas
from ._compat import array_namespace
from ._typing import Array, Call, Loss

#: torch's private tests (``_private``: guarded, with fallbacks): a ``torch.func``
#: wrapper, an active transform, and whether autocast is on for any device
_is_wrapped, _transforms_active, _any_autocast = _private.torch_functions()


def _extrema(a: Array) -> tuple[Any, Any]:
    """``aminmax`` of ``a`` (detached where it requires grad: no graph); read as Python
    floats on the CPU."""
    low, high = torch.aminmax(a.detach() if a.requires_grad else a)
    return (low.item(), high.item()) if a.is_cpu else (low, high)


#: array-api-compat's torch namespace, and the primitives the formulas get
COMPAT = array_namespace(torch.empty(0))
OPS = formulas.Ops(
    COMPAT, log_sigmoid=torch.nn.functional.logsigmoid, sigmoid=torch.sigmoid, logit=torch.logit,
    minimum=torch.minimum, clamp_min=torch.clamp_min, clamp_max=torch.clamp_max,
    sum=torch.sum, mean=torch.mean, astype=torch.Tensor.to, result_type=torch.promote_types,
    extrema=_extrema,
    floating_dtypes={torch.float16, torch.bfloat16, torch.float32, torch.float64},
)


class Torch:
    """PyTorch tensors, on any device (see the module)."""

    torch_wording = True
    devices = None  # torch raises its own error
    ops = OPS
    grad_enabled = staticmethod(torch.is_grad_enabled)

    def loss(self, call: Call) -> Array:
        compiling = torch.compiler.is_compiling()  # one graph, values never read
        if compiling or _any_autocast is None or _any_autocast():
            call = _autocast(call)
        x, t, w, p = call.input, call.target, call.weight, call.pos_weight
        # values never read: torch.func wrappers and meta tensors (written inline: a
        # helper's frame, entered eagerly after a graph break, is one Dynamo tries to
        # compile, and the functorch test is not traceable; compiling is asked first)
        lazy = compiling or call.lazy or bool(
            _is_wrapped(x) or _is_wrapped(t) or x.is_meta or t.is_meta)
        if lazy and not call.lazy:
            call = call._replace(lazy=True)
        _checks.arguments(call, self)
        if compiling:
            return _Compiled.apply(x, t, w, p, call.loss, call.reduction, True)  # type: ignore[no-untyped-call]
        if lazy or (torch.is_grad_enabled() and (x.requires_grad or t.requires_grad)) or (
            _private.torch_forward_ad_active()
        ):
            cls = (_FUNCTIONS if _transforms_active() else _EAGER_FUNCTIONS)[call.loss.logits]
            return cls.apply(x, t, w, p, call.loss, call.reduction, lazy)  # type: ignore[no-untyped-call]
        return _forward(call)

    def gradient(self, call: Call) -> Array:
        _checks.arguments(call, self)
        return _chain(call.loss, str(call.wrt), call.reduction, call.grad, call.input,
                      call.target, call.weight, call.pos_weight, in_place=True, blocks=True)


def _autocast(call: Call) -> Call:
    """``torch.autocast``'s policy for both losses: while autocast is on for the input's
    device, every floating tensor argument but a float64 one is cast to float32 (a
    differentiable cast: gradients flow back in the argument's dtype), as torch does for
    the ops of its float32 list (CPU: both losses; CUDA: BCE-with-logits). On CUDA torch
    refuses ``binary_cross_entropy`` under autocast as unsafe; xbce computes it in
    float32 there too, which is what torch's message tells users to do by hand."""
    if not torch.is_autocast_enabled(call.input.device.type):
        return call
    x, t, w, p = (
        a.to(torch.float32) if a is not None and a.is_floating_point() and a.dtype != torch.float64
        else a
        for a in (call.input, call.target, call.weight, call.pos_weight)
    )
    return call._replace(input=x, target=t, weight=w, pos_weight=p)


#: CPU tensors from this many elements on are evaluated in blocks: below, whole-tensor
#: ops (torch's own threads) are as fast or faster (1e6 elements: 10-30% faster)
BLOCKED_FROM = 1 << 21


def _blocked(x: Array, t: Array) -> bool:
    """Whether to evaluate in blocks: large contiguous CPU tensors. torch's kernels
    loop over a non-contiguous tensor in its own order (a scalar loop, or vectorised
    along its unit stride), which blocks of it would not reproduce: whole tensors then."""
    return bool(x.is_cpu and x.numel() >= BLOCKED_FROM and x.is_contiguous()
                and t.is_contiguous())


def _one_intra_op_thread() -> None:
    """In a thread that takes blocks: torch ops there run on that thread alone (torch's
    thread count is per thread, OpenMP's, read after torch's lazy per-thread setup;
    the setting also changes the default of threads torch has not seen yet, until the
    caller's count is set back)."""
    torch.get_num_threads()
    torch.set_num_threads(1)


def _block_options() -> dict[str, Any]:
    """How blocks run: on this thread and xbce's pool, as many threads as torch may
    use now (one in a DataLoader worker), each with one intra-op thread, this thread's
    count set back after; recording no graph in the pool."""
    n = torch.get_num_threads()
    return {"threads": min(n, _blocks.cores()), "contiguous": torch.Tensor.is_contiguous,
            "workers": (_one_intra_op_thread, partial(torch.set_num_threads, n)),
            "quiet": torch.no_grad}


def _forward(call: Call) -> Array:
    """The loss of checked tensors, outside autograd: whole tensors, or blocks."""
    x, t = call.input, call.target
    if call.lazy or not _blocked(x, t):
        return formulas.loss(call, OPS)
    return _blocks.reduced(call.loss.elementwise, x, call[1:5], call.loss.dtype(x, t),
                           call.reduction, OPS, **_block_options())


def _chain(loss: Loss, wrt: str, reduction: str, g: Array, x: Array, t: Array,
           w: Array | None, p: Array | None, *, in_place: bool, blocks: bool) -> Array:
    """The gradient of ``loss`` with respect to ``wrt`` (torch's, ``_formulas``' one
    chain) applied to ``g``; large CPU tensors in blocks where ``blocks`` allows it (not
    while autograd records the backward, nor for lazy tensors: they need whole-tensor
    ops). ``in_place``: whether torch's BCE-with-logits backward runs its in-place ops
    (see ``GradTerms``)."""
    like = x if wrt == "input" else t
    count = math.prod(like.shape) if reduction == formulas.MEAN else None
    if blocks and _blocked(x, t):
        fn = partial(formulas.elementwise_gradient, loss, wrt, count)
        return _blocks.reduced(fn, like, (g, x, t, w, p), like.dtype, formulas.NONE, OPS,
                               **_block_options())
    return formulas.apply_backward(
        g, loss.grad_terms(wrt, x, t, w, p, count, OPS, in_place=in_place), OPS)


# ------------------------------------------------------------ autograd Functions
def _gradients(ctx: Any, g: Array) -> tuple[Array | None, ...]:
    """The gradients autograd asks for (``None`` for the others, and for the
    arguments ``loss``, ``reduction`` and ``lazy``). torch's
    BCE-with-logits backward runs its in-place ops unless the tensors are lazy
    (``torch.func``/``torch.compile``) or, for the input's gradient, autograd records
    the backward (grad mode on: ``create_graph=True``); only mixed dtypes tell them
    apart."""
    x, t, w, p = ctx.saved_tensors
    loss, reduction, lazy = ctx.loss, ctx.reduction, ctx.lazy
    plain = not lazy and not torch.is_grad_enabled()
    need_x, need_t = ctx.needs_input_grad[:2]
    gx = _chain(loss, "input", reduction, g, x, t, w, p, in_place=plain,
                blocks=plain) if need_x else None
    gt = _chain(loss, "target", reduction, g, x, t, w, p, in_place=not lazy,
                blocks=plain) if need_t else None
    return gx, gt, None, None, None, None, None


def _jvp(ctx: Any, xt: Array, tt: Array, *_: Any) -> Array:
    """torch's forward-mode formula (derivatives.yaml): the elementwise gradient chain
    applied to each tangent, cast to the loss's dtype, then ``apply_loss_reduction``
    (the in-place ops as in :func:`_gradients`)."""
    x, t, w, p = ctx.saved_tensors
    out: Array = 0
    for wrt, tangent in (("input", xt), ("target", tt)):
        if tangent is not None:
            in_place = not ctx.lazy and (wrt == "target" or not torch.is_grad_enabled())
            terms = ctx.loss.grad_terms(wrt, x, t, w, p, None, OPS, in_place=in_place)
            out = out + formulas.apply_backward(tangent, terms, OPS, dtype=t.dtype)
    return formulas.reduce(out, ctx.reduction, OPS)


class _Compiled(torch.autograd.Function):
    """``apply(x, t, w, p, loss, reduction, lazy)``: either loss in the setup-context
    form, without a ``jvp`` (under ``torch.compile``: Dynamo traces no Function that
    has one)."""

    @staticmethod
    def forward(  # type: ignore[override]
        x: Array, t: Array, w: Array, p: Array, loss: Loss, reduction: str, lazy: bool
    ) -> Array:
        return _forward(Call(loss, x, t, w, p, reduction, lazy=lazy))

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.save_for_backward(*inputs[:4])
        ctx.loss, ctx.reduction, ctx.lazy = inputs[4:]

    backward = staticmethod(_gradients)


class _Loss(_Compiled):
    """:class:`_Compiled` with torch's forward-mode formula, for ``torch.func`` (which
    requires the setup-context form)."""

    generate_vmap_rule = True

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        _Compiled.setup_context(ctx, inputs, output)
        ctx.save_for_forward(*inputs[:4])

    jvp = staticmethod(_jvp)


class BinaryCrossEntropy(_Loss):
    """:class:`_Loss` for BCE: a loss's ``grad_fn`` reads ``BinaryCrossEntropyBackward``."""


class BinaryCrossEntropyWithLogits(_Loss):
    """:class:`_Loss` for BCE-with-logits (``BinaryCrossEntropyWithLogitsBackward``)."""


class _EagerLoss(torch.autograd.Function):
    """:class:`_Loss` in the old-style form (``forward(ctx, ...)``): ``Function.apply``
    binds no signature for it (a third of a small call's time otherwise). Not usable
    under ``torch.func`` transforms, which take :class:`_Loss`."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Array, t: Array, w: Array, p: Array, loss: Loss, reduction: str, lazy: bool
    ) -> Array:
        _Compiled.setup_context(ctx, (x, t, w, p, loss, reduction, lazy), None)
        if _private.torch_forward_ad_active():  # only a JVP reads them (costly otherwise)
            ctx.save_for_forward(x, t, w, p)
        return _forward(Call(loss, x, t, w, p, reduction, lazy=lazy))

    backward = staticmethod(_gradients)
    jvp = staticmethod(_jvp)


class Eager:
    """The old-style Functions, under the same class names as the setup-context forms,
    so that a loss's ``grad_fn`` reads ``BinaryCrossEntropyBackward`` either way."""

    class BinaryCrossEntropy(_EagerLoss):
        """:class:`_EagerLoss` for BCE."""

    class BinaryCrossEntropyWithLogits(_EagerLoss):
        """:class:`_EagerLoss` for BCE-with-logits."""


#: the Function of each loss (by ``loss.logits``): setup-context forms, old-style forms
_FUNCTIONS = {False: BinaryCrossEntropy, True: BinaryCrossEntropyWithLogits}
_EAGER_FUNCTIONS = {False: Eager.BinaryCrossEntropy, True: Eager.BinaryCrossEntropyWithLogits}
