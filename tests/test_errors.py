"""Errors and edge semantics: PyTorch's exceptions and messages, on every backend.

Each expectation is read off torch in the test itself (its exception and message for
the same arguments), except where xbce deliberately differs and says so: Dask raises
value errors when the graph is computed (from the chunk task that finds the bad value),
and the exception classes are catchable both as PyTorch's and as the natural Python
exception.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import Backend, rounded
from comparisons import assert_ulp_close, check, loss_scale
from tolerances import ulps

import xbce

FUNCS = {
    "bce": (xbce.binary_cross_entropy, TF.binary_cross_entropy),
    "bcewl": (xbce.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits),
}


def torch_error(fn, *args, **kwargs) -> BaseException:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception) as info:  # noqa: PT011 - we want torch's own class
        fn(*args, **kwargs)
    return info.value


def _materialize(a):  # type: ignore[no-untyped-def]
    return a.compute() if hasattr(a, "compute") else a


# ----------------------------------------------------------------------- reduction
@pytest.mark.parametrize("name", FUNCS)
def test_bad_reduction_raises_before_touching_data(name: str) -> None:
    ours, _ = FUNCS[name]
    with pytest.raises(ValueError, match=r"^avg is not a valid value for reduction$"):
        ours(object(), object(), reduction="avg")  # the arrays are never looked at
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        xbce.BCELoss(reduction="bogus")


def test_elementwise_mean_is_deprecated_mean(backend: Backend) -> None:
    x, y = backend.asarray([0.2, 0.7], "float32"), backend.asarray([0.0, 1.0], "float32")
    with pytest.warns(UserWarning, match="elementwise_mean") as record:
        got = xbce.binary_cross_entropy(x, y, reduction="elementwise_mean")
    # attributed to the caller's line (here), not to a line inside xbce
    assert [w.filename for w in record] == [__file__]
    for call in (
        lambda: xbce.BCEWithLogitsLoss(reduction="elementwise_mean"),
        lambda: xbce.binary_cross_entropy_backward(
            backend.asarray(1.0, "float32"), x, y, reduction="elementwise_mean"
        ),
    ):
        with pytest.warns(UserWarning, match="elementwise_mean") as record:
            call()
        assert [w.filename for w in record] == [__file__]
    expected = TF.binary_cross_entropy(
        rounded([0.2, 0.7], "float32"), rounded([0.0, 1.0], "float32")
    )
    check(backend, got, expected, "reduced", "float32",
          scale=loss_scale("bce", rounded([0.2, 0.7], "float32"),
                           rounded([0.0, 1.0], "float32"), reduction="mean"))


# --------------------------------------------------------------------------- shape
@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize(("xs", "ys"), [((3, 1), (3,)), ((2, 3), (3, 2)), ((), (1,))])
def test_shape_mismatch_is_torchs_value_error(backend: Backend, name: str, xs, ys) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = FUNCS[name]
    expected = torch_error(theirs, torch.full(xs, 0.5), torch.full(ys, 0.5))
    assert type(expected) is ValueError
    x, y = (
        backend.asarray(np.full(xs, 0.5), "float32"),
        backend.asarray(np.full(ys, 0.5), "float32"),
    )
    with pytest.raises(ValueError, match="size") as info:
        ours(x, y)
    if not backend.name.startswith("torch"):  # torch's message, shapes as tuples
        for shape in (xs, ys):
            expected = ValueError(str(expected).replace(f"torch.Size({list(shape)})", str(shape)))
    assert str(info.value) == str(expected)


# --------------------------------------------------------------------------- dtype
@pytest.mark.parametrize("name", FUNCS)
def test_integer_and_bool_input_rejected(backend: Backend, name: str) -> None:
    ours, theirs = FUNCS[name]
    for bad in (np.asarray([0, 1]), np.asarray([False, True])):
        expected = torch_error(theirs, torch.as_tensor(bad), torch.tensor([0.0, 1.0]))
        assert isinstance(expected, (NotImplementedError, RuntimeError))
        arr = backend.xp.asarray(bad) if backend.name != "dask" else _dask(bad)
        y = backend.asarray([0.0, 1.0], "float32")
        with pytest.raises(type(expected)) as info:
            ours(arr, y)
        assert isinstance(info.value, TypeError)  # and the natural Python class


def _dtype_name(dtype: object) -> str:
    return str(dtype).rsplit(".", 1)[-1].removesuffix("'>")


def _dask(a):  # type: ignore[no-untyped-def]
    import dask.array as da

    return da.from_array(a)


@pytest.mark.x64  # float64 on JAX: the x64 run
def test_bce_dtype_mismatch(backend: Backend) -> None:
    if "float64" not in backend.dtypes:
        pytest.skip(f"{backend.name} has no float64")
    expected = torch_error(
        TF.binary_cross_entropy, torch.tensor([0.5]), torch.tensor([0.5]).double()
    )
    assert str(expected) == "Found dtype Double but expected Float"
    with pytest.raises(RuntimeError) as info:
        xbce.binary_cross_entropy(
            backend.asarray([0.5], "float32"), backend.asarray([0.5], "float64")
        )
    assert isinstance(info.value, TypeError)
    if backend.name.startswith("torch"):  # torch's dtype names on torch tensors
        assert str(info.value) == str(expected)
    else:  # the library's own names elsewhere
        assert str(info.value) == "Found dtype float64 but expected float32"


@pytest.mark.x64  # float64 on JAX: the x64 run
def test_bcewl_output_has_target_dtype(backend: Backend) -> None:
    if "float64" not in backend.dtypes:
        pytest.skip(f"{backend.name} has no float64")
    xt, tt = rounded([0.3, -2.0, 40.0], "float64"), rounded([0.7, 1.0, 0.0], "float32")
    expected = TF.binary_cross_entropy_with_logits(xt, tt, reduction="none")
    assert expected.dtype == torch.float32
    got = xbce.binary_cross_entropy_with_logits(
        backend.asarray(xt, "float64"), backend.asarray(tt, "float32"), reduction="none"
    )
    check(backend, got, expected, "bcewl", "float32", scale=loss_scale("bcewl", xt, tt))


def test_bcewl_integer_and_bool_target_rejected(backend: Backend) -> None:
    x = backend.asarray([0.5, 0.5], "float32")
    for bad in (np.asarray([0, 1]), np.asarray([False, True])):
        expected = torch_error(
            TF.binary_cross_entropy_with_logits, torch.tensor([0.5, 0.5]), torch.as_tensor(bad)
        )
        t = backend.xp.asarray(bad) if backend.name != "dask" else _dask(bad)
        with pytest.raises(RuntimeError) as info:
            xbce.binary_cross_entropy_with_logits(x, t)
        assert isinstance(info.value, TypeError)
        message = str(expected)
        if not backend.name.startswith("torch"):  # the library's own dtype name
            message = message.replace("type Long", f"type {_dtype_name(t.dtype)}")
            message = message.replace("type Float", f"type {_dtype_name(x.dtype)}")
        assert str(info.value) == message


# -------------------------------------------------------------------------- values
BAD_VALUES = [-0.5, 1.5, float("nan"), float("inf"), -float("inf"), 1.0000001, -1e-30]


@pytest.mark.parametrize("bad", BAD_VALUES)
@pytest.mark.parametrize("where", ["input", "target"])
def test_out_of_range_values(backend: Backend, bad: float, where: str) -> None:
    good = [0.0, 0.25, 1.0]
    xv, yv = ([bad, *good], [0.0, *good]) if where == "input" else ([0.5, *good], [bad, *good])
    xt, yt = rounded(xv, "float32"), rounded(yv, "float32")
    expected = torch_error(TF.binary_cross_entropy, xt, yt)
    assert type(expected) is RuntimeError
    x, y = backend.asarray(xt, "float32"), backend.asarray(yt, "float32")
    pattern = r"^all elements of .* should be between 0 and 1$"
    for reduction in ("mean", "sum", "none"):
        with pytest.raises(ValueError, match=pattern) as info:
            # Dask: building the graph reads nothing; its chunk task raises at compute
            _materialize(xbce.binary_cross_entropy(x, y, reduction=reduction))
        assert isinstance(info.value, RuntimeError)
        assert str(info.value) == str(expected)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nan_or_inf_weight_is_not_a_value_error(backend: Backend, reduction: str) -> None:
    """Valid probabilities with a NaN or inf weight: a NaN loss, as in torch, no error
    (xbce's eager check of the input rides on the reduced loss being NaN)."""
    xt, yt = rounded([0.5, 0.0, 0.25], "float32"), rounded([1.0, 0.0, 0.5], "float32")
    wt = rounded([1.0, float("inf"), float("nan")], "float32")
    expected = TF.binary_cross_entropy(xt, yt, weight=wt, reduction=reduction)
    got = xbce.binary_cross_entropy(backend.asarray(xt, "float32"),
                                    backend.asarray(yt, "float32"),
                                    backend.asarray(wt, "float32"), reduction=reduction)
    check(backend, got, expected, "bce" if reduction == "none" else "reduced", "float32",
          scale=loss_scale("bce", xt, yt, torch.ones(3), reduction=reduction))


@pytest.mark.parametrize(
    ("xv", "yv"), [([0.5, 2.0, 0.5], [0.5, 0.5, -1.0]), ([0.5, 0.5, 2.0], [0.5, -1.0, 0.5])]
)
def test_first_bad_element_decides_the_message(backend: Backend, xv, yv) -> None:  # type: ignore[no-untyped-def]
    """Within an array (a Dask chunk), the first bad element in memory order decides."""
    expected = torch_error(TF.binary_cross_entropy, torch.tensor(xv), torch.tensor(yv))
    x, y = backend.asarray(xv, "float32"), backend.asarray(yv, "float32")
    if backend.name == "dask":
        x, y = x.rechunk(-1), y.rechunk(-1)  # one chunk (across chunks: see test_dask)
    with pytest.raises(RuntimeError) as info:
        _materialize(xbce.binary_cross_entropy(x, y))
    assert str(info.value) == str(expected)


def test_negative_zero_and_bounds_accepted(backend: Backend) -> None:
    xt, yt = rounded([-0.0, 0.0, 1.0, 1.0], "float32"), rounded([0.0, 1.0, 1.0, -0.0], "float32")
    expected = TF.binary_cross_entropy(xt, yt, reduction="none")
    got = xbce.binary_cross_entropy(
        backend.asarray(xt, "float32"), backend.asarray(yt, "float32"), reduction="none"
    )
    check(backend, got, expected, "bce", "float32")  # includes x = y = 1 -> -0.0


def test_bcewl_accepts_any_target(backend: Backend) -> None:
    xt, tt = (
        rounded([0.3, 0.3, 0.3, 1.0], "float32"),
        rounded([2.0, -1.0, float("nan"), 0.5], "float32"),
    )
    expected = TF.binary_cross_entropy_with_logits(xt, tt, reduction="none")
    got = xbce.binary_cross_entropy_with_logits(
        backend.asarray(xt, "float32"), backend.asarray(tt, "float32"), reduction="none"
    )
    check(backend, got, expected, "bcewl", "float32", scale=loss_scale("bcewl", xt, tt))


# ------------------------------------------------------------------------- weights
@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize(
    "wshape", [(), (3,), (1, 3), (2, 1), (2, 3), (1,), (2,), (1, 2, 3), (2, 2, 3), (4,)]
)
def test_weight_broadcasts_into_input(backend: Backend, name: str, wshape) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = FUNCS[name]
    xt, yt = rounded(np.full((2, 3), 0.25), "float32"), rounded(np.full((2, 3), 1.0), "float32")
    wt = rounded(np.arange(1.0, 1.0 + np.prod(wshape)).reshape(wshape), "float32")
    try:
        expected = theirs(xt, yt, weight=wt, reduction="none")
    except RuntimeError:
        with pytest.raises(RuntimeError) as info:
            ours(
                backend.asarray(xt, "float32"),
                backend.asarray(yt, "float32"),
                backend.asarray(wt, "float32"),
                reduction="none",
            )
        assert isinstance(info.value, ValueError)
        return
    got = ours(
        backend.asarray(xt, "float32"),
        backend.asarray(yt, "float32"),
        backend.asarray(wt, "float32"),
        reduction="none",
    )
    check(backend, got, expected, name, "float32", scale=loss_scale(name, xt, yt, wt))


@pytest.mark.parametrize("pshape", [(), (3,), (1, 3), (4, 1), (4, 3), (1,), (4,), (2, 4, 3)])
def test_pos_weight_broadcasts_along_last_axis(backend: Backend, pshape) -> None:  # type: ignore[no-untyped-def]
    xt = rounded(np.linspace(-3, 3, 12).reshape(4, 3), "float32")
    tt = rounded(np.tile([1.0, 0.0, 1.0], (4, 1)), "float32")
    pt = rounded(np.arange(1.0, 1.0 + np.prod(pshape)).reshape(pshape), "float32")
    try:
        expected = TF.binary_cross_entropy_with_logits(xt, tt, pos_weight=pt, reduction="none")
    except RuntimeError:
        with pytest.raises(RuntimeError):
            xbce.binary_cross_entropy_with_logits(
                backend.asarray(xt, "float32"),
                backend.asarray(tt, "float32"),
                pos_weight=backend.asarray(pt, "float32"),
            )
        return
    got = xbce.binary_cross_entropy_with_logits(
        backend.asarray(xt, "float32"),
        backend.asarray(tt, "float32"),
        reduction="none",
        pos_weight=backend.asarray(pt, "float32"),
    )
    check(backend, got, expected, "bcewl", "float32",
          scale=loss_scale("bcewl", xt, tt, pos_weight=pt))


@pytest.mark.parametrize("wdtype", ["int64", "bool", "float64"])
def test_weight_of_other_dtype_keeps_input_dtype(backend: Backend, wdtype: str) -> None:
    if wdtype == "float64" and "float64" not in backend.dtypes:
        pytest.skip(f"{backend.name} has no float64")
    w_np = {
        "int64": np.asarray([3, 0, 2]),
        "bool": np.asarray([True, False, True]),
        "float64": np.asarray([0.1, 2.0, 1.0 / 3.0]),
    }[wdtype]
    xt, yt = rounded([0.2, 0.7, 0.9], "float32"), rounded([0.0, 1.0, 1.0], "float32")
    expected = TF.binary_cross_entropy(xt, yt, weight=torch.as_tensor(w_np), reduction="none")
    assert expected.dtype == torch.float32
    w = _dask(w_np) if backend.name == "dask" else backend.xp.asarray(w_np)
    got = xbce.binary_cross_entropy(
        backend.asarray(xt, "float32"), backend.asarray(yt, "float32"), w, reduction="none"
    )
    check(backend, got, expected, "bce", "float32")


def test_mean_is_not_a_weighted_mean(backend: Backend) -> None:
    xt, yt = rounded([0.2, 0.7, 0.9], "float32"), rounded([0.0, 1.0, 1.0], "float32")
    wt = rounded([1.0, 2.0, 3.0], "float32")
    for reduction in ("mean", "sum"):
        expected = TF.binary_cross_entropy(xt, yt, weight=wt, reduction=reduction)
        got = xbce.binary_cross_entropy(
            backend.asarray(xt, "float32"),
            backend.asarray(yt, "float32"),
            backend.asarray(wt, "float32"),
            reduction=reduction,
        )
        check(backend, got, expected, "reduced", "float32", scale=expected.abs())


def test_non_array_weight_is_a_type_error(backend: Backend) -> None:
    """Arrays and Python scalars are weights (tests/test_mixed_inputs.py); a list is not."""
    x = backend.asarray([0.5], "float32")
    with pytest.raises(TypeError, match="weight must be an array"):
        xbce.binary_cross_entropy(x, x, weight=[2.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pos_weight must be an array"):
        xbce.binary_cross_entropy_with_logits(x, x, pos_weight="2")  # type: ignore[arg-type]


# ------------------------------------------------------------------ shapes and size
@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_empty_and_zero_d(backend: Backend, dtype: str, name: str, reduction: str) -> None:
    ours, theirs = FUNCS[name]
    for shape in [(0,), (3, 0), ()]:
        xt = rounded(np.full(shape, 0.3), dtype)
        yt = rounded(np.full(shape, 1.0), dtype)
        expected = theirs(xt, yt, reduction=reduction)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's mean of nothing is NaN, silently
            got = ours(backend.asarray(xt, dtype), backend.asarray(yt, dtype), reduction=reduction)
            check(
                backend,
                got,
                expected,
                name if reduction == "none" else "reduced",
                dtype,
                scale=expected.abs() + 1,
                what=f"shape {shape}",
            )


def test_inputs_are_not_modified() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 300_000).astype(np.float32)
    y = rng.uniform(0, 1, 300_000).astype(np.float32)
    w = rng.uniform(0, 1, 300_000).astype(np.float32)
    copies = [a.copy() for a in (x, y, w)]
    for a in (x, y, w):
        a.setflags(write=False)  # read-only inputs must work
    for reduction in ("none", "mean"):
        xbce.binary_cross_entropy(x, y, w, reduction=reduction)
        xbce.binary_cross_entropy_with_logits(x, y, w, reduction=reduction, pos_weight=w)
        xbce.binary_cross_entropy_backward(
            np.float32(1.0) if reduction == "mean" else y, x, y, w, reduction=reduction
        )
    for a, c in zip((x, y, w), copies, strict=False):
        np.testing.assert_array_equal(a, c)
    xt, yt = torch.tensor(copies[0], requires_grad=True), torch.tensor(copies[1])
    before = xt.detach().clone()
    xbce.binary_cross_entropy(xt, yt).backward()
    assert torch.equal(xt.detach(), before)


# ----------------------------------------------------------------- large (blocked)
@pytest.mark.parametrize("layout", ["flat", "rows"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_large_arrays(backend: Backend, layout: str, reduction: str) -> None:
    """Above 2**18 elements NumPy and torch evaluate in blocks: same values."""
    rng = np.random.default_rng(1)
    shape = (600_000,) if layout == "flat" else (1000, 600)
    xt = rounded(rng.uniform(0, 1, shape), "float32")
    yt = rounded(rng.uniform(0, 1, shape), "float32")
    wt = None if layout == "flat" else rounded(rng.uniform(0, 2, (1000, 1)), "float32")
    pt = None if layout == "flat" else rounded(rng.uniform(0, 2, 600), "float32")
    for name in FUNCS:
        ours, theirs = FUNCS[name]
        kw = {"pos_weight": pt} if name == "bcewl" else {}
        expected = theirs(xt, yt, weight=wt, reduction=reduction, **kw)
        bkw = (
            {"pos_weight": backend.asarray(pt, "float32")}
            if name == "bcewl" and pt is not None
            else {}
        )
        got = ours(
            backend.asarray(xt, "float32"),
            backend.asarray(yt, "float32"),
            None if wt is None else backend.asarray(wt, "float32"),
            reduction=reduction,
            **bkw,
        )
        scale = loss_scale(name, xt, yt, wt, pt if name == "bcewl" else None, reduction)
        elementwise = reduction == "none"
        check(
            backend,
            got,
            expected,
            name if elementwise else "reduced",
            "float32",
            scale=scale,
            what=f"{name} {layout} {reduction}",
            # a weight in (0, 2) multiplies a loss already k ulp from torch's: in ulps of
            # the product the difference can grow to 2k (the product may drop a binade)
            plus=name if elementwise and wt is not None else None,
        )


# ------------------------------------------------------------------------- modules
def test_modules_call_the_functions_and_repr(backend: Backend) -> None:
    xt, yt = rounded([0.6, 0.2, 0.7], "float32"), rounded([1.0, 0.0, 1.0], "float32")
    wt = rounded([1.0, 2.0, 0.5], "float32")
    x, y, w = (backend.asarray(a, "float32") for a in (xt, yt, wt))
    loss = xbce.BCELoss(w, reduction="sum")
    check(
        backend,
        loss(x, y),
        torch.nn.BCELoss(wt, reduction="sum")(xt, yt),
        "reduced",
        "float32",
        scale=torch.tensor(10.0),
    )
    assert repr(xbce.BCELoss()) == "BCELoss()"
    assert "reduction='sum'" in repr(loss)
    assert "weight=" in repr(loss)
    lw = xbce.BCEWithLogitsLoss(pos_weight=w)
    expected = torch.nn.BCEWithLogitsLoss(pos_weight=wt)(xt, yt)
    check(backend, lw(x, y), expected, "reduced", "float32", scale=torch.tensor(10.0))
    check(backend, lw.forward(x, y), expected, "reduced", "float32", scale=torch.tensor(10.0))
    assert repr(xbce.BCEWithLogitsLoss()) == "BCEWithLogitsLoss()"


def test_same_array_as_weight_or_pos_weight_gives_two_results(backend: Backend) -> None:
    """Calls that differ only in which argument an array is passed as stay distinct
    (Dask: their task graphs must not share a name when computed together)."""
    xt = rounded([-2.0, 0.5, 3.0], "float32")
    tt = rounded([0.0, 1.0, 1.0], "float32")
    wt = rounded([0.5, 2.0, 3.0], "float32")
    x, t, w = (backend.asarray(a, "float32") for a in (xt, tt, wt))
    got = [xbce.binary_cross_entropy_with_logits(x, t, weight=w, reduction="none"),
           xbce.binary_cross_entropy_with_logits(x, t, pos_weight=w, reduction="none")]
    if backend.name == "dask":  # one compute: both graphs in one scheduler run
        import dask

        values = [torch.from_numpy(np.asarray(v)) for v in dask.compute(*got)]
    else:
        values = [backend.to_torch(g) for g in got]
    expected = [TF.binary_cross_entropy_with_logits(xt, tt, weight=wt, reduction="none"),
                TF.binary_cross_entropy_with_logits(xt, tt, pos_weight=wt, reduction="none")]
    assert not torch.equal(expected[0], expected[1])
    for v, e in zip(values, expected, strict=True):
        assert_ulp_close(v, e, ulps("bcewl", "float32", backend.name), scale=e.abs() + 10)


@pytest.mark.parametrize("n", [10, 600_000], ids=["small", "blocked"])
def test_half_sum_overflows_to_inf_quietly(backend: Backend, n: int) -> None:
    """A float16 sum above 65504 is inf in torch, without a warning; so in xbce (NumPy's
    cast warning must not leak, pytest turns warnings into errors)."""
    if "float16" not in backend.dtypes:
        pytest.skip(f"{backend.name} has no float16")
    xt = rounded(np.full(n, 0.5), "float16")
    tt = rounded(np.ones(n), "float16")
    wt = rounded(np.full(n, 3e4), "float16")
    x, t, w = (backend.asarray(a, "float16") for a in (xt, tt, wt))
    for ours, theirs in FUNCS.values():
        expected = theirs(xt, tt, weight=wt, reduction="sum")
        assert torch.isinf(expected)
        check(backend, ours(x, t, w, reduction="sum"), expected, "reduced", "float16",
              scale=expected.abs())
