"""Read-only NumPy arrays and NumPy scalars, on every path.

Read-only arrays (``flags.writeable = False``) as input, target, weight, pos_weight and
grad_output: the forward, each reduction, the explicit backward functions and the
Module-like callables work, leave them unchanged, and give torch's values (torch on
``torch.from_numpy`` of the same values). NumPy scalars are 0-d arrays of their dtype
(``np.float64`` too, although it is a Python ``float``): a scalar input gives a 0-d
NumPy array (xbce's documented result for 0-d inputs, never a NumPy scalar), and the
other dtypes (bool, integers, complex) raise torch's errors. NumPy arrays and scalars
next to torch tensors or JAX arrays are converted as ``torch.from_numpy`` would be.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import BACKENDS, Backend, load
from comparisons import check, loss_scale
from grads import BACKWARDS, Case

import xbce
from xbce._blocks import BLOCKED_FROM  # the size from which NumPy evaluates in blocks

REDUCTIONS = ["none", "mean", "sum"]
FUNCS = {
    "bce": (xbce.binary_cross_entropy, TF.binary_cross_entropy),
    "bcewl": (xbce.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits),
}
NUMPY = ["numpy"] if "numpy" in BACKENDS else []
#: backends a NumPy argument joins (it is converted to their library)
JOINS = [b for b in ("torch", "jax") if b in BACKENDS]
FLOATS = ["float16", "float32", "float64"]


def _ro(a: Any) -> np.ndarray:
    out = np.array(a)  # a copy, owned here
    out.flags.writeable = False
    return out


def _T(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(a))


def _data(op: str, rng: np.random.Generator, shape: tuple[int, ...],
          dtype: str) -> dict[str, np.ndarray]:
    x = rng.uniform(0.0, 1.0, shape) if op == "bce" else rng.normal(0.0, 4.0, shape)
    return {"input": x.astype(dtype), "target": rng.uniform(0.0, 1.0, shape).astype(dtype),
            "weight": rng.uniform(0.0, 3.0, shape[-1:]).astype(dtype),
            "pos_weight": rng.uniform(0.5, 4.0, shape[-1:]).astype(dtype)}


def _kw(op: str, arrays: dict[str, Any], reduction: str) -> dict[str, Any]:
    kw = {"weight": arrays["weight"], "reduction": reduction}
    if op == "bcewl":
        kw["pos_weight"] = arrays["pos_weight"]
    return kw


def _check_loss(backend: Backend, op: str, got: Any, tensors: dict[str, torch.Tensor],
                reduction: str, dtype: str, what: str) -> None:
    kw = _kw(op, tensors, reduction)
    expected = FUNCS[op][1](tensors["input"], tensors["target"], **kw)
    scale = loss_scale(op, tensors["input"], tensors["target"], kw["weight"],
                       kw.get("pos_weight"), reduction)
    check(backend, got, expected, op if reduction == "none" else "reduced", dtype,
          scale=scale, what=what)


# ------------------------------------------------------------- read-only arrays
@pytest.mark.parametrize("name", NUMPY)
@pytest.mark.parametrize("op", FUNCS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("rows", [1, BLOCKED_FROM // 7 + 1], ids=["small", "blocked"])
def test_read_only_arrays(name: str, op: str, reduction: str, rows: int,
                          rng: np.random.Generator) -> None:
    backend = load(name)
    data = _data(op, rng, (rows, 7), "float32")
    ro = {k: _ro(v) for k, v in data.items()}
    tensors = {k: _T(v) for k, v in data.items()}
    got = FUNCS[op][0](ro["input"], ro["target"], **_kw(op, ro, reduction))
    _check_loss(backend, op, got, tensors, reduction, "float32", f"{op} read-only")
    module = (xbce.BCELoss(weight=ro["weight"], reduction=reduction) if op == "bce" else
              xbce.BCEWithLogitsLoss(weight=ro["weight"], pos_weight=ro["pos_weight"],
                                     reduction=reduction))
    _check_loss(backend, op, module(ro["input"], ro["target"]), tensors, reduction,
                "float32", f"{op} module read-only")
    # the explicit backward functions, with a read-only grad_output
    g = np.float32(0.37) if reduction != "none" else rng.uniform(0.5, 2.0, ro["input"].shape)
    g = _ro(np.asarray(g, np.float32))
    case = Case(op, tensors["input"], tensors["target"], _T(g), reduction,
                weight=tensors["weight"], pos_weight=tensors["pos_weight"] if op == "bcewl"
                else None)
    ex, ey = case.reference()
    (qx, qy), (sx, sy) = case.quantities(), case.scales()
    dx, dy = BACKWARDS[op]
    kw = _kw(op, ro, reduction)
    check(backend, dx(g, ro["input"], ro["target"], **kw), ex, qx, "float32", scale=sx,
          what=f"{op} d/dinput read-only")
    check(backend, dy(g, ro["input"], ro["target"], **kw), ey, qy, "float32", scale=sy,
          what=f"{op} d/dtarget read-only")
    for k, v in ro.items():
        np.testing.assert_array_equal(v, data[k], err_msg=k)  # unchanged (bit for bit)
        assert not v.flags.writeable


@pytest.mark.parametrize("name", JOINS)
@pytest.mark.parametrize("op", FUNCS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_read_only_arrays_join_another_library(name: str, op: str, reduction: str,
                                               rng: np.random.Generator) -> None:
    """A read-only NumPy target, weight and pos_weight next to the other library's
    input; with torch, autograd through them too."""
    backend = load(name)
    data = _data(op, rng, (4, 5), "float32")
    ro = {k: _ro(v) for k, v in data.items()}
    tensors = {k: _T(v) for k, v in data.items()}
    x = backend.asarray(tensors["input"], "float32")
    got = FUNCS[op][0](x, ro["target"], **_kw(op, ro, reduction))
    _check_loss(backend, op, got, tensors, reduction, "float32", f"{op} {name} + read-only")
    if name == "torch":
        xg = tensors["input"].clone().requires_grad_()
        loss = FUNCS[op][0](xg, ro["target"], **_kw(op, ro, reduction))
        g = torch.ones(loss.shape)
        (gx,) = torch.autograd.grad(loss, xg, g)
        case = Case(op, tensors["input"], tensors["target"], g, reduction,
                    weight=tensors["weight"],
                    pos_weight=tensors["pos_weight"] if op == "bcewl" else None)
        check(backend, gx, case.reference()[0], case.quantities()[0], "float32",
              scale=case.scales()[0], what=f"{op} autograd + read-only")
    for k, v in ro.items():
        np.testing.assert_array_equal(v, data[k], err_msg=k)


# ---------------------------------------------------------------- NumPy scalars
@pytest.mark.parametrize("name", NUMPY)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", FUNCS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_scalar_inputs_give_zero_d_arrays(name: str, dtype: str, op: str,
                                          reduction: str) -> None:
    backend = load(name)
    kind = getattr(np, dtype)
    x, y = (kind(0.3), kind(1.0)) if op == "bce" else (kind(-1.7), kind(0.25))
    w, p = kind(2.5), kind(3.3)
    kw: dict[str, Any] = {"weight": w, "reduction": reduction}
    if op == "bcewl":
        kw["pos_weight"] = p
    got = FUNCS[op][0](x, y, **kw)
    assert type(got) is np.ndarray, type(got)  # a 0-d array, as for 0-d inputs
    assert got.shape == ()
    assert got.dtype == kind
    tensors = {"input": _T(x), "target": _T(y), "weight": _T(w), "pos_weight": _T(p)}
    _check_loss(backend, op, got, tensors, reduction, dtype, f"{op} {dtype} scalars")
    module = (xbce.BCELoss(weight=w, reduction=reduction) if op == "bce" else
              xbce.BCEWithLogitsLoss(weight=w, pos_weight=p, reduction=reduction))
    assert type(module(x, y)) is np.ndarray
    _check_loss(backend, op, module(x, y), tensors, reduction, dtype, f"{op} module")
    case = Case(op, _T(x), _T(y), _T(kind(0.37)), reduction, weight=_T(w),
                pos_weight=_T(p) if op == "bcewl" else None)
    refs, quantities, scales = case.reference(), case.quantities(), case.scales()
    for fn, ref, q, s in zip(BACKWARDS[op], refs, quantities, scales, strict=True):
        got = fn(kind(0.37), x, y, **{k: v for k, v in kw.items()})
        assert type(got) is np.ndarray, fn.__name__
        assert (got.shape, got.dtype) == ((), kind), fn.__name__
        check(backend, got, ref, q, dtype, scale=s, what=fn.__name__)


@pytest.mark.parametrize("name", NUMPY + JOINS)
@pytest.mark.parametrize("dtype", ["float16", "float64"])
@pytest.mark.parametrize("role", ["weight", "pos_weight", "grad_output"])
def test_scalar_arguments_keep_their_dtype(name: str, dtype: str, role: str,
                                           rng: np.random.Generator) -> None:
    """A NumPy scalar weight, pos_weight or grad_output next to float32 arrays computes
    as its 0-d array would (torch's promotion of a 0-d tensor): ``np.float64(0.475...)``
    as pos_weight makes ``pos_weight - 1`` in float64, then rounds (a Python float would
    round 0.475... to float32 first: within the tolerance, but not torch's order)."""
    backend = load(name)
    data = _data("bcewl", rng, (4, 5), "float32")
    data["target"] = np.ones((4, 5), np.float32)  # (p - 1) * t is p - 1, rounded
    tensors = {k: _T(v) for k, v in data.items()}
    scalar = getattr(np, dtype)(0.47523185)
    x, y = (backend.asarray(tensors[k], "float32") for k in ("input", "target"))
    if role == "grad_output":
        got = xbce.binary_cross_entropy_with_logits_backward(scalar, x, y, reduction="sum")
        case = Case("bcewl", tensors["input"], tensors["target"], _T(scalar), "sum")
        check(backend, got, case.reference()[0].float(), "bcewl_grad", "float32",
              scale=case.scales()[0], what="grad_output")
        return
    got = xbce.binary_cross_entropy_with_logits(x, y, reduction="none", **{role: scalar})
    expected = TF.binary_cross_entropy_with_logits(
        tensors["input"], tensors["target"], reduction="none", **{role: _T(scalar)})
    scale = loss_scale("bcewl", tensors["input"], tensors["target"],
                       **{role: _T(scalar)})  # type: ignore[arg-type]
    check(backend, got, expected, "bcewl", "float32", scale=scale, what=role)


#: NumPy scalars of the dtypes the losses refuse somewhere, each role they take
ODD = [np.bool_(True), np.int8(1), np.uint8(1), np.int64(1), np.complex64(0.5),
       np.complex128(0.5), np.float16(0.5), np.float64(0.5)]
ROLES = ["input", "target", "weight", "pos_weight"]
#: c10's names of the NumPy dtypes (torch's messages name them so)
C10 = {"bool": "Bool", "int8": "Char", "uint8": "Byte", "int64": "Long", "float16": "Half",
       "float32": "Float", "float64": "Double", "complex64": "ComplexFloat",
       "complex128": "ComplexDouble"}


def _numpy_words(message: str) -> str:
    """torch's message in the words xbce uses off torch: NumPy's dtype names, and the
    kernel's name without its device suffix (``log_sigmoid_cpu``)."""
    message = message.replace('"log_sigmoid_cpu"', '"log_sigmoid"')
    names = {theirs: ours for ours, theirs in C10.items()}
    return re.sub(r"\b(" + "|".join(names) + r")\b", lambda m: names[m.group(1)], message)


@pytest.mark.parametrize("name", NUMPY + JOINS)
@pytest.mark.parametrize(("op", "role"), [(op, r) for op in FUNCS for r in ROLES
                                          if op == "bcewl" or r != "pos_weight"])
@pytest.mark.parametrize("scalar", ODD, ids=lambda s: type(s).__name__)
def test_odd_scalars_as_torch(name: str, op: str, role: str, scalar: Any) -> None:
    """Each NumPy scalar in each role: torch's result dtype, or torch's error (class and
    message; NumPy's dtype names when every array is NumPy). ``np.float64`` is a Python
    ``float`` too: it still keeps its dtype (a float64 target gives a float64 loss)."""
    backend = load(name)
    args: dict[str, Any] = {"input": np.float32(0.5), "target": np.float32(1.0)}
    args[role] = scalar
    ours, theirs = FUNCS[op]
    if name != "numpy":  # the other arguments of the other library
        args = {k: v if k == role else backend.asarray(_T(v), "float32")
                for k, v in args.items()}
    tensors = {k: _T(v) if isinstance(v, np.generic) else backend.to_torch(v)
               for k, v in args.items()}
    try:
        expected: Any = theirs(**tensors)
    except Exception as error:  # torch's own class is the expectation
        with pytest.raises(type(error)) as info:
            ours(**args)
        message = str(error) if name == "torch" else _numpy_words(str(error))
        assert str(info.value) == message
        return
    if expected.dtype.is_complex:
        # torch's BCE with logits of a complex target is complex; xbce refuses it, as
        # an integer target (a deliberate difference: the losses are for real values)
        with pytest.raises(xbce.UnsupportedDtypeError) as info:
            ours(**args)
        words = C10 if name == "torch" else {k: k for k in C10}
        assert str(info.value) == (
            f"result type {words['float32']} can't be cast to the desired output type "
            f"{words[type(scalar).__name__]}"
        )
        return
    got = ours(**args)
    assert backend.is_native(got)
    assert got.shape == ()
    assert backend.to_torch(got).dtype == expected.dtype
