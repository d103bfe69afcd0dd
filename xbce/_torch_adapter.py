"""PyTorch adapter: xbce's formula wired into ``torch.autograd`` and ``torch.compile``.

Imported only when xbce is handed torch tensors. The backend policy
(``_backends.Torch``) picks one of these per call; this module carries it out:

* :func:`evaluate`: eager tensors. When autograd would record (a tensor requires grad,
  forward-mode AD, or a ``torch.func`` transform wraps them), through an
  ``autograd.Function`` whose backward and JVP are torch's hand-written formulas: its
  old-style form (``forward(ctx, ...)``, :class:`Eager`) outside ``torch.func``
  transforms, because ``Function.apply`` binds the signature of the setup-context
  form with ``inspect`` on every call; the setup-context form (with
  ``generate_vmap_rule``) under ``torch.func``, which requires it. Otherwise plainly.
  Large CPU tensors are evaluated in cache-sized blocks (``_evaluate``).
* :func:`compiled`: under ``torch.compile``, plain torch ops through
  :class:`TorchNamespace` and a Function without a ``jvp`` (Dynamo refuses one:
  "Unsupported custom jvp"), so that the whole call is one graph with
  ``fullgraph=True`` and ``torch.export``. Values are not read there (lazy): a bad BCE
  target makes the loss NaN instead of raising.

Torch's own loss kernels are never called: torch is the reference xbce is measured
against. The forward, backward and JVP bodies are ``_formulas``; the backward is
written in differentiable torch ops, so ``create_graph=True`` (double backward) works.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch

from . import _checks, _evaluate, _private
from . import _formulas as formulas
from ._compat import array_namespace

Backend = Any  # _backends.Torch

#: torch's private tests (``_private``: guarded, with fallbacks): a ``torch.func``
#: wrapper, an active transform, and whether autocast is on for any device
_is_wrapped, _transforms_active, _any_autocast = _private.torch_functions()


# ------------------------------------------------------------------ the namespace
class TorchNamespace:
    """array-api-compat's torch namespace with torch's own ``log_sigmoid``/``sigmoid``
    (the primitives torch's BCE-with-logits kernel and backward call, so the results
    are torch's bit for bit), and a faster ``maximum``/``minimum`` of an array and a
    Python float: ``torch.clamp_min``/``clamp_max``, the same values (NaN propagates),
    without the compat wrapper's type promotion (half the time)."""

    def __init__(self, xp: Any) -> None:
        self._xp = xp

    def __getattr__(self, name: str) -> Any:
        return getattr(self._xp, name)

    def log_sigmoid(self, x: Any) -> Any:
        """``torch.nn.functional.logsigmoid`` (half types in float32, rounded once)."""
        return torch.nn.functional.logsigmoid(x)

    def sigmoid(self, x: Any) -> Any:
        """``torch.sigmoid`` (half types in float32, rounded once)."""
        return torch.sigmoid(x)

    def maximum(self, a: Any, b: Any) -> Any:
        if isinstance(b, float):
            return torch.clamp_min(a, b)
        return self._xp.maximum(a, b)

    def minimum(self, a: Any, b: Any) -> Any:
        if isinstance(b, float):
            return torch.clamp_max(a, b)
        if isinstance(b, torch.Tensor) and b.dtype == a.dtype:
            return torch.minimum(a, b)  # one dtype: nothing for the wrapper to promote
        return self._xp.minimum(a, b)

    def sum(self, a: Any, *, dtype: Any = None) -> Any:
        """The whole-array sum (the only one xbce takes), without the compat wrapper."""
        return torch.sum(a, dtype=dtype)

    def loss_mean(self, loss: Any) -> Any:
        """``loss.mean()``, as torch's ``apply_loss_reduction`` takes it (float32 and
        float64: on the CPU, ``sum`` then ``div_(numel)``, the formulas' ``sum / numel``
        bit for bit, in one call)."""
        return torch.mean(loss)

    # The formulas' dtype arithmetic, in torch's own terms: the same results as the
    # compat wrappers for torch dtypes, a fraction of their cost per call, and plain
    # torch calls that ``torch.compile`` puts in its graph (the compat ``result_type``
    # makes Dynamo break the graph).
    def result_type(self, a: Any, b: Any) -> Any:
        """The promoted dtype of two torch dtypes (the only form xbce uses)."""
        return torch.promote_types(a, b)

    def astype(self, x: Any, dtype: Any) -> Any:
        """``x`` converted to ``dtype`` (a new tensor: xbce casts only when they differ)."""
        return x.to(dtype)

    def isdtype(self, dtype: Any, kind: str) -> bool:
        """The three kinds xbce asks about, as the compat ``isdtype`` answers them."""
        if kind == "real floating":
            return bool(dtype.is_floating_point)
        if kind == "bool":
            return bool(dtype == torch.bool)
        return bool(self._xp.isdtype(dtype, kind))


#: array-api-compat's torch namespace, and the stand-in the formulas (and the checks)
#: get: module constants, so that nothing is looked up per call
COMPAT = array_namespace(torch.empty(0))
TORCH_OPS = TorchNamespace(COMPAT)


# ------------------------------------------------------------ what tensors are
def compiling() -> bool:
    return bool(torch.compiler.is_compiling())


def wrapped_or_meta(x: Any, t: Any) -> bool:
    """Tensors whose values xbce must not read: ``torch.func`` wrappers, meta tensors
    (``torch.compile`` is asked about before: Dynamo cannot trace the wrapper test)."""
    return bool(_is_wrapped(x) or _is_wrapped(t) or x.is_meta or t.is_meta)


def autocasting() -> bool:
    """Whether ``torch.autocast`` may be on for some device (one cheap call when it is
    not; a torch without that call is asked per device by :func:`autocast`)."""
    return _any_autocast is None or bool(_any_autocast())


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


def not_differentiable(op: str, **named: Any) -> None:
    """torch refuses ``weight``/``pos_weight`` that require grad (under grad mode)."""
    if not torch.is_grad_enabled():
        return
    for name, a in named.items():
        if a is not None and a.requires_grad:
            raise RuntimeError(
                f"The function '{op}' is not differentiable with respect to argument "
                f"'{name}'. This input cannot have requires_grad True."
            )


def check_unit_interval(backend: Backend, x: Any, y: Any, *, reduced: Any = None) -> None:
    """``_checks.unit_interval`` for torch tensors, at less cost on the CPU.

    On the CPU, reading a 0-d value costs no device synchronisation: one ``aminmax``
    of the targets (and of the inputs without ``reduced``) and ``item()`` replace the
    separate ``min``/``max``/comparison ops. Whatever fails (or a tensor on another
    device) goes to ``_checks.unit_interval``, which finds the first bad element and
    raises torch's message (or finds that the NaN came from the weight)."""
    if x.device.type == "cpu" and formulas.numel(x) != 0:
        low, high = torch.aminmax(y)
        ok = low.item() >= 0 and high.item() <= 1
        if reduced is None:
            low, high = torch.aminmax(x)
            ok = ok and low.item() >= 0 and high.item() <= 1
        elif ok:
            ok = not math.isnan(reduced.item())
        if ok:
            return
    _checks.unit_interval(x, y, backend, reduced=reduced)


# ------------------------------------------------------------------- the formula
def evaluate(
    backend: Backend, logits: bool, x: Any, t: Any, w: Any, p: Any, reduction: str, lazy: bool
) -> Any:
    """The formula on checked tensors: through the autograd Function when autograd
    would record (or a ``torch.func`` transform wraps them), else plainly."""
    if needs_autograd(x, t, lazy=lazy):
        cls = (_FUNCTIONS if _transforms_active() else _EAGER_FUNCTIONS)[logits]
        return cls.apply(x, t, w, p, logits, reduction, lazy, backend)  # type: ignore[no-untyped-call]
    return _forward(backend, logits, x, t, w, p, reduction, lazy)


def compiled(logits: bool, x: Any, t: Any, w: Any, p: Any, reduction: str) -> Any:
    """The formula under ``torch.compile`` (checked tensors, values never read)."""
    return _Compiled.apply(x, t, w, p, logits, reduction)  # type: ignore[no-untyped-call]


def needs_autograd(x: Any, t: Any, *, lazy: bool) -> bool:
    """Whether a plain evaluation would let autograd differentiate xbce's forward.

    ``lazy`` tensors (``torch.func`` wrappers, meta tensors) always take the Function;
    so does forward-mode AD (inside ``fwAD.dual_level()``)."""
    if lazy or _private.torch_forward_ad_active():
        return True
    return torch.is_grad_enabled() and (x.requires_grad or t.requires_grad)


def _forward(
    backend: Backend | None, logits: bool, x: Any, t: Any, w: Any, p: Any, reduction: str,
    lazy: bool,
) -> Any:
    if lazy or backend is None:
        return formulas.loss(logits, x, t, w, p, reduction, xp=TORCH_OPS, lazy=True)
    fn = partial(formulas.elementwise_loss, logits)
    return backend.reduced(fn, x, (x, t, w, p), t.dtype if logits else x.dtype, reduction)


def _gradients(ctx: Any, g: Any) -> tuple[Any, Any]:
    """The gradients autograd asks for (``None`` for the others): the one gradient
    chain of ``_formulas``.

    In blocks (``_evaluate``) for large CPU tensors, unless autograd records the
    backward itself (``create_graph=True``: grad mode is on inside ``backward``) or the
    tensors are lazy (``torch.compile``, ``torch.func``), where whole-tensor ops are
    needed.
    """
    x, t, w, p = ctx.saved_tensors
    backend, logits, r = ctx.backend, ctx.logits, ctx.reduction
    plain = not ctx.lazy and not torch.is_grad_enabled()
    out: list[Any] = []
    for which, needed in zip(("input", "target"), ctx.needs_input_grad[:2], strict=True):
        if not needed:
            out.append(None)
        elif plain and backend is not None and backend.blockable(x):
            out.append(_evaluate.gradient(backend, logits, which, g, x, t, w, p, r))
        else:
            in_place = _in_place(ctx.lazy, which)
            terms = formulas.grad_terms(logits, which, x, t, w, p, formulas.mean_count(r, x),
                                 xp=TORCH_OPS, in_place=in_place)
            out.append(formulas.apply_backward(g, terms, xp=TORCH_OPS))
    return out[0], out[1]


def _in_place(lazy: bool, which: str) -> bool:
    """Whether torch's BCE-with-logits backward runs its in-place ops here: not for
    ``torch.func``/``torch.compile`` tensors (``lazy``), nor, for the input's gradient,
    while autograd records the backward (grad mode on: ``create_graph=True``, or a
    forward-mode JVP). They differ only where the dtypes are mixed."""
    return not lazy and (which == "target" or not torch.is_grad_enabled())


def _jvp(ctx: Any, xt: Any, tt: Any) -> Any:
    """torch's forward-mode formula (derivatives.yaml): the elementwise gradient chain
    applied to each tangent, cast to the loss's dtype, then ``apply_loss_reduction``."""
    x, t, w, p = ctx.saved_tensors
    out = 0
    for which, tangent in (("input", xt), ("target", tt)):
        if tangent is not None:
            in_place = _in_place(ctx.lazy, which)
            terms = formulas.grad_terms(ctx.logits, which, x, t, w, p, None, xp=TORCH_OPS,
                                 in_place=in_place)
            out = out + formulas.apply_backward(tangent, terms, xp=TORCH_OPS, dtype=t.dtype)
    return formulas.reduce(out, ctx.reduction, xp=TORCH_OPS)


def _save(ctx: Any, inputs: tuple[Any, ...], *, lazy: bool, backend: Backend | None) -> None:
    x, t, w, p, logits, reduction = inputs[:6]
    ctx.save_for_backward(x, t, w, p)
    ctx.logits, ctx.reduction, ctx.lazy, ctx.backend = logits, reduction, lazy, backend


class _Compiled(torch.autograd.Function):
    """``apply(x, t, w, p, logits, reduction)`` under ``torch.compile``: lazy, no
    ``jvp`` (Dynamo traces no Function that has one)."""

    @staticmethod
    def forward(x: Any, t: Any, w: Any, p: Any, logits: bool, reduction: str) -> Any:  # type: ignore[override]
        return _forward(None, logits, x, t, w, p, reduction, True)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        _save(ctx, inputs, lazy=True, backend=None)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
        return *_gradients(ctx, g), None, None, None, None


class _Loss(torch.autograd.Function):
    """``apply(x, t, w, p, logits, reduction, lazy, backend)``: either loss with torch's
    gradients and forward-mode formula; ``lazy`` (values unchecked) NaN-poisons bad
    BCE targets."""

    generate_vmap_rule = True

    @staticmethod
    def forward(  # type: ignore[override]
        x: Any, t: Any, w: Any, p: Any, logits: bool, reduction: str, lazy: bool,
        backend: Backend,
    ) -> Any:
        return _forward(backend, logits, x, t, w, p, reduction, lazy)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        _save(ctx, inputs, lazy=inputs[6], backend=inputs[7])
        ctx.save_for_forward(*inputs[:4])

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
        return *_gradients(ctx, g), None, None, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, xt: Any, tt: Any, *_: Any) -> Any:  # type: ignore[override]
        return _jvp(ctx, xt, tt)


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
        ctx: Any, x: Any, t: Any, w: Any, p: Any, logits: bool, reduction: str, lazy: bool,
        backend: Backend,
    ) -> Any:
        _save(ctx, (x, t, w, p, logits, reduction), lazy=lazy, backend=backend)
        ctx.save_for_forward(x, t, w, p)
        return _forward(backend, logits, x, t, w, p, reduction, lazy)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
        return *_gradients(ctx, g), None, None, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, xt: Any, tt: Any, *_: Any) -> Any:  # type: ignore[override]
        return _jvp(ctx, xt, tt)


class Eager:
    """The old-style Functions, under the same class names as the setup-context forms,
    so that a loss's ``grad_fn`` reads ``BinaryCrossEntropyBackward`` either way."""

    class BinaryCrossEntropy(_EagerLoss):
        """:class:`_EagerLoss` for BCE."""

    class BinaryCrossEntropyWithLogits(_EagerLoss):
        """:class:`_EagerLoss` for BCE-with-logits."""


#: the Function of each loss (by ``logits``): setup-context forms, old-style forms
_FUNCTIONS = {False: BinaryCrossEntropy, True: BinaryCrossEntropyWithLogits}
_EAGER_FUNCTIONS = {False: Eager.BinaryCrossEntropy, True: Eager.BinaryCrossEntropyWithLogits}
