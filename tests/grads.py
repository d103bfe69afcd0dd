"""Gradient cases: torch's reference gradients and xbce's, on any backend.

A :class:`Case` holds CPU tensors already rounded to the dtype under test (``backends.
rounded``). ``Case.reference()`` differentiates ``torch.nn.functional`` with
``torch.autograd`` on the CPU; ``autodiff()`` differentiates xbce with the backend's
own machinery (``torch.autograd`` or ``jax.vjp``) and ``explicit()`` calls xbce's
backward functions. Nothing here stores an expected value.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import torch
import torch.nn.functional as TF
from backends import Backend

import xbce

with warnings.catch_warnings():
    # torch's forward AD loads its jvp decompositions on first use (make_dual), and they
    # are scripted with the deprecated torch.jit.script: load them once, quietly
    warnings.simplefilter("ignore", DeprecationWarning)
    import torch._decomp.decompositions_for_jvp

LOSSES = {
    "bce": (xbce.binary_cross_entropy, TF.binary_cross_entropy),
    "bcewl": (xbce.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits),
}
BACKWARDS = {
    "bce": (xbce.binary_cross_entropy_backward, xbce.binary_cross_entropy_target_backward),
    "bcewl": (
        xbce.binary_cross_entropy_with_logits_backward,
        xbce.binary_cross_entropy_with_logits_target_backward,
    ),
}

#: (reduction, grad_output): a 0-d upstream gradient of 1 and of 0.37 for the
#: reductions, a random array (``None`` here) for ``none``.
GRAD_OUTPUTS = [("none", None), ("mean", 1.0), ("mean", 0.37), ("sum", 0.37)]


@dataclasses.dataclass
class Case:
    op: str  # "bce" or "bcewl"
    x: torch.Tensor
    y: torch.Tensor
    grad: torch.Tensor  # 0-d for mean/sum, the loss's shape for none
    reduction: str
    weight: torch.Tensor | None = None
    pos_weight: torch.Tensor | None = None

    @property
    def dtype(self) -> str:
        return str(self.x.dtype).removeprefix("torch.")

    def _kwargs(self, convert: Any) -> dict[str, Any]:
        kw: dict[str, Any] = {"reduction": self.reduction}
        kw["weight"] = None if self.weight is None else convert(self.weight)
        if self.op == "bcewl":
            kw["pos_weight"] = None if self.pos_weight is None else convert(self.pos_weight)
        return kw

    # ------------------------------------------------------------------ torch
    def reference(self) -> tuple[torch.Tensor, torch.Tensor]:
        """d loss / d input and d loss / d target from ``torch.autograd`` on the CPU."""
        x = self.x.clone().requires_grad_()
        y = self.y.clone().requires_grad_()
        loss = LOSSES[self.op][1](x, y, **self._kwargs(lambda a: a))
        gx, gy = torch.autograd.grad(loss, (x, y), self.grad)
        return gx, gy

    # ------------------------------------------------------------------ xbce
    def explicit(self, backend: Backend) -> tuple[Any, Any]:
        """xbce's backward functions on ``backend``."""
        conv = self._converter(backend)
        args = (conv(self.grad), conv(self.x), conv(self.y))
        kw = self._kwargs(conv)
        dx, dy = BACKWARDS[self.op]
        return dx(*args, **kw), dy(*args, **kw)

    def autodiff(self, backend: Backend) -> tuple[Any, Any]:
        """xbce's loss differentiated by ``torch.autograd`` or ``jax.vjp``."""
        conv = self._converter(backend)
        loss_fn = LOSSES[self.op][0]
        kw = self._kwargs(conv)
        if backend.autodiff == "torch":
            x = conv(self.x).requires_grad_()
            y = conv(self.y).requires_grad_()
            gx, gy = torch.autograd.grad(loss_fn(x, y, **kw), (x, y), conv(self.grad))
            return gx, gy
        if backend.autodiff == "jax":
            import jax

            _, vjp = jax.vjp(lambda a, b: loss_fn(a, b, **kw), conv(self.x), conv(self.y))
            return vjp(conv(self.grad))
        raise AssertionError(f"{backend.name} has no autodiff")

    def _converter(self, backend: Backend) -> Any:
        dtype = self.dtype
        return lambda a: backend.asarray(a, dtype)

    # ------------------------------------------------------------- tolerances
    def quantities(self) -> tuple[str, str]:
        """The ``tolerances`` quantity of the input and of the target gradient."""
        if self.op == "bce":
            return "bce_grad", "bce_tgrad"
        return "bcewl_grad", ("bcewl_grad" if self.pos_weight is not None else "bcewl_tgrad")

    def scales(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Magnitudes of the terms that cancel in each gradient's coefficient, times
        ``|grad * weight| / numel`` (float64, the input's shape), or None where the
        gradient's own magnitude is the scale (no cancellation)."""
        if self.op == "bce":
            return None, None  # (x - y) is exact (Sterbenz) or as exact as torch's
        x, t = self.x.double(), self.y.double()
        factor = self.grad.double().abs().expand_as(x)
        if self.weight is not None:
            factor = factor * self.weight.double().abs()
        if self.reduction == "mean":
            factor = factor / x.numel()
        sig = torch.sigmoid(x)
        if self.pos_weight is None:
            # (sigmoid(x) - t): cancels when t ~ sigmoid(x); -x * grad is exact
            return (sig + t.abs()) * factor, None
        pt = self.pos_weight.double() * t
        gx = ((pt + 1 - t).abs() * sig + pt.abs()) * factor
        ls = TF.logsigmoid(x).abs()
        gt = (TF.logsigmoid(-x).abs() + ls * self.pos_weight.double().abs()) * factor
        return gx, gt


# ------------------------------------------------------------------ forward mode
def forward_ad(op: str, x: torch.Tensor, y: torch.Tensor, tx: torch.Tensor,
               ty: torch.Tensor, reduction: str, weight: torch.Tensor | None = None,
               pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """torch's forward-mode derivative (derivatives.yaml's formula), eager forward AD
    on the CPU (not torch.func.jvp, which decomposes BCE-with-logits differently)."""
    kw = Case(op, x, y, tx, reduction, weight, pos_weight)._kwargs(lambda a: a)
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual
        out = LOSSES[op][1](dual(x, tx), dual(y, ty), **kw)
        return torch.autograd.forward_ad.unpack_dual(out).tangent


def jvp_scale(op: str, x: torch.Tensor, y: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor,
              reduction: str, weight: torch.Tensor | None = None,
              pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """The scale of a tangent's rounding (float64): per element, the scales of its input
    and target parts (each is the backward formula applied to a tangent: ``Case.scales``
    with grad = the tangent, or the part's magnitude), added because the parts may
    cancel; summed (and divided by numel) for sum and mean."""
    total = torch.zeros(x.shape, dtype=torch.float64)
    for i, tangent in enumerate((tx, ty)):
        case = Case(op, x, y, tangent, "none", weight, pos_weight)
        scale = case.scales()[i]
        total = total + (case.reference()[i].double().abs() if scale is None else scale)
    if reduction == "none":
        return total
    return total.mean() if reduction == "mean" else total.sum()
