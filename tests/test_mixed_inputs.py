"""NumPy arrays and Python scalars next to another library's arrays; 0-d results.

As jax.numpy does, xbce converts NumPy arrays and Python scalars to the library of the
other arrays (on their device); torch's dtype rules then apply. Two libraries other
than NumPy are a TypeError naming both. Expected values: torch, computed here, with
the same arguments as tensors (a Python scalar as a 0-d tensor of the target's dtype).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import BACKENDS, Backend, rounded
from comparisons import check

import xbce


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.numpy().copy()


@pytest.mark.parametrize("which", ["target", "weight", "pos_weight", "all"])
def test_numpy_arrays_join_the_input_library(backend: Backend, dtype: str, which: str) -> None:
    if dtype == "bfloat16":
        pytest.skip("NumPy has no bfloat16")
    xt = rounded([[-2.0, 0.5, 3.0], [0.0, -7.0, 4.0]], dtype)
    tt = rounded([[0.0, 1.0, 1.0], [0.5, 0.0, 1.0]], dtype)
    wt, pt = rounded([1.0, 2.0, 0.5], dtype), rounded([[3.0], [0.25]], dtype)
    expected = TF.binary_cross_entropy_with_logits(xt, tt, wt, pos_weight=pt, reduction="none")
    args = {"target": tt, "weight": wt, "pos_weight": pt}
    given = {k: (_numpy(v) if which in (k, "all") else backend.asarray(v, dtype))
             for k, v in args.items()}
    got = xbce.binary_cross_entropy_with_logits(
        backend.asarray(xt, dtype), given["target"], given["weight"],
        pos_weight=given["pos_weight"], reduction="none")
    check(backend, got, expected, "bcewl", dtype, scale=expected.abs() + 30)
    if which in ("target", "all"):  # and binary_cross_entropy
        pe = torch.sigmoid(xt.double()).to(xt.dtype)
        expected = TF.binary_cross_entropy(pe, tt, wt, reduction="sum")
        got = xbce.binary_cross_entropy(backend.asarray(pe, dtype), _numpy(tt), _numpy(wt),
                                        reduction="sum")
        check(backend, got, expected, "reduced", dtype, scale=expected.abs() + 30)


@pytest.mark.parametrize("scalar", [2.0, 3, True, 0.1])
@pytest.mark.parametrize("which", ["weight", "pos_weight"])
def test_python_scalar_weights(backend: Backend, dtype: str, scalar: float, which: str) -> None:
    xt = rounded([-2.0, 0.5, 3.0, 0.0], dtype)
    tt = rounded([0.0, 1.0, 1.0, 0.5], dtype)
    as_tensor = torch.tensor(float(scalar), dtype=tt.dtype)  # a wrapped number: target dtype
    expected = TF.binary_cross_entropy_with_logits(xt, tt, reduction="none",
                                                   **{which: as_tensor})
    got = xbce.binary_cross_entropy_with_logits(
        backend.asarray(xt, dtype), backend.asarray(tt, dtype), reduction="none",
        **{which: scalar})
    check(backend, got, expected, "bcewl", dtype, scale=expected.abs() + 10)
    if which == "weight":
        pt = rounded([0.2, 0.7, 0.9, 0.5], dtype)
        expected = TF.binary_cross_entropy(pt, tt, as_tensor, reduction="none")
        got = xbce.binary_cross_entropy(backend.asarray(pt, dtype), backend.asarray(tt, dtype),
                                        scalar, reduction="none")
        check(backend, got, expected, "bce", dtype, scale=expected.abs() + 10)


def test_numpy_input_with_torch_target_gives_torch() -> None:
    x, t = np.asarray([0.2, 0.7], np.float32), torch.tensor([0.0, 1.0])
    got = xbce.binary_cross_entropy(x, t, reduction="none")
    assert isinstance(got, torch.Tensor)
    assert torch.equal(got, TF.binary_cross_entropy(torch.from_numpy(x), t, reduction="none"))


def test_torch_dtype_rules_after_conversion() -> None:
    """A float64 NumPy target with a float32 tensor: torch's dtype error (BCE), and
    torch's result dtype, the target's (BCE with logits)."""
    x, t = torch.tensor([0.5, 0.25]), np.asarray([0.0, 1.0])
    with pytest.raises(RuntimeError) as info:
        TF.binary_cross_entropy(x, torch.from_numpy(t))
    with pytest.raises(RuntimeError) as ours:
        xbce.binary_cross_entropy(x, t)
    assert str(ours.value) == str(info.value) == "Found dtype Double but expected Float"
    expected = TF.binary_cross_entropy_with_logits(x, torch.from_numpy(t), reduction="none")
    got = xbce.binary_cross_entropy_with_logits(x, t, reduction="none")
    assert got.dtype == expected.dtype == torch.float64
    assert torch.equal(got, expected)


@pytest.mark.parametrize(
    ("first", "second"), [("torch", "jax"), ("jax", "torch"), ("torch", "array_api_strict")]
)
def test_two_libraries_are_a_type_error_in_plain_words(first: str, second: str) -> None:
    """Runs where both libraries are installed: torch and JAX in the jax session,
    torch and array-api-strict in the array_api_strict session."""
    other = next(lib for lib in (first, second) if lib != "torch")
    if other not in BACKENDS:
        pytest.skip(f"runs in the {other} session (needs {other} beside torch)")
    namespaces = {"torch": torch, other: importlib.import_module(
        "jax.numpy" if other == "jax" else other)}
    make = {lib: (lambda v, lib=lib: namespaces[lib].tensor(v) if lib == "torch"
                  else namespaces[lib].asarray(v)) for lib in namespaces}
    x, t = make[first]([0.5, 0.5]), make[second]([0.0, 1.0])
    for fn in (xbce.binary_cross_entropy, xbce.binary_cross_entropy_with_logits):
        with pytest.raises(TypeError) as info:
            fn(x, t)
        message = str(info.value)
        assert f"{first} (input)" in message
        assert f"{second} (target)" in message
        assert "<module" not in message
        assert "site-packages" not in message
    with pytest.raises(TypeError, match=rf"{first} \(input, target\) and {second} \(pos_weight\)"):
        xbce.binary_cross_entropy_with_logits(x, make[first]([0.0, 1.0]),
                                              pos_weight=make[second]([2.0]))


# -------------------------------------------------------------------------- 0-d
FUNCS = {
    "bce": (xbce.binary_cross_entropy, TF.binary_cross_entropy),
    "bcewl": (xbce.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits),
}


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_zero_d_inputs_give_zero_d_arrays(backend: Backend, name: str, reduction: str) -> None:
    ours, theirs = FUNCS[name]
    xt, yt = rounded(0.3, "float32"), rounded(1.0, "float32")
    expected = theirs(xt, yt, reduction=reduction)
    got = ours(backend.asarray(xt, "float32"), backend.asarray(yt, "float32"),
               reduction=reduction)
    if backend.name == "numpy":
        assert type(got) is np.ndarray, type(got)  # not a NumPy scalar
    assert got.shape == ()
    check(backend, got, expected, "reduced", "float32", scale=expected.abs())


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_zero_d_backward_gives_zero_d_arrays(reduction: str) -> None:
    x, y, g = np.asarray(0.3, np.float32), np.asarray(1.0, np.float32), np.asarray(1.0, np.float32)
    for fn in (xbce.binary_cross_entropy_backward, xbce.binary_cross_entropy_target_backward,
               xbce.binary_cross_entropy_with_logits_backward,
               xbce.binary_cross_entropy_with_logits_target_backward):
        got = fn(g, x, y, reduction=reduction)
        assert type(got) is np.ndarray, (fn.__name__, type(got))
        assert got.shape == (), fn.__name__
