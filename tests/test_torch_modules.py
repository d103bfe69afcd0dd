"""xbce.torch.BCELoss / BCEWithLogitsLoss are torch.nn.Modules that behave as torch's.

Buffers, state_dict (loadable both ways), dtype/device moves, nn.Sequential, repr,
torch.save/load, torch.compile (without fullgraph), legacy arguments; values and
gradients against torch.nn's modules computed here.
"""

from __future__ import annotations

import io

import pytest
import torch
from backends import load, rounded
from comparisons import check

import xbce.torch

TB = load("torch")

KINDS = {
    "BCELoss": (xbce.torch.BCELoss, torch.nn.BCELoss),
    "BCEWithLogitsLoss": (xbce.torch.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss),
}
WEIGHTS = {
    "none": {},
    "weight": {"weight": rounded([1.0, 2.0, 0.5], "float32")},
    "pos_weight": {"pos_weight": rounded([3.0, 1.0, 0.25], "float32")},
    "both": {"weight": rounded([1.0, 2.0, 0.5], "float32"),
             "pos_weight": rounded([3.0, 1.0, 0.25], "float32")},
}


def _cases() -> list[tuple[str, str]]:
    return [(k, w) for k in KINDS for w in WEIGHTS
            if k == "BCEWithLogitsLoss" or "pos_weight" not in WEIGHTS[w]]


def _data(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = [[0.2, 0.7, 0.9], [0.5, 0.01, 0.99]]
    if kind == "BCEWithLogitsLoss":
        x = [[-2.0, 0.5, 3.0], [0.0, -7.0, 4.0]]
    return rounded(x, "float32"), rounded([[0.0, 1.0, 1.0], [0.5, 0.0, 1.0]], "float32")


@pytest.mark.parametrize(("kind", "weights"), _cases())
def test_is_a_module_with_torchs_buffers(kind: str, weights: str) -> None:
    ours_cls, theirs_cls = KINDS[kind]
    ours, theirs = ours_cls(**WEIGHTS[weights]), theirs_cls(**WEIGHTS[weights])
    assert isinstance(ours, torch.nn.Module)
    assert isinstance(ours, type(theirs).__mro__[1])  # _WeightedLoss / _Loss, as torch's
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert ours.reduction == theirs.reduction
    # a state_dict loads both ways, strictly
    other = theirs_cls(**{k: v * 2 for k, v in WEIGHTS[weights].items()})
    ours.load_state_dict(other.state_dict())
    for name, value in other.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value)
    theirs.load_state_dict(ours.state_dict())


@pytest.mark.parametrize(("kind", "weights"), _cases())
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_values_and_gradients_are_torchs(kind: str, weights: str, reduction: str) -> None:
    ours_cls, theirs_cls = KINDS[kind]
    x, y = _data(kind)
    ours = ours_cls(**WEIGHTS[weights], reduction=reduction)
    theirs = theirs_cls(**WEIGHTS[weights], reduction=reduction)
    xo, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
    got, expected = ours(xo, y), theirs(xt, y)
    quantity = "reduced" if reduction != "none" else ("bce" if kind == "BCELoss" else "bcewl")
    check(TB, got.detach(), expected.detach(), quantity, "float32", scale=expected.abs() + 10)
    got.sum().backward()
    expected.sum().backward()
    grad = "bce_grad" if kind == "BCELoss" else "bcewl_grad"
    check(TB, xo.grad, xt.grad, grad, "float32", scale=xt.grad.abs() + 1)


@pytest.mark.parametrize(("kind", "weights"), _cases())
def test_dtype_moves_and_sequential(kind: str, weights: str) -> None:
    ours_cls, theirs_cls = KINDS[kind]
    ours = ours_cls(**WEIGHTS[weights]).double()
    theirs = theirs_cls(**WEIGHTS[weights]).double()
    for (name, a), (_, b) in zip(ours.named_buffers(), theirs.named_buffers(), strict=True):
        assert a.dtype == b.dtype == torch.float64, name
    ours.to(torch.float16)
    assert all(b.dtype == torch.float16 for b in ours.buffers())
    ours.to(device="cpu", dtype=torch.float32)
    theirs.float()
    x, y = _data(kind)
    layer = torch.nn.Linear(3, 3).double()
    torch.nn.init.eye_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    head = [torch.nn.Sigmoid()] if kind == "BCELoss" else []
    model = torch.nn.Sequential(layer.float(), *head)
    expected = theirs(model(x if kind != "BCELoss" else torch.logit(x)), y)
    got = ours(model(x if kind != "BCELoss" else torch.logit(x)), y)
    check(TB, got.detach(), expected.detach(), "reduced", "float32",
          scale=expected.abs() + 10, plus="bce")
    wrapped = torch.nn.Sequential(torch.nn.Identity(), ours)  # a loss inside a container
    assert isinstance(wrapped[1], type(ours))
    assert ours.train() is ours
    assert ours.eval() is ours


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load(kind: str) -> None:
    ours_cls, _ = KINDS[kind]
    weights = WEIGHTS["both" if kind == "BCEWithLogitsLoss" else "weight"]
    ours = ours_cls(**weights, reduction="sum")
    buffer = io.BytesIO()
    torch.save(ours, buffer)
    buffer.seek(0)
    back = torch.load(buffer, weights_only=False)  # a pickled module, as for torch.nn's
    assert type(back) is type(ours)
    assert back.reduction == "sum"
    x, y = _data(kind)
    assert torch.equal(back(x, y), ours(x, y))
    buffer = io.BytesIO()
    torch.save(ours.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # tensors only: the safe default
    fresh = ours_cls(**{k: torch.zeros_like(v) for k, v in weights.items()}, reduction="sum")
    fresh.load_state_dict(state)
    assert torch.equal(fresh(x, y), ours(x, y))


@pytest.mark.parametrize("kind", KINDS)
def test_invalid_reduction_raises_at_call_as_torch(kind: str) -> None:
    ours_cls, theirs_cls = KINDS[kind]
    ours, theirs = ours_cls(reduction="bogus"), theirs_cls(reduction="bogus")  # both construct
    x, y = _data(kind)
    with pytest.raises(ValueError, match="is not a valid value") as expected:
        theirs(x, y)
    with pytest.raises(ValueError, match="is not a valid value") as got:
        ours(x, y)
    assert str(got.value) == str(expected.value)


@pytest.mark.filterwarnings(  # as in test_torch_autograd.py::test_compile
    "ignore:Dynamo detected a call to a `functools.lru_cache`:UserWarning",
    "ignore:.*Function'> should not be instantiated:DeprecationWarning",
)
@pytest.mark.parametrize(("kind", "weights"), _cases())
def test_compile_gives_eager_values(kind: str, weights: str) -> None:
    ours_cls, theirs_cls = KINDS[kind]
    ours = ours_cls(**WEIGHTS[weights])
    x, y = _data(kind)
    compiled = torch.compile(ours, backend="aot_eager")
    xc = x.clone().requires_grad_()
    got = compiled(xc, y)
    got.backward()
    xe = x.clone().requires_grad_()
    expected = theirs_cls(**WEIGHTS[weights])(xe, y)
    expected.backward()
    check(TB, got.detach(), expected.detach(), "reduced", "float32", scale=expected.abs() + 10)
    grad = "bce_grad" if kind == "BCELoss" else "bcewl_grad"
    check(TB, xc.grad, xe.grad, grad, "float32", scale=xe.grad.abs() + 1)
    torch.compiler.reset()


def test_cuda_moves_buffers() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: .cuda() is exercised by the torch_cuda session only")
    ours = xbce.torch.BCEWithLogitsLoss(**WEIGHTS["both"]).cuda()
    assert all(b.device.type == "cuda" for b in ours.buffers())
    x, y = _data("BCEWithLogitsLoss")
    expected = torch.nn.BCEWithLogitsLoss(**WEIGHTS["both"])(x, y)
    got = ours(x.cuda(), y.cuda())
    check(load("torch_cuda"), got, expected, "reduced", "float32", scale=expected.abs() + 10)


def test_python_scalar_weights_become_buffers() -> None:
    ours = xbce.torch.BCEWithLogitsLoss(weight=2.0, pos_weight=3.0)
    assert list(ours.state_dict()) == ["weight", "pos_weight"]
    x, y = _data("BCEWithLogitsLoss")
    expected = torch.nn.BCEWithLogitsLoss(weight=torch.tensor(2.0), pos_weight=torch.tensor(3.0))
    check(TB, ours(x, y), expected(x, y), "reduced", "float32", scale=expected(x, y) + 10)
    assert ours.double().pos_weight.dtype == torch.float64
