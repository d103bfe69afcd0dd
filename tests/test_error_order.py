"""Several errors at once: xbce raises the one torch raises first, on every backend.

torch makes its checks in one order (``torch/nn/functional.py``, then the autograd
kernel, then ``aten/src/ATen/native/Loss.cpp``): for ``binary_cross_entropy`` the shape
check and ``broadcast_shapes(target, weight)``, the refusal of a weight that requires
grad, TensorIterator's dtype check, the kernel's dtype dispatch and per-element value
check, then ``loss.mul_(weight)`` (growth of the result, then the weight's dtype); for
``binary_cross_entropy_with_logits`` the shape check, the refusal (``weight``, then
``pos_weight``), ``log_sigmoid(input)``, ``pos_weight - 1`` (bool), ``.mul(target)``
(broadcast), ``log_sigmoid.mul_(...)`` (growth, dtype), ``(1 - target).mul_(input)``
(the target's dtype), ``loss.mul_(weight)``. Each case below combines two or more
errors; the expectation is the exception torch raises for the same arguments,
computed in the test.

On torch tensors the message is torch's, character for character; elsewhere it is
torch's message in the library's words (its dtype names, shapes as tuples), as in
test_errors.py. Dask reads no values when the graph is built: there an error that
needs no values is raised at once, before the value error torch would have raised
first (the one torch raises for the same arguments with valid values, computed here).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import Backend

import xbce

FUNCS = {
    "bce": (xbce.binary_cross_entropy, TF.binary_cross_entropy),
    "bcewl": (xbce.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits),
}

#: c10's names of the dtypes below, and the natural names other libraries use
LIBRARY_NAMES = {
    "Float": "float32",
    "Double": "float64",
    "Long": "int64",
    "Bool": "bool",
    "ComplexFloat": "complex64",
    "ComplexDouble": "complex128",
}


@dataclass(frozen=True)
class Arg:
    """An argument: shape, dtype and fill value (``None`` fills ones / True)."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    fill: float | None = None
    requires_grad: bool = False

    def tensor(self) -> torch.Tensor:
        dtype = getattr(torch, self.dtype)
        t = torch.full(self.shape, 1.0 if self.fill is None else self.fill).to(dtype)
        return t.requires_grad_(True) if self.requires_grad else t


@dataclass(frozen=True)
class Case:
    op: str
    input: Arg
    target: Arg
    weight: Arg | None = None
    pos_weight: Arg | None = None
    #: arguments that have a value error (BCE): on Dask, torch's error for valid values
    valid: dict[str, Arg] = field(default_factory=dict)

    def tensors(self, *, valid: bool = False) -> tuple[list[torch.Tensor], dict[str, Any]]:
        args = {"input": self.input, "target": self.target}
        if valid:
            args.update(self.valid)
        kw: dict[str, Any] = {}
        if self.weight is not None:
            kw["weight"] = self.weight.tensor()
        if self.pos_weight is not None:
            kw["pos_weight"] = self.pos_weight.tensor()
        return [args["input"].tensor(), args["target"].tensor()], kw

    def dtypes(self) -> set[str]:
        args = (self.input, self.target, self.weight, self.pos_weight)
        return {a.dtype for a in args if a is not None}


def half(shape: tuple[int, ...] = (2,), dtype: str = "float32") -> Arg:
    return Arg(shape, dtype, 0.5)


ONE = Arg((2,))
BAD_X = Arg((2,), fill=1.5)  # outside [0, 1]
BAD_Y = Arg((2,), fill=2.0)
COMPLEX = Arg((2,), "complex64")

#: combinations of errors on any backend (no weight that requires grad)
CASES = {
    # BCE: the values are checked before the weight is multiplied in
    "bce: input out of range, weight grows the result": Case(
        "bce", Arg((1,), fill=1.5), Arg((1,)), Arg((2, 1)), valid={"input": half((1,))}),
    "bce: target out of range, weight grows the result": Case(
        "bce", half(), BAD_Y, Arg((2, 2)), valid={"target": ONE}),
    "bce: 0-d input out of range, weight (2,)": Case(
        "bce", Arg((), fill=1.5), Arg(()), Arg((2,)), valid={"input": half(())}),
    "bce: input out of range, complex weight": Case(
        "bce", BAD_X, ONE, COMPLEX, valid={"input": half()}),
    "bce: complex weight": Case("bce", half(), ONE, COMPLEX),
    "bce: complex weight that grows the result": Case(
        "bce", half(), ONE, Arg((2, 2), "complex64")),
    "bce: 0-d complex128 weight": Case("bce", half(), ONE, Arg((), "complex128")),
    # BCE: broadcast_shapes(target, weight) comes before everything but the shapes
    "bce: weight does not broadcast, f64 target": Case(
        "bce", half(), Arg((2,), "float64"), Arg((3,))),
    "bce: weight does not broadcast, int input": Case(
        "bce", Arg((2,), "int64"), ONE, Arg((3,))),
    "bce: weight does not broadcast, input out of range": Case("bce", BAD_X, ONE, Arg((3,))),
    "bce: weight does not broadcast, complex weight": Case(
        "bce", half(), ONE, Arg((3,), "complex64")),
    "bce: weight grows the result, f64 target": Case(
        "bce", half(), Arg((2,), "float64"), Arg((2, 2))),
    "bce: f64 target, input out of range": Case("bce", BAD_X, Arg((2,), "float64")),
    "bce: target shape, weight does not broadcast": Case(
        "bce", half(), Arg((3,)), Arg((4,))),
    # BCE with logits: pos_weight - 1 refuses a bool before .mul(target) broadcasts
    "bcewl: bool pos_weight that does not broadcast": Case(
        "bcewl", ONE, ONE, pos_weight=Arg((3,), "bool")),
    "bcewl: bool pos_weight that grows the result": Case(
        "bcewl", ONE, ONE, pos_weight=Arg((2, 2), "bool")),
    "bcewl: bool pos_weight, int target": Case(
        "bcewl", ONE, Arg((2,), "int64"), pos_weight=Arg((2,), "bool")),
    "bcewl: int input, bool pos_weight": Case(
        "bcewl", Arg((2,), "int64"), ONE, pos_weight=Arg((3,), "bool")),
    # BCE with logits: log_sigmoid(x).mul_(log_weight) before (1 - target).mul_(input)
    "bcewl: complex pos_weight": Case("bcewl", ONE, ONE, pos_weight=COMPLEX),
    "bcewl: complex pos_weight, bool target": Case(
        "bcewl", ONE, Arg((2,), "bool"), pos_weight=COMPLEX),
    "bcewl: complex pos_weight, weight does not broadcast": Case(
        "bcewl", ONE, ONE, Arg((3,)), COMPLEX),
    "bcewl: complex pos_weight that grows the result": Case(
        "bcewl", ONE, ONE, pos_weight=Arg((2, 2), "complex64")),
    "bcewl: complex pos_weight, f64 target": Case(
        "bcewl", ONE, Arg((2,), "float64"), pos_weight=COMPLEX),
    "bcewl: 0-d complex128 pos_weight": Case(
        "bcewl", ONE, ONE, pos_weight=Arg((), "complex128")),
    # BCE with logits: loss.mul_(weight) comes last
    "bcewl: complex weight": Case("bcewl", ONE, ONE, COMPLEX),
    "bcewl: complex weight, int target": Case("bcewl", ONE, Arg((2,), "int64"), COMPLEX),
    "bcewl: complex weight that does not broadcast": Case(
        "bcewl", ONE, ONE, Arg((3,), "complex64")),
    "bcewl: 0-d complex128 weight": Case("bcewl", ONE, ONE, Arg((), "complex128")),
}


def torch_error(case: Case, *, valid: bool = False) -> BaseException:
    _, theirs = FUNCS[case.op]
    args, kw = case.tensors(valid=valid)
    with pytest.raises(Exception) as info:  # noqa: PT011 - we want torch's own class
        theirs(*args, **kw)
    return info.value


def in_library_words(message: str, names: dict[str, str] | None = None) -> str:
    """torch's message as xbce words it off torch: the library's dtype names (``names``:
    those of the arrays passed, by c10 name, e.g. ``int32`` for torch's ``Long`` on JAX
    with x64 off; else :data:`LIBRARY_NAMES`), shapes as tuples, the op's name instead
    of its CPU kernel's."""
    names = {**LIBRARY_NAMES, **(names or {})}
    message = re.sub(
        r"torch\.Size\(\[([^\]]*)\]\)",
        lambda m: str(tuple(int(n) for n in m.group(1).split(",") if n.strip())),
        message,
    )
    message = message.replace('"log_sigmoid_cpu"', '"log_sigmoid"')
    for torch_name, name in names.items():
        message = re.sub(rf"\b{torch_name}\b", name, message)
    return message


def _c10_name(dtype: torch.dtype) -> str:
    natural = str(dtype).removeprefix("torch.")
    return next((c10 for c10, n in LIBRARY_NAMES.items() if n == natural), natural)


def on(backend: Backend, t: torch.Tensor) -> Any:
    """A CPU tensor as the backend's array, dtype kept."""
    name = str(t.dtype).removeprefix("torch.")
    if name in backend.dtypes:
        return backend.asarray(t, name)
    host = t.numpy()
    if backend.name == "dask":
        import dask.array as da

        return da.from_array(host)
    return backend.xp.asarray(host)


def _raised(fn: Any, *args: Any, **kwargs: Any) -> BaseException | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a complex weight xbce failed to refuse
            out = fn(*args, **kwargs)
            if hasattr(out, "compute"):
                out.compute()  # Dask: value errors are raised here
    except Exception as error:
        return error
    return None


@pytest.mark.parametrize("name", CASES)
def test_first_error_is_torchs(backend: Backend, name: str) -> None:
    case = CASES[name]
    if {"float64", "complex128"} & case.dtypes() and "float64" not in backend.dtypes:
        pytest.skip(f"{backend.name} has no float64 here (JAX: the x64 run has it)")
    expected = torch_error(case)
    if backend.lazy and case.valid:  # no value is read before the graph is computed
        expected = torch_error(case, valid=True)
    ours, _ = FUNCS[case.op]
    tensors, kw = case.tensors()
    args = [on(backend, a) for a in tensors]
    bkw = {k: on(backend, v) for k, v in kw.items()}
    got = _raised(ours, *args, **bkw)
    assert got is not None, f"xbce accepted what torch refuses with {expected!r}"
    assert isinstance(got, type(expected)), f"{got!r} is not a {type(expected)}"
    if backend.name.startswith("torch"):
        want = str(expected)
    else:
        names = {_c10_name(t.dtype): str(a.dtype).rsplit(".", 1)[-1]
                 for t, a in zip([*tensors, *kw.values()], [*args, *bkw.values()], strict=True)}
        want = in_library_words(str(expected), names)
    assert str(got) == want


def test_the_cases_are_several_errors() -> None:
    """Each case above has a second error: with the first one removed, torch still
    raises (or, for a value error, raises the one Dask sees first)."""
    for name, case in CASES.items():
        first = torch_error(case)
        if case.valid:
            second = torch_error(case, valid=True)
            assert str(second) != str(first), name
    # and the library words differ from torch's where the message names a dtype
    assert in_library_words("Found dtype Double but expected Float") == (
        "Found dtype float64 but expected float32"
    )


# ----------------------------------------------------- torch only: requires_grad
RG = Arg((2,), requires_grad=True)

#: weights that require grad, with another error (torch tensors only)
RG_CASES = {
    "bcewl: weight requires grad and grows the result": Case(
        "bcewl", Arg(()), Arg(()), Arg((2,), requires_grad=True)),
    "bcewl: pos_weight requires grad and grows the result": Case(
        "bcewl", Arg(()), Arg(()), pos_weight=Arg((2,), requires_grad=True)),
    "bcewl: both require grad": Case("bcewl", ONE, ONE, RG, RG),
    "bcewl: pos_weight requires grad, int input": Case(
        "bcewl", Arg((2,), "int64"), ONE, pos_weight=RG),
    "bcewl: pos_weight requires grad, bool target": Case(
        "bcewl", ONE, Arg((2,), "bool"), pos_weight=RG),
    "bcewl: weight requires grad, bool pos_weight": Case(
        "bcewl", ONE, ONE, RG, Arg((2,), "bool")),
    "bcewl: pos_weight requires grad and does not broadcast": Case(
        "bcewl", ONE, ONE, pos_weight=Arg((3,), requires_grad=True)),
    "bcewl: weight requires grad, target shape": Case("bcewl", ONE, Arg((3,)), RG),
    "bce: weight requires grad and grows the result": Case(
        "bce", Arg((), fill=0.5), Arg(()), Arg((2,), requires_grad=True)),
    "bce: weight requires grad, f64 target": Case("bce", half(), Arg((2,), "float64"), RG),
    "bce: weight requires grad, int input": Case("bce", Arg((2,), "int64"), ONE, RG),
    "bce: weight requires grad, input out of range": Case("bce", BAD_X, ONE, RG),
    "bce: weight requires grad and does not broadcast": Case(
        "bce", half(), ONE, Arg((3,), requires_grad=True)),
}


@pytest.mark.parametrize("name", RG_CASES)
def test_requires_grad_is_refused_in_torchs_order(name: str) -> None:
    case = RG_CASES[name]
    expected = torch_error(case)
    ours, _ = FUNCS[case.op]
    args, kw = case.tensors()
    got = _raised(ours, *args, **kw)
    assert got is not None, f"xbce accepted what torch refuses with {expected!r}"
    assert isinstance(got, type(expected)), f"{got!r} is not a {type(expected)}"
    assert str(got) == str(expected)


@pytest.mark.parametrize("op", FUNCS)
def test_without_grad_mode_the_other_error(op: str) -> None:
    """Under ``no_grad`` torch does not refuse the weight: the next error is raised."""
    case = Case(op, Arg(()), Arg(()), Arg((2,), requires_grad=True))
    with torch.no_grad():
        expected = torch_error(case)
        assert "not differentiable" not in str(expected)
        ours, _ = FUNCS[op]
        args, kw = case.tensors()
        got = _raised(ours, *args, **kw)
    assert isinstance(got, type(expected)), f"{got!r} is not a {type(expected)}"
    assert str(got) == str(expected)


def test_on_numpy_a_weight_that_does_not_broadcast_comes_before_the_dtype() -> None:
    """The issue's case: NumPy arrays, a (3,) weight and a float64 target."""
    x, y, w = np.full(2, 0.5, np.float32), np.ones(2), np.ones(3, np.float32)
    expected = _raised(TF.binary_cross_entropy, torch.from_numpy(x), torch.from_numpy(y),
                       weight=torch.from_numpy(w))
    got = _raised(xbce.binary_cross_entropy, x, y, weight=w)
    assert expected is not None
    assert got is not None
    assert isinstance(got, type(expected))
    assert str(got) == in_library_words(str(expected))
