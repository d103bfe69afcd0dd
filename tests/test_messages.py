"""PyTorch's error messages, character for character, on torch tensors.

Every expectation is the exception torch 2.13 raises for the same arguments, computed
in the test. On torch tensors xbce must raise an exception catchable as torch's class,
with torch's message; on other libraries the same class, with the library's own dtype
names (checked in test_errors.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import Backend

import xbce

DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}


def _tensor(shape: tuple[int, ...], dtype: str, fill: float = 0.5) -> torch.Tensor:
    if dtype == "bool":
        return torch.ones(shape, dtype=torch.bool)
    if dtype.startswith(("int", "uint")):
        return torch.ones(shape, dtype=DTYPES[dtype])
    return torch.full(shape, fill, dtype=DTYPES[dtype])


def _raised(fn, *args, **kwargs) -> BaseException | None:  # type: ignore[no-untyped-def]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. complex -> real casts
            fn(*args, **kwargs)
    except Exception as error:
        return error
    return None


def _same_error(ours, theirs, *args, **kwargs) -> BaseException:  # type: ignore[no-untyped-def]
    expected = _raised(theirs, *args, **kwargs)
    assert expected is not None, "torch accepts these arguments: not an error case"
    got = _raised(ours, *args, **kwargs)
    assert got is not None, f"xbce accepted what torch refuses with {expected!r}"
    assert isinstance(got, type(expected)), f"{type(got)} is not a {type(expected)}"
    assert str(got) == str(expected)
    return got


# ---------------------------------------------------------------------------- dtypes
FLOATS = ["float16", "bfloat16", "float32", "float64"]
OTHERS = ["int64", "int32", "int16", "int8", "uint8", "bool", "complex64", "complex128"]
BCE_PAIRS = [(x, y) for x in FLOATS + OTHERS for y in FLOATS + OTHERS if x != y or x in OTHERS]


@pytest.mark.parametrize(("xdtype", "ydtype"), BCE_PAIRS)
def test_bce_dtype_errors(xdtype: str, ydtype: str) -> None:
    x, y = _tensor((2,), xdtype), _tensor((2,), ydtype)
    _same_error(xbce.binary_cross_entropy, TF.binary_cross_entropy, x, y)


@pytest.mark.parametrize("xdtype", OTHERS)
@pytest.mark.parametrize("tdtype", ["float32", "float64", "int64"])
def test_bcewl_input_dtype_errors(xdtype: str, tdtype: str) -> None:
    x, t = _tensor((2,), xdtype), _tensor((2,), tdtype)
    _same_error(xbce.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits, x, t)


@pytest.mark.parametrize("xdtype", FLOATS)
@pytest.mark.parametrize("tdtype", ["int64", "int32", "uint8", "bool"])
@pytest.mark.parametrize("with_pos_weight", [False, True])
def test_bcewl_target_dtype_errors(xdtype: str, tdtype: str, with_pos_weight: bool) -> None:
    x, t = _tensor((2,), xdtype), _tensor((2,), tdtype)
    kw = {"pos_weight": torch.tensor([2.0])} if with_pos_weight else {}
    _same_error(
        xbce.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits, x, t, **kw
    )


def test_bcewl_bool_pos_weight() -> None:
    x = t = torch.zeros(2)
    _same_error(xbce.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits,
                x, t, pos_weight=torch.tensor([True]))


# ---------------------------------------------------------------------------- shapes
@pytest.mark.parametrize(
    ("xshape", "wshape"),
    [((2, 3), w) for w in [(2,), (4,), (3, 2), (1, 2, 3), (2, 2, 3), (2, 1, 1), (2, 2)]]
    + [((3, 1), w) for w in [(5,), (2, 5), (2, 1, 1), (3, 2)]]
    + [((), w) for w in [(2,), (1,)]],
)
def test_bce_weight_shape_errors(xshape: tuple[int, ...], wshape: tuple[int, ...]) -> None:
    x = y = torch.full(xshape, 0.5)
    _same_error(xbce.binary_cross_entropy, TF.binary_cross_entropy, x, y, torch.ones(wshape))


WL_SHAPES = [(3,), (5,), (5, 3), (6, 4), (2, 5, 4), (2, 1, 1), (3, 5, 4), (5, 4, 1), (4, 1),
             (1, 1, 1)]


@pytest.mark.parametrize("wshape", WL_SHAPES)
@pytest.mark.parametrize("which", ["weight", "pos_weight"])
def test_bcewl_weight_shape_errors(wshape: tuple[int, ...], which: str) -> None:
    x, t = torch.zeros(5, 4), torch.zeros(5, 4)
    _same_error(xbce.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits,
                x, t, **{which: torch.ones(wshape)})


@pytest.mark.parametrize("name", ["bce", "bcewl"])
@pytest.mark.parametrize(("xshape", "yshape"), [((3, 1), (3,)), ((2, 3), (3, 2)), ((), (1,))])
def test_input_target_shape_error(name: str, xshape, yshape) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = {
        "bce": (xbce.binary_cross_entropy, TF.binary_cross_entropy),
        "bcewl": (xbce.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits),
    }[name]
    got = _same_error(ours, theirs, torch.full(xshape, 0.5), torch.full(yshape, 0.5))
    assert isinstance(got, xbce.ShapeMismatchError)


# ------------------------------------------------------------ several errors at once
# torch raises the first error it meets; xbce checks in torch's order
SEVERAL = {
    "bce: f64 target and weight (2,)": (
        "bce", torch.full((2, 3), 0.5), torch.full((2, 3), 0.5).double(), {"weight": (2,)}),
    "bce: f64 target and weight (2, 2, 3)": (
        "bce", torch.full((2, 3), 0.5), torch.full((2, 3), 0.5).double(),
        {"weight": (2, 2, 3)}),
    "bce: int input and float target": (
        "bce", torch.tensor([0, 1]), torch.tensor([0.0, 1.0]), {}),
    "bcewl: int input and pos_weight (3,)": (
        "bcewl", torch.tensor([0, 1]), torch.tensor([0.0, 1.0]), {"pos_weight": (3,)}),
    "bcewl: int target and pos_weight (3,)": (
        "bcewl", torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), {"pos_weight": (3,)}),
    "bcewl: bool target and weight (3,)": (
        "bcewl", torch.tensor([0.0, 1.0]), torch.tensor([False, True]), {"weight": (3,)}),
    "bcewl: pos_weight (3,) and weight (4,)": (
        "bcewl", torch.zeros(2, 2), torch.zeros(2, 2), {"pos_weight": (3,), "weight": (4,)}),
    "bcewl: shape and int input": (
        "bcewl", torch.tensor([0, 1]), torch.tensor([0.0, 1.0, 1.0]), {}),
}


@pytest.mark.parametrize("case", SEVERAL)
def test_first_error_is_torchs(case: str) -> None:
    name, x, y, shapes = SEVERAL[case]
    kw = {k: torch.ones(v) for k, v in shapes.items()}
    ours, theirs = {
        "bce": (xbce.binary_cross_entropy, TF.binary_cross_entropy),
        "bcewl": (xbce.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits),
    }[name]
    _same_error(ours, theirs, x, y, **kw)


# ------------------------------------------------ other libraries: same classes
@pytest.mark.parametrize(
    ("xdtype", "ydtype"),
    [("float32", "float64"), ("int64", "float32"), ("int64", "int64"), ("float64", "float32")],
)
def test_other_libraries_raise_torchs_class(backend: Backend, xdtype: str, ydtype: str) -> None:
    expected = _raised(TF.binary_cross_entropy, _tensor((2,), xdtype), _tensor((2,), ydtype))
    assert expected is not None
    x, y = (np.full(2, 0.5 if "float" in d else 1, dtype=d) for d in (xdtype, ydtype))
    if backend.name == "dask":
        import dask.array as da

        x, y = da.from_array(x), da.from_array(y)
    else:
        x, y = backend.xp.asarray(x), backend.xp.asarray(y)
    got = _raised(xbce.binary_cross_entropy, x, y)
    assert isinstance(got, type(expected)), (got, expected)
    if not backend.name.startswith("torch"):  # the library's names, never torch's
        for torch_name in ("Float", "Double", "Long"):
            assert f" {torch_name}" not in str(got)
            assert f"'{torch_name}'" not in str(got)
