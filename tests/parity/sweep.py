"""Parity sweep: does xbce give what torch.nn.functional gives, per backend and dtype?

For every backend (default: each CPU backend that imports: numpy, torch, jax, dask,
array_api_strict), every dtype it has (float16, bfloat16, float32, float64), both losses,
every reduction (none, mean, sum) and weighting (none, ``weight``, and for the logits
loss ``pos_weight``), it compares three quantities with torch 2.13 on the CPU, given
the same dtype-rounded inputs:

* the forward value;
* the gradient w.r.t. the input and w.r.t. the target: through xbce's own autodiff
  for torch tensors (``backward``) and JAX arrays (``jax.grad``/``jax.vjp``), through
  ``xbce.*_backward`` for the others; torch's reference is its autograd.

Inputs (``corpus.py``): the edge tables of ``tests/cases.py`` and a seeded random
corpus (uniform, near 0 and 1, exact 0/1, subnormal, soft targets, logits up to 1e4,
+-inf), ``rows x cols`` elements (default 100 x 1000 = 10^5) per cell. ``none`` is one
call on the whole array; ``mean``/``sum`` reduce each row separately (``rows`` results,
and per-row gradients), so that a reduction is compared many times, not once.

Per cell it reports the worst error in ulps against torch, the share of elements
bit-identical to torch, the worst error in ulps against the exact value of the same
formula (``exact.py``; torch's own distance from it is reported beside it), and
pass/fail against ``tests/tolerances.py`` using ``tests/comparisons.py``'s comparison
(``assert_ulp_close``): a logits loss is measured against the magnitude of its
cancelling terms, a reduction against the sum of ``|terms|``. JAX flushes subnormals
to zero on the CPU: its cells are judged against torch given the flushed inputs
(``comparisons.flush_subnormals``/``allow_flushed``); the number of elements that had a
subnormal input, and the worst error against torch on the unflushed inputs, are
reported beside them.

Layouts: float32 and float64, ``reduction='none'``, every weighting, on inputs of
2^18 + 1 elements (52429 x 5: xbce cuts NumPy arrays into blocks from 2^18 elements)
and 2^21 + 1 (699051 x 3: contiguous torch CPU tensors from 2^21), and on transposed
(non-contiguous) inputs (the corpus' 100 x 1000 transposed; ``weight``/``pos_weight``
then have 100 entries), torch's reference computed on the same layout: reported apart
from the main grid.

Mixed dtypes (``mixed.py``): BCE-with-logits with every (input, target, weight,
pos_weight) dtype combination torch accepts, bit-identical share per backend.

Writes ``<out>/<name>.json``, ``<name>.md`` (a Markdown report) and ``<name>.png``
(heat map of the worst error against torch) and prints a summary (``--verbose``: a
line per cell). ``<out>`` is ``build/parity/`` (ignored by git) unless
``--update-docs`` (the maintainer's refresh of the committed ``docs/parity/``) or
``--out`` says otherwise. Exits with status 1 if any cell fails. Run it with
``nox -s parity`` (``-- --help``).
A GPU report needs an environment with the CUDA backends (``nox -s cupy`` and the like
install them), e.g. ``python tests/parity/sweep.py --backends cupy,torch_cuda,jax_gpu
--name gpu-h100``: the reference stays torch on the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
ROOT = TESTS.parent
sys.path[:0] = [str(HERE), str(TESTS)]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

torch.set_num_threads(1)  # small arrays: threads only contend (and the runs stay reproducible)

from backends import (  # noqa: E402
    ALL_BACKENDS,
    CPU_BACKENDS,
    GPU_BACKENDS,
    TORCH_DTYPES,
    Backend,
    load,
    rounded,
)
from comparisons import allow_flushed, assert_ulp_close, flush_subnormals  # noqa: E402
from corpus import Corpus, corpus  # noqa: E402
from exact import LONGDOUBLE_OK, exact_type, mpmath_check, quantities  # noqa: E402
from metrics import FORMATS, Worst, as_float, fmt_ulps, identical, ulp_errors  # noqa: E402
from tolerances import ulps  # noqa: E402

import xbce  # noqa: E402

LOSSES = ("bce", "bcewl")
WEIGHTINGS = {"bce": ("none", "weight"), "bcewl": ("none", "weight", "pos_weight")}
REDUCTIONS = ("none", "mean", "sum")
QUANTITIES = ("fwd", "grad_input", "grad_target")
Q_NAMES = {"fwd": "forward", "grad_input": "d/d input", "grad_target": "d/d target"}
DTYPES = ("float16", "bfloat16", "float32", "float64")
#: the layout cells: one element past the sizes from which xbce cuts blocks (NumPy:
#: 2^18, torch CPU: 2^21), corpus shapes that make them (tall below), and transposed
LAYOUTS = {"2^18+1 elements": (5, 52429), "2^21+1 elements": (3, 699051), "transposed": None}
LAYOUT_DTYPES = ("float32", "float64")


def tolerance_quantity(loss: str, weighting: str, reduction: str, q: str) -> str:
    """The ``tests/tolerances.py`` quantity a cell is judged by (as ``tests/grads.py``)."""
    if q == "fwd":
        return loss if reduction == "none" else "reduced"
    if loss == "bce":
        return "bce_grad" if q == "grad_input" else "bce_tgrad"
    if q == "grad_target" and weighting != "pos_weight":
        return "bcewl_tgrad"  # -x * grad * weight [/ numel]: IEEE-exact
    return "bcewl_grad"


def tolerance(b: Backend, dtype: str, quantity: str, reduction: str, q: str) -> tuple[int, str]:
    """Ulps allowed for ``quantity``, and its name (as in ``tests/test_gradients.py``)."""
    return ulps(quantity, dtype, b.name), quantity


# --------------------------------------------------------------------------- inputs
@dataclass
class Inputs:
    """One corpus rounded to one dtype: torch CPU tensors and their float64 values."""

    x: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor
    p: torch.Tensor
    g: torch.Tensor
    flushed_mask: np.ndarray | None = None  # elements with a flushed subnormal input

    def f64(self, name: str) -> np.ndarray:
        return getattr(self, name).double().numpy()

    def flushed(self) -> Inputs:
        """The inputs as XLA sees them on the CPU: subnormals flushed to zero."""
        new = {k: flush_subnormals(getattr(self, k)) for k in "xywpg"}
        changed = np.zeros(tuple(self.x.shape), dtype=bool)
        for k, v in new.items():
            diff = (v != getattr(self, k)).numpy()
            changed |= np.broadcast_to(diff, changed.shape)
        return Inputs(**new, flushed_mask=changed)


def make_inputs(c: Corpus, dtype: str) -> Inputs:
    return Inputs(*(rounded(a, dtype) for a in (c.x, c.y, c.weight, c.pos_weight, c.grad)))


# ------------------------------------------------------------------------ evaluation
Result = dict[str, torch.Tensor]


def _rows(reduction: str, n_rows: int) -> list[int | None]:
    return [None] if reduction == "none" else list(range(n_rows))


def _stack(parts: list[tuple[Any, Any, Any]], reduction: str) -> Result:
    if reduction == "none":
        fwd, gx, gy = parts[0]
    else:
        fwd, gx, gy = (torch.stack(list(t)) for t in zip(*parts, strict=True))
    return {"fwd": fwd, "grad_input": gx, "grad_target": gy}


def torch_reference(loss: str, weighting: str, reduction: str, inp: Inputs) -> Result:
    """torch.nn.functional on the CPU, gradients by its autograd."""
    w = inp.w if weighting == "weight" else None
    p = inp.p if weighting == "pos_weight" else None
    parts = []
    for r in _rows(reduction, inp.x.shape[0]):
        x = (inp.x if r is None else inp.x[r]).clone().requires_grad_(True)
        y = (inp.y if r is None else inp.y[r]).clone().requires_grad_(True)
        if loss == "bce":
            out = TF.binary_cross_entropy(x, y, weight=w, reduction=reduction)
        else:
            out = TF.binary_cross_entropy_with_logits(
                x, y, weight=w, pos_weight=p, reduction=reduction
            )
        if r is None:
            out.backward(inp.g)
        else:
            out.backward()
        parts.append((out.detach(), x.grad, y.grad))
    return _stack(parts, reduction)


def xbce_result(
    b: Backend, loss: str, weighting: str, reduction: str, inp: Inputs, dtype: str
) -> tuple[Result, list[str]]:
    """xbce on backend ``b``; returns the results as CPU tensors and any notes (e.g. a
    result that left the backend's namespace)."""
    notes: list[str] = []
    w = b.asarray(inp.w, dtype) if weighting == "weight" else None
    p = b.asarray(inp.p, dtype) if weighting == "pos_weight" else None

    def fwd(x: Any, y: Any) -> Any:
        if loss == "bce":
            return xbce.binary_cross_entropy(x, y, w, reduction=reduction)
        return xbce.binary_cross_entropy_with_logits(x, y, w, reduction=reduction, pos_weight=p)

    if loss == "bce":
        back_x, back_y = (
            xbce.binary_cross_entropy_backward,
            xbce.binary_cross_entropy_target_backward,
        )
    else:
        back_x = xbce.binary_cross_entropy_with_logits_backward
        back_y = xbce.binary_cross_entropy_with_logits_target_backward
    extra = {"pos_weight": p} if loss == "bcewl" else {}

    parts = []
    for r in _rows(reduction, inp.x.shape[0]):
        xt, yt = (inp.x, inp.y) if r is None else (inp.x[r], inp.y[r])
        x, y = b.asarray(xt, dtype), b.asarray(yt, dtype)
        g = b.asarray(inp.g, dtype) if r is None else b.asarray(torch.ones(()), dtype)
        if b.autodiff == "torch":
            x.requires_grad_(True)
            y.requires_grad_(True)
            out = fwd(x, y)
            out.backward(g if r is None else None)
            gx, gy = x.grad, y.grad
            out = out.detach()
        elif b.autodiff == "jax":
            import jax

            out = fwd(x, y)
            if r is None:
                _, vjp = jax.vjp(fwd, x, y)
                gx, gy = vjp(g)
            else:
                gx, gy = jax.grad(fwd, argnums=(0, 1))(x, y)
        else:
            out = fwd(x, y)
            gx = back_x(g, x, y, w, reduction=reduction, **extra)
            gy = back_y(g, x, y, w, reduction=reduction, **extra)
        for name, a in (("forward", out), ("d/d input", gx), ("d/d target", gy)):
            if not b.is_native(a) and f"{name} left {b.name}" not in " ".join(notes):
                notes.append(f"{name} left {b.name} ({type(a).__name__})")
        parts.append((out, gx, gy))
    if b.lazy:  # one compute for every row (as many graphs, evaluated together)
        import dask

        flat = dask.compute(*[a for triple in parts for a in triple])
        it = iter(torch.as_tensor(np.asarray(a)) for a in flat)
        return _stack([(next(it), next(it), next(it)) for _ in parts], reduction), notes
    host = [tuple(b.to_torch(a) for a in triple) for triple in parts]
    return _stack(host, reduction), notes


# ---------------------------------------------------------------------------- scales
def scales(
    loss: str, weighting: str, reduction: str, inp: Inputs, dtype: str
) -> dict[str, tuple[np.ndarray | None, np.ndarray | None]]:
    """Per quantity, the scale of the comparison with torch and with the exact value
    (float64; None: the expected value's own magnitude). See the module docstring."""
    x, y = inp.f64("x"), inp.f64("y")
    w = np.abs(inp.f64("w")) if weighting == "weight" else None
    p = inp.f64("p") if weighting == "pos_weight" else None
    cols = x.shape[-1]
    gwn = np.abs(inp.f64("g")) if reduction == "none" else np.ones_like(x)
    if reduction == "mean":
        gwn = gwn / cols
    if w is not None:
        gwn = gwn * w
    out: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = {}

    def reduced(terms: np.ndarray) -> np.ndarray:
        s = np.where(np.isfinite(terms), terms, 0.0).sum(axis=-1)
        return s / cols if reduction == "mean" else s

    with np.errstate(all="ignore"):
        if loss == "bce":
            el = np.abs(quantities("bce", dtype, "none", x, y, w, None, None, np.float64)["fwd"])
            fwd = None if reduction == "none" else reduced(el)
            out["fwd"] = (fwd, fwd)
            out["grad_input"] = (None, None)
            # -log(q), q = x / (1 - x) rounded: the exact value is off by ~ulp(1) absolute
            out["grad_target"] = (None, (np.abs(np.log(x / (1 - x))) + 1) * gwn)
        else:
            ls = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
            lw = np.ones_like(y) if p is None else 1 + (p - 1) * y
            s = np.maximum(np.abs((1 - y) * x) + np.abs(ls * lw), np.abs(lw) * FORMATS[dtype][1])
            if w is not None:
                s = s * w
            fwd = s if reduction == "none" else reduced(s)
            out["fwd"] = (fwd, fwd)
            sig = 1 / (1 + np.exp(-x))
            if p is None:
                gi = (np.abs(sig) + np.abs(y)) * gwn
                gt = None
            else:
                pt = p * y
                gi = (np.abs((pt + 1 - y) * sig) + np.abs(pt)) * gwn
                ls_neg = np.minimum(-x, 0) - np.log1p(np.exp(-np.abs(x)))
                gt = (np.abs(ls_neg) + np.abs(p * ls)) * gwn
            out["grad_input"] = (gi, gi)
            out["grad_target"] = (gt, gt)
    return out


# ----------------------------------------------------------------------------- cells
@dataclass
class Cell:
    backend: str
    dtype: str
    loss: str
    weighting: str
    reduction: str
    quantity: str
    n: int = 0
    tolerance_quantity: str = ""
    tolerance_ulps: int = 0
    ulp_vs_torch: float | None = None
    identical_share: float | None = None
    ulp_vs_exact: float | None = None
    torch_ulp_vs_exact: float | None = None
    ftz_elements: int | None = None
    ulp_vs_torch_unflushed: float | None = None
    passed: bool = False
    failure: str = ""
    worst: dict[str, Any] = field(default_factory=dict)
    worst_exact: dict[str, Any] = field(default_factory=dict)
    torch_worst_exact: dict[str, Any] = field(default_factory=dict)
    layout: str = "contiguous"

    @property
    def case(self) -> str:
        where = "" if self.layout == "contiguous" else f" [{self.layout}]"
        return f"{self.loss} {self.quantity} {self.weighting} {self.reduction}{where}"

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        # where an element is worth showing: beyond tolerance, or far from exact
        if self.passed:
            d["worst"] = {}
        for k, u in (("worst_exact", "ulp_vs_exact"), ("torch_worst_exact", "torch_ulp_vs_exact")):
            if d[u] is None or d[u] <= 16:
                d[k] = {}
        for k in ("ulp_vs_torch", "ulp_vs_exact", "torch_ulp_vs_exact", "ulp_vs_torch_unflushed"):
            if d[k] is not None:
                d[k] = as_float(d[k])
        return d


def _worst_detail(
    idx: int, shape: tuple[int, ...], inp: Inputs, got: np.ndarray, exp: np.ndarray
) -> dict[str, Any]:
    if idx < 0:
        return {}
    pos = np.unravel_index(idx, shape)
    d: dict[str, Any] = {"index": [int(i) for i in pos]}
    if len(pos) == 2:
        r, c = pos
        d.update(
            x=as_float(inp.x[r, c]),
            y=as_float(inp.y[r, c]),
            w=as_float(inp.w[c]),
            pos_weight=as_float(inp.p[c]),
            grad=as_float(inp.g[r, c]),
        )
    else:
        d["row"] = int(pos[0])
    d.update(xbce=as_float(got.reshape(-1)[idx]), expected=as_float(exp.reshape(-1)[idx]))
    return d


def compare(
    cell: Cell,
    b: Backend,
    got: torch.Tensor,
    ref: torch.Tensor,
    ref_raw: torch.Tensor,
    exact: np.ndarray | None,
    torch_vs_exact: tuple[float | None, dict[str, Any]],
    scale: tuple[np.ndarray | None, np.ndarray | None],
    inp: Inputs,
) -> None:
    """Fill ``cell`` from xbce's result ``got`` against torch's ``ref`` (on the inputs
    the backend saw) and ``ref_raw`` (on the unflushed inputs)."""
    dtype = cell.dtype
    tol, cell.tolerance_quantity = tolerance(
        b, dtype, cell.tolerance_quantity, cell.reduction, cell.quantity
    )
    cell.tolerance_ulps = tol
    cell.n = int(ref.numel())
    expected = allow_flushed(got, ref) if b.flushes_subnormals else ref
    s_torch, s_exact = scale
    try:
        assert_ulp_close(
            got,
            expected,
            tol,
            scale=None if s_torch is None else torch.from_numpy(s_torch),
            what=f"{b.name} {dtype} {cell.case}",
        )
        cell.passed = True
    except AssertionError as exc:
        cell.passed = False
        cell.failure = str(exc)
    if got.dtype != ref.dtype or got.shape != ref.shape:
        return
    a = got.double().numpy()
    want = expected.double().numpy()
    worst = Worst.of(ulp_errors(a, want, dtype, s_torch))
    cell.ulp_vs_torch = worst.ulps
    cell.identical_share = float(identical(a, want).mean()) if a.size else 1.0
    cell.worst = _worst_detail(worst.index, tuple(a.shape), inp, a, want)
    if exact is not None:
        rounded_exact = torch.from_numpy(exact.astype(np.float64)).to(TORCH_DTYPES[dtype])
        err_x = ulp_errors(
            a,
            exact,
            dtype,
            s_exact,
            flushed=b.flushes_subnormals,
            rounded_expected=rounded_exact.double().numpy(),
        )
        worst_x = Worst.of(err_x)
        cell.ulp_vs_exact = worst_x.ulps
        cell.worst_exact = _worst_detail(
            worst_x.index, tuple(a.shape), inp, a, exact.astype(np.float64)
        )
    cell.torch_ulp_vs_exact, cell.torch_worst_exact = torch_vs_exact
    if inp.flushed_mask is not None:
        mask = (
            inp.flushed_mask
            if cell.reduction == "none" or cell.quantity != "fwd"
            else (inp.flushed_mask.any(axis=-1))
        )
        cell.ftz_elements = int(mask.sum())
        raw = ref_raw.double().numpy()
        cell.ulp_vs_torch_unflushed = Worst.of(ulp_errors(a, raw, dtype, s_torch)).ulps


# ------------------------------------------------------------------------------ sweep
@dataclass
class Sweep:
    backends: list[Backend]
    dtypes: list[str]
    rows: int
    cols: int
    seed: int
    log: Callable[[str], None] = print
    cells: list[Cell] = field(default_factory=list)
    layout_cells: list[Cell] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def run(self) -> None:
        for loss in LOSSES:
            c = corpus(loss, self.rows, self.cols, self.seed)
            if LONGDOUBLE_OK:
                check = mpmath_check(c.x, c.y, loss)
                self.meta.setdefault("mpmath_check_ulps", {})[loss] = check
                self.log(
                    f"exact reference check ({loss}, float64): long double within "
                    f"{check:.3g} ulp of mpmath (60 digits) on 400 elements"
                )
            for dtype in self.dtypes:
                users = [b for b in self.backends if dtype in b.dtypes]
                if users:
                    self._dtype(loss, make_inputs(c, dtype), dtype, users)

    def run_layouts(self) -> None:
        """The layout cells (see the module), into :attr:`layout_cells`."""
        main, self.cells = self.cells, self.layout_cells
        try:
            for loss in LOSSES:
                for layout, shape in LAYOUTS.items():
                    c = corpus(loss, *(shape or (self.rows, self.cols)), self.seed)
                    for dtype in (d for d in LAYOUT_DTYPES if d in self.dtypes):
                        users = [b for b in self.backends if dtype in b.dtypes]
                        a = make_inputs(c, dtype)
                        if shape is None:
                            inp = Inputs(a.x.t(), a.y.t(), a.w[: self.rows], a.p[: self.rows],
                                         a.g.t())
                        else:  # tall, so that Dask's test arrays get few chunks
                            tall = shape[::-1]
                            inp = Inputs(a.x.reshape(tall), a.y.reshape(tall), a.w[: tall[1]],
                                         a.p[: tall[1]], a.g.reshape(tall))
                        if users:
                            self._dtype(loss, inp, dtype, users, ("none",), layout)
        finally:
            self.cells = main

    def _dtype(self, loss: str, inp: Inputs, dtype: str, users: list[Backend],
               reductions: tuple[str, ...] = REDUCTIONS, layout: str = "contiguous") -> None:
        inp_ftz = inp.flushed() if any(b.flushes_subnormals for b in users) else None
        ftype = exact_type(dtype)
        for weighting in WEIGHTINGS[loss]:
            for reduction in reductions:
                t0 = time.perf_counter()
                ref = torch_reference(loss, weighting, reduction, inp)
                ex = self._exact(loss, dtype, weighting, reduction, inp, ftype)
                sc = scales(loss, weighting, reduction, inp, dtype)
                tve = {
                    q: self._torch_vs_exact(ref[q], ex, q, dtype, sc[q][1], inp)
                    for q in QUANTITIES
                }
                if inp_ftz is not None:
                    ref_f = torch_reference(loss, weighting, reduction, inp_ftz)
                    ex_f = self._exact(loss, dtype, weighting, reduction, inp_ftz, ftype)
                    sc_f = scales(loss, weighting, reduction, inp_ftz, dtype)
                self.timings["torch reference"] = (
                    self.timings.get("torch reference", 0.0) + time.perf_counter() - t0
                )
                for b in users:
                    ftz = b.flushes_subnormals and inp_ftz is not None
                    b_inp, b_ref, b_ex, b_sc = (
                        (inp_ftz, ref_f, ex_f, sc_f) if ftz else (inp, ref, ex, sc)
                    )
                    self._cells(
                        b, loss, dtype, weighting, reduction, b_inp, b_ref, ref, b_ex, tve, b_sc,
                        layout,
                    )

    def _exact(
        self, loss: str, dtype: str, weighting: str, reduction: str, inp: Inputs, ftype: Any
    ) -> dict[str, np.ndarray] | None:
        if ftype is None:
            return None
        return quantities(
            loss,
            dtype,
            reduction,
            inp.f64("x"),
            inp.f64("y"),
            inp.f64("w") if weighting == "weight" else None,
            inp.f64("p") if weighting == "pos_weight" else None,
            inp.f64("g") if reduction == "none" else None,
            ftype,
        )

    @staticmethod
    def _torch_vs_exact(
        got: torch.Tensor,
        ex: dict[str, np.ndarray] | None,
        q: str,
        dtype: str,
        scale: np.ndarray | None,
        inp: Inputs,
    ) -> tuple[float | None, dict[str, Any]]:
        if ex is None:
            return None, {}
        rounded_exact = torch.from_numpy(ex[q].astype(np.float64)).to(TORCH_DTYPES[dtype])
        a = got.double().numpy()
        err = ulp_errors(a, ex[q], dtype, scale, rounded_expected=rounded_exact.double().numpy())
        worst = Worst.of(err)
        return worst.ulps, _worst_detail(worst.index, a.shape, inp, a, ex[q].astype(np.float64))

    def _cells(
        self,
        b: Backend,
        loss: str,
        dtype: str,
        weighting: str,
        reduction: str,
        inp: Inputs,
        ref: Result,
        ref_raw: Result,
        ex: dict[str, np.ndarray] | None,
        tve: dict[str, Any],
        sc: dict[str, Any],
        layout: str = "contiguous",
    ) -> None:
        key = f"{b.name} {dtype}"
        t0 = time.perf_counter()
        cells = [
            Cell(
                b.name,
                dtype,
                loss,
                weighting,
                reduction,
                q,
                tolerance_quantity=tolerance_quantity(loss, weighting, reduction, q),
                layout=layout,
            )
            for q in QUANTITIES
        ]
        try:
            got, notes = xbce_result(b, loss, weighting, reduction, inp, dtype)
        except Exception as e:  # a crash is a failing cell, with its traceback
            tb = traceback.format_exc(limit=-3)
            for cell in cells:
                cell.failure = f"xbce raised {type(e).__name__}: {e}\n{tb}"
                cell.tolerance_ulps, cell.tolerance_quantity = tolerance(
                    b, dtype, cell.tolerance_quantity, reduction, cell.quantity
                )
            self.cells.extend(cells)
            self._print(cells)
            return
        finally:
            self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t0
        for cell, q in zip(cells, QUANTITIES, strict=True):
            compare(
                cell,
                b,
                got[q],
                ref[q],
                ref_raw[q],
                None if ex is None else ex[q],
                tve[q],
                sc[q],
                inp,
            )
            if notes:
                cell.passed = False
                cell.failure = "; ".join(notes) + ("\n" + cell.failure if cell.failure else "")
        self.cells.extend(cells)
        self._print(cells)

    def _print(self, cells: list[Cell]) -> None:
        for c in cells:
            share = "" if c.identical_share is None else f"{100 * c.identical_share:6.2f}%"
            ftz = "" if c.ftz_elements is None else f" ftz={c.ftz_elements}"
            self.log(
                f"{c.backend:>16} {c.dtype:>8} {c.loss:>5} {c.quantity:>11} {c.weighting:>10} "
                f"{c.reduction:>4}  torch {fmt_ulps(c.ulp_vs_torch):>7} ulp {share:>7}  "
                f"exact {fmt_ulps(c.ulp_vs_exact):>7} (torch {fmt_ulps(c.torch_ulp_vs_exact):>7})"
                f"  tol {c.tolerance_ulps:>3}  {'ok' if c.passed else 'FAIL'}{ftz}"
            )


# --------------------------------------------------------------------------- reports
def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "os": platform.platform(),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def versions(backends: list[Backend]) -> dict[str, str]:
    import importlib.metadata as md

    v = {"xbce": xbce.__version__, "torch": torch.__version__, "numpy": np.__version__}
    for b in backends:
        for dist in {
            "jax": ["jax", "jaxlib"],
            "jax_gpu": ["jax", "jaxlib"],
            "dask": ["dask"],
            "array_api_strict": ["array-api-strict"],
            "cupy": ["cupy-cuda12x", "cupy"],
        }.get(b.name, []):
            try:
                v[dist] = md.version(dist)
            except md.PackageNotFoundError:
                continue
    with contextlib.suppress(md.PackageNotFoundError):
        v["array-api-compat"] = md.version("array-api-compat")
    return v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--backends",
        default="",
        help="comma-separated backends (default: every CPU backend that imports: "
        f"{', '.join(CPU_BACKENDS)}; also: cupy, torch_cuda, jax_gpu)",
    )
    ap.add_argument("--dtypes", default=",".join(DTYPES), help="comma-separated dtypes")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory of the reports (default: build/parity, ignored by git)",
    )
    ap.add_argument(
        "--update-docs",
        action="store_true",
        help="write the committed report, docs/parity/ (a maintainer's refresh)",
    )
    ap.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "gpu"),
        help="cpu (default): the CPU backends; gpu: torch_cuda, cupy, jax_gpu "
        "(those that import), report name gpu",
    )
    ap.add_argument(
        "--name",
        default=None,
        help="file name stem (default: cpu, or gpu when a GPU backend is swept)",
    )
    ap.add_argument("--rows", type=int, default=100, help="corpus rows (default 100)")
    ap.add_argument("--cols", type=int, default=1000, help="corpus columns (default 1000)")
    ap.add_argument("--seed", type=int, default=20130, help="corpus seed")
    ap.add_argument("--no-plot", action="store_true", help="skip the heat map")
    ap.add_argument("--verbose", "-v", action="store_true", help="a line per cell on stdout")
    ap.add_argument("--quiet", action="store_true", help="(the default) no per-cell lines")
    ap.add_argument("--no-mixed", action="store_true", help="skip the mixed-dtype sweep")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = ROOT / ("docs/parity" if args.update_docs else "build/parity")

    backends: list[Backend] = []
    if args.backends:
        names = [n.strip() for n in args.backends.split(",") if n.strip()]
        for n in names:
            if n not in ALL_BACKENDS:
                ap.error(f"unknown backend {n!r}; known: {', '.join(ALL_BACKENDS)}")
            try:  # asked for by name: unavailable is an error
                backends.append(load(n))
            except (ImportError, RuntimeError) as e:
                ap.error(f"backend {n} is not available here: {e}")
    else:
        for n in CPU_BACKENDS if args.device == "cpu" else GPU_BACKENDS:
            try:
                backends.append(load(n))
            except (ImportError, RuntimeError) as e:
                print(f"backend {n}: skipped, not available ({e})")
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for d in dtypes:
        if d not in DTYPES:
            ap.error(f"unknown dtype {d!r}")
    name = args.name or (
        "gpu" if any(b.name in ("cupy", "torch_cuda", "jax_gpu") for b in backends) else "cpu"
    )
    print(
        f"backends: {', '.join(b.name for b in backends)}; dtypes: {', '.join(dtypes)}; "
        f"{args.rows} x {args.cols} = {args.rows * args.cols} elements per cell"
    )

    t0 = time.perf_counter()
    sweep = Sweep(
        backends,
        dtypes,
        args.rows,
        args.cols,
        args.seed,
        log=print if args.verbose else (lambda s: None),
    )
    sweep.run()
    t1 = time.perf_counter()
    sweep.run_layouts()
    sweep.timings["layouts"] = time.perf_counter() - t1
    mixed_cells = []
    if not args.no_mixed:
        import mixed

        t1 = time.perf_counter()
        mixed_cells = mixed.sweep(backends, seed=args.seed)
        sweep.timings["mixed dtypes"] = time.perf_counter() - t1
    elapsed = time.perf_counter() - t0

    from report import write_reports

    meta = {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "nox -s parity"
        + (" -- " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""),
        "machine": machine(),
        "versions": versions(backends),
        "backends": [b.name for b in backends],
        "dtypes": dtypes,
        "rows": args.rows,
        "cols": args.cols,
        "elements_per_cell": args.rows * args.cols,
        "seed": args.seed,
        "exact_reference": {
            "float16/bfloat16/float32": "float64 (NumPy)",
            "float64": (
                "x87 80-bit long double (NumPy longdouble), checked against mpmath"
                if LONGDOUBLE_OK
                else "none: long double is no wider than double here"
            ),
        },
        **sweep.meta,
        "seconds": round(elapsed, 1),
        "seconds_per_backend_dtype": {k: round(v, 1) for k, v in sweep.timings.items()},
    }
    paths = write_reports(
        sweep.cells, meta, args.out, name, plot=not args.no_plot, mixed=mixed_cells,
        layouts=sweep.layout_cells,
    )
    failed = [c for c in sweep.cells + sweep.layout_cells if not c.passed]
    mixed_failed = []
    if mixed_cells:
        import mixed

        mixed_failed = mixed.failing(mixed_cells)
        print(f"\nmixed dtypes: {len(mixed_cells)} combinations, {len(mixed_failed)} failing")
    print(f"\n{len(sweep.cells)} cells and {len(sweep.layout_cells)} layout cells, "
          f"{len(failed)} failing, {elapsed:.0f} s")
    for p in paths:
        print(f"wrote {p}")
    if not args.update_docs and args.out == ROOT / "build/parity":
        print("(not the committed report: `nox -s parity -- --update-docs` refreshes it)")
    return 1 if failed or mixed_failed else 0


if __name__ == "__main__":
    sys.exit(main())
