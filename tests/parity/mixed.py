"""Mixed dtypes in BCE-with-logits: every (input, target, weight, pos_weight) dtype
combination torch accepts, per backend, against torch on the CPU.

torch accepts any floating dtype for each of the four (the result has the target's
dtype; ``weight``/``pos_weight`` may also be absent): 4 x 4 x 5 x 5 = 400 combinations
where a backend has all four dtypes. Per combination the forward (``reduction='none'``)
and both gradients (autodiff for torch and JAX, the ``*_backward`` functions for the
others) are compared element by element with torch's; the report gives the share of
bit-identical elements and the worst distance in ulps of the result's dtype (of the
value's own magnitude, so a cancelling element can read large). On torch tensors every
element must be bit-identical (a combination that is not fails the sweep); the other
backends are reported, not judged (their same-dtype cells are, in the main sweep).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as TF
from backends import TORCH_DTYPES, Backend, rounded
from corpus import corpus
from metrics import Worst, identical, ulp_errors

import xbce

QUANTITIES = ("fwd", "grad_input", "grad_target")


@dataclass
class MixedCell:
    backend: str
    input: str
    target: str
    weight: str  # a dtype or "-"
    pos_weight: str
    n: int = 0
    identical_share: dict[str, float] | None = None
    ulp_vs_torch: dict[str, float] | None = None
    failure: str = ""

    @property
    def exact(self) -> bool:
        return not self.failure and all(v == 1.0 for v in (self.identical_share or {}).values())


def _torch(x: torch.Tensor, t: torch.Tensor, w: Any, p: Any, g: torch.Tensor) -> list[Any]:
    xr, tr = x.clone().requires_grad_(), t.clone().requires_grad_()
    out = TF.binary_cross_entropy_with_logits(xr, tr, w, pos_weight=p, reduction="none")
    gx, gt = torch.autograd.grad(out, (xr, tr), g)
    return [out.detach(), gx, gt]


def _xbce(b: Backend, x: Any, t: Any, w: Any, p: Any, g: Any) -> list[Any]:
    if b.autodiff == "torch":
        x, t = x.requires_grad_(), t.requires_grad_()
        out = xbce.binary_cross_entropy_with_logits(x, t, w, reduction="none", pos_weight=p)
        gx, gt = torch.autograd.grad(out, (x, t), g)
        return [out.detach(), gx, gt]
    if b.autodiff == "jax":
        import jax

        def fwd(a: Any, c: Any) -> Any:
            return xbce.binary_cross_entropy_with_logits(a, c, w, reduction="none", pos_weight=p)

        out, vjp = jax.vjp(fwd, x, t)
        return [out, *vjp(g)]
    out = xbce.binary_cross_entropy_with_logits(x, t, w, reduction="none", pos_weight=p)
    gx = xbce.binary_cross_entropy_with_logits_backward(g, x, t, w, "none", p)
    gt = xbce.binary_cross_entropy_with_logits_target_backward(g, x, t, w, "none", p)
    return [out, gx, gt]


def sweep(backends: list[Backend], rows: int = 4, cols: int = 500, seed: int = 20130,
          log: Any = print) -> list[MixedCell]:
    """Every combination on every backend (``rows x cols`` elements of the logits corpus)."""
    c = corpus("bcewl", rows, cols, seed)
    cells = []
    dtypes = list(TORCH_DTYPES)
    optional = ["-", *dtypes]
    for xd, td, wd, pd in itertools.product(dtypes, dtypes, optional, optional):
        x, t, gr = rounded(c.x, xd), rounded(c.y, td), rounded(c.grad, td)
        w = None if wd == "-" else rounded(c.weight, wd)
        p = None if pd == "-" else rounded(c.pos_weight, pd)
        ref = _torch(x, t, w, p, gr)
        for b in backends:
            if not {xd, td, wd, pd} - {"-"} <= set(b.dtypes):
                continue
            cell = MixedCell(b.name, xd, td, wd, pd, n=int(x.numel()))
            try:
                got = _xbce(
                    b,
                    b.asarray(x, xd),
                    b.asarray(t, td),
                    None if w is None else b.asarray(w, wd),
                    None if p is None else b.asarray(p, pd),
                    b.asarray(gr, td),
                )
                host = [b.to_torch(a) for a in got]
            except Exception as e:  # reported, as the main sweep reports a crash
                cell.failure = f"xbce raised {type(e).__name__}: {e}"
                cells.append(cell)
                continue
            cell.identical_share, cell.ulp_vs_torch = {}, {}
            for q, a, r in zip(QUANTITIES, host, ref, strict=True):
                if a.dtype != r.dtype:
                    cell.failure += f"{q}: dtype {a.dtype} != torch's {r.dtype}; "
                    continue
                an, rn = a.double().numpy(), r.double().numpy()
                cell.identical_share[q] = float(identical(an, rn).mean())
                cell.ulp_vs_torch[q] = Worst.of(ulp_errors(an, rn, str(r.dtype)[6:], None)).ulps
            cells.append(cell)
    return cells


def failing(cells: list[MixedCell]) -> list[MixedCell]:
    """Combinations that fail the sweep: any crash or wrong dtype; on torch, any bit."""
    return [c for c in cells if c.failure or (c.backend in ("torch", "torch_cuda")
                                              and not c.exact)]


def summary(cells: list[MixedCell]) -> list[dict[str, Any]]:
    """Per backend: combinations, those bit-identical in all three quantities, and per
    quantity the element-weighted identical share and the worst ulps."""
    out = []
    for name in dict.fromkeys(c.backend for c in cells):
        mine = [c for c in cells if c.backend == name]
        row: dict[str, Any] = {"backend": name, "combinations": len(mine),
                               "bit_identical": sum(c.exact for c in mine),
                               "failing": len(failing(mine))}
        for q in QUANTITIES:
            ok = [c for c in mine if c.identical_share and q in c.identical_share]
            n = sum(c.n for c in ok)
            row[q] = {
                "identical_share": sum(c.n * c.identical_share[q] for c in ok) / n if n else None,  # type: ignore[index]
                "ulp_vs_torch": max((c.ulp_vs_torch[q] for c in ok), default=None),  # type: ignore[index]
            }
        out.append(row)
    return out


def markdown(cells: list[MixedCell]) -> list[str]:
    from metrics import fmt_ulps

    def pct(s: float | None) -> str:
        return "—" if s is None else ("100%" if s == 1 else f"{100 * s:.2f}%")

    lines = [
        "#### Mixed dtypes (BCE with logits)",
        "",
        "Every (input, target, weight, pos_weight) dtype combination torch accepts "
        "(weight and pos_weight absent or any float dtype), `reduction='none'`, "
        "against torch: share of bit-identical elements (worst ulps of the value).",
        "",
        "| backend | combinations | all bit-identical | forward | d/d input | d/d target |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary(cells):
        vals = [f"{pct(r[q]['identical_share'])} ({fmt_ulps(r[q]['ulp_vs_torch'])})"
                for q in QUANTITIES]
        lines.append(f"| {r['backend']} | {r['combinations']} | {r['bit_identical']} | "
                     + " | ".join(vals) + " |")
    bad = failing(cells)
    lines += ["", f"Failing combinations: {len(bad)}."]
    lines += [f"- {c.backend} x {c.input} t {c.target} w {c.weight} p {c.pos_weight}: "
              f"{c.failure or 'not bit-identical'}" for c in bad[:20]]
    return lines
