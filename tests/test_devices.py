"""Devices other than the default, as stand-ins for the GPUs no machine here has.

array-api-strict's ``Device("device1")``: every path (forward, each reduction, weight
and pos_weight, the explicit backward functions, the Module-like callables, NumPy
arrays and Python scalars joining device arrays) gives its results on the input's
device, with torch's values; arrays on two devices raise torch's RuntimeError
("Expected all tensors to be on the same device, but found at least two devices, ...").

torch's meta tensors (no data): forward, reductions, autograd and the explicit
backward functions give torch's shapes, dtypes and devices, and no value is read (a
meta tensor raises on any read, so a call that returns has read nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import BACKENDS, Backend, load, rounded
from cases import logits, probabilities, targets
from comparisons import check, loss_scale
from grads import BACKWARDS, GRAD_OUTPUTS, Case

import xbce

REDUCTIONS = ["none", "mean", "sum"]
FUNCS = {
    "bce": (xbce.binary_cross_entropy, TF.binary_cross_entropy),
    "bcewl": (xbce.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits),
}
SHAPE = (6, 5)

STRICT = ["array_api_strict"] if "array_api_strict" in BACKENDS else []
TORCH = ["torch"] if "torch" in BACKENDS else []


# --------------------------------------------------------------- array-api-strict
@dataclass
class OnDevice(Backend):
    """array-api-strict with every array on ``device`` (``Backend.asarray`` puts them on
    the default one); ``is_native`` then requires results on ``device``."""

    def asarray(self, values: Any, dtype: str) -> Any:
        return super().asarray(values, dtype).to_device(self.device)


def _strict_on(name: str) -> OnDevice:
    base = load("array_api_strict")
    dev = base.xp.Device(name)
    return OnDevice(base.name, base.xp, base.dtypes, device=dev)


@pytest.fixture(params=STRICT)
def device1(request: pytest.FixtureRequest) -> OnDevice:
    return _strict_on("device1")


def _inputs(op: str, rng: np.random.Generator, dtype: str) -> tuple[torch.Tensor, ...]:
    n = SHAPE[0] * SHAPE[1]
    x = probabilities(rng, n) if op == "bce" else logits(rng, n)
    return (rounded(x.reshape(SHAPE), dtype),
            rounded(targets(rng, n, soft=True).reshape(SHAPE), dtype),
            rounded(rng.uniform(0.0, 3.0, SHAPE[1]), dtype),
            rounded(rng.uniform(0.5, 4.0, SHAPE[1]), dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", FUNCS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weighted"])
def test_forward_on_device1(device1: OnDevice, dtype: str, op: str, reduction: str,
                            weighted: bool, rng: np.random.Generator) -> None:
    ours, theirs = FUNCS[op]
    xt, yt, wt, pt = _inputs(op, rng, dtype)
    kw: dict[str, Any] = {"reduction": reduction}
    if weighted:
        kw["weight"] = wt
        if op == "bcewl":
            kw["pos_weight"] = pt
    expected = theirs(xt, yt, **kw)
    dkw = {k: device1.asarray(v, dtype) if isinstance(v, torch.Tensor) else v
           for k, v in kw.items()}
    got = ours(device1.asarray(xt, dtype), device1.asarray(yt, dtype), **dkw)
    assert got.device == device1.device
    scale = loss_scale(op, xt, yt, kw.get("weight"), kw.get("pos_weight"), reduction)
    check(device1, got, expected, op if reduction == "none" else "reduced", dtype,
          scale=scale, what=f"{op} {reduction} on device1")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.parametrize(("reduction", "g"), GRAD_OUTPUTS)
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weighted"])
def test_explicit_backward_on_device1(device1: OnDevice, dtype: str, op: str, reduction: str,
                                      g: float | None, weighted: bool,
                                      rng: np.random.Generator) -> None:
    xt, yt, wt, pt = _inputs(op, rng, dtype)
    grad = rounded(g if g is not None else rng.uniform(0.5, 2.0, SHAPE), dtype)
    case = Case(op, xt, yt, grad, reduction, weight=wt if weighted else None,
                pos_weight=pt if weighted and op == "bcewl" else None)
    ex, ey = case.reference()
    qx, qy = case.quantities()
    sx, sy = case.scales()
    gx, gy = case.explicit(device1)
    for got in (gx, gy):
        assert got.device == device1.device
    check(device1, gx, ex, qx, dtype, scale=sx, what=f"{op} d/dinput on device1")
    check(device1, gy, ey, qy, dtype, scale=sy, what=f"{op} d/dtarget on device1")


def test_modules_numpy_and_scalars_join_device1(device1: OnDevice,
                                               rng: np.random.Generator) -> None:
    """NumPy arrays and Python scalars next to device arrays go to the input's device."""
    xt, yt, wt, pt = _inputs("bcewl", rng, "float32")
    x, y = device1.asarray(xt, "float32"), device1.asarray(yt, "float32")
    calls = [
        (xbce.BCELoss(weight=wt.numpy()), TF.binary_cross_entropy, "bce",
         {"weight": wt}, torch.sigmoid(xt)),
        (xbce.BCEWithLogitsLoss(weight=2.0, pos_weight=pt.numpy(), reduction="sum"),
         TF.binary_cross_entropy_with_logits, "bcewl",
         {"weight": torch.tensor(2.0), "pos_weight": pt, "reduction": "sum"}, xt),
    ]
    for loss, theirs, op, kw, inp in calls:
        got = loss(device1.asarray(inp, "float32") if op == "bce" else x, y)
        expected = theirs(inp, yt, **kw)
        check(device1, got, expected, "reduced", "float32",
              scale=loss_scale(op, inp, yt, kw.get("weight"), kw.get("pos_weight"),
                               kw.get("reduction", "mean")), what=f"{op} module")
    # a NumPy target, a NumPy grad_output
    got = xbce.binary_cross_entropy_with_logits_backward(
        np.float32(1.0), x, yt.numpy(), reduction="sum")
    assert got.device == device1.device
    ex = Case("bcewl", xt, yt, torch.tensor(1.0), "sum").reference()[0]
    check(device1, got, ex, "bcewl_grad", "float32",
          scale=Case("bcewl", xt, yt, torch.tensor(1.0), "sum").scales()[0])


def _torch_device_message() -> str:
    """torch's words for tensors on two devices (a fake CUDA tensor needs no GPU)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(), pytest.raises(RuntimeError) as info:
        TF.binary_cross_entropy(torch.empty(3, device="cuda"), torch.empty(3))
    message = str(info.value)
    assert message in (
        "Expected all tensors to be on the same device, but found at least two devices, "
        f"{a} and {b}!" for a, b in (("cuda:0", "cpu"), ("cpu", "cuda:0"))
    ), message
    return message.split("found at least two devices, ")[0]


# (op, the argument on the other device) -> the order torch's first op combining the
# arguments takes them: BCE's kernel writes an output on the input's device;
# BCE with logits computes (pos_weight - 1).mul(target), then (1 - target).mul_(input)
ARGS = [("bce", "input"), ("bce", "target"), ("bce", "weight"), ("bcewl", "input"),
        ("bcewl", "target"), ("bcewl", "weight"), ("bcewl", "pos_weight")]


@pytest.mark.parametrize(("op", "where"), ARGS)
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
def test_two_devices_raise_torchs_error(device1: OnDevice, op: str, where: str,
                                        backward: bool) -> None:
    """One argument on the default (CPU) device: torch's eager kernels take the first
    non-CPU device as the common one (TensorIterator), so CUDA tensors next to a CPU
    tensor give "... cuda:0 and cpu!" in any order: here "device1 and CPU_DEVICE"."""
    prefix = _torch_device_message()
    cpu = _strict_on("CPU_DEVICE")
    args = {"input": [0.25, 0.5], "target": [0.0, 1.0], "weight": [1.0, 2.0],
            "pos_weight": [3.0, 1.0]}
    named = {k: (cpu if k == where else device1).asarray(v, "float32")
             for k, v in args.items() if op == "bcewl" or k != "pos_weight"}
    expected = f"{prefix}found at least two devices, {device1.device} and {cpu.device}!"
    if backward:
        g = device1.asarray(1.0, "float32")
        call: Any = lambda: BACKWARDS[op][0](g, **named, reduction="sum")  # noqa: E731
    else:
        call = lambda: FUNCS[op][0](**named)  # noqa: E731
    with pytest.raises(RuntimeError) as info:
        call()
    assert str(info.value) == expected
    # the grad_output elsewhere
    if backward and where == "input":
        g = cpu.asarray(1.0, "float32")
        named = {k: device1.asarray(v, "float32") for k, v in args.items()
                 if op == "bcewl" or k != "pos_weight"}
        with pytest.raises(RuntimeError) as info:
            BACKWARDS[op][1](g, **named, reduction="sum")
        assert str(info.value) == expected


@pytest.mark.parametrize("op", FUNCS)
def test_two_accelerators_name_the_first_one(device1: OnDevice, op: str) -> None:
    """device1 and device2 (two GPUs, cuda:0 and cuda:1): the common device is the first
    argument's in torch's order, the input's in BCE, the target's in BCE with logits."""
    prefix = _torch_device_message()
    device2 = _strict_on("device2")
    x, y = device1.asarray([0.25, 0.5], "float32"), device2.asarray([0.0, 1.0], "float32")
    first, second = (device1, device2) if op == "bce" else (device2, device1)
    with pytest.raises(RuntimeError) as info:
        FUNCS[op][0](x, y)
    assert str(info.value) == (
        f"{prefix}found at least two devices, {first.device} and {second.device}!"
    )


# ------------------------------------------------------------------- torch meta
def meta(t: torch.Tensor, requires_grad: bool = False) -> torch.Tensor:
    return torch.empty(t.shape, dtype=t.dtype, device="meta", requires_grad=requires_grad)


def _same_meta(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert expected.device.type == "meta"
    assert (got.device, got.dtype, got.shape) == (expected.device, expected.dtype,
                                                  expected.shape), what


@pytest.mark.parametrize("name", TORCH)
def test_meta_tensors_cannot_be_read(name: str) -> None:
    """What makes a returning call proof that nothing was read."""
    m = torch.empty(3, device="meta")
    for read in (lambda: bool(m.min() >= 0), lambda: m.tolist(), lambda: m.cpu()):
        with pytest.raises((NotImplementedError, RuntimeError)):  # torch's two words for it
            read()


@pytest.mark.parametrize("name", TORCH)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("op", FUNCS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weighted"])
def test_meta_forward(name: str, dtype: str, op: str, reduction: str, weighted: bool) -> None:
    ours, theirs = FUNCS[op]
    x, y = torch.empty(SHAPE, dtype=getattr(torch, dtype)), torch.empty(SHAPE)
    y = y.to(x.dtype)
    kw: dict[str, Any] = {"reduction": reduction}
    if weighted:
        kw["weight"] = meta(torch.empty(SHAPE[1], dtype=x.dtype))
        if op == "bcewl":
            kw["pos_weight"] = meta(torch.empty(SHAPE[1], dtype=x.dtype))
    expected = theirs(meta(x), meta(y), **kw)
    _same_meta(ours(meta(x), meta(y), **kw), expected, f"{op} {reduction}")
    # the module-like callables
    module = (xbce.BCELoss if op == "bce" else xbce.BCEWithLogitsLoss)(**kw)
    _same_meta(module(meta(x), meta(y)), expected, f"{op} module")


@pytest.mark.parametrize("name", TORCH)
def test_meta_weight_of_another_dtype_keeps_the_devices_dtype(name: str) -> None:
    """BCE's ``loss.mul_(weight)`` keeps the input's dtype on every device; torch's meta
    decomposition multiplies out of place (a float64 weight gives float64): xbce gives
    the dtype of the device a meta tensor stands in for, measured on the CPU."""
    x, y = torch.full(SHAPE, 0.5), torch.ones(SHAPE)
    w = torch.ones(SHAPE[1], dtype=torch.float64)
    on_cpu = TF.binary_cross_entropy(x, y, weight=w)
    assert TF.binary_cross_entropy(meta(x), meta(y), weight=meta(w)).dtype == torch.float64
    got = xbce.binary_cross_entropy(meta(x), meta(y), weight=meta(w))
    assert (got.device.type, got.dtype, got.shape) == ("meta", on_cpu.dtype, on_cpu.shape)


@pytest.mark.parametrize("name", TORCH)
def test_meta_mixed_dtypes_and_numpy(name: str) -> None:
    """BCE with logits: the target's dtype; NumPy arrays and scalars join the meta device."""
    x = torch.empty(SHAPE, dtype=torch.float64, device="meta")
    y = torch.empty(SHAPE, dtype=torch.float32, device="meta")
    expected = TF.binary_cross_entropy_with_logits(x, y, pos_weight=meta(torch.empty(())))
    _same_meta(xbce.binary_cross_entropy_with_logits(x, y, pos_weight=2.0), expected, "scalar")
    _same_meta(xbce.binary_cross_entropy_with_logits(x, y, pos_weight=np.float32(2.0)),
               expected, "numpy scalar")
    _same_meta(xbce.binary_cross_entropy_with_logits(x, np.ones(SHAPE, np.float32)),
               expected, "numpy target")
    read_only = np.ones(SHAPE, np.float32)
    read_only.flags.writeable = False
    _same_meta(xbce.binary_cross_entropy_with_logits(x, read_only), expected, "read-only")


@pytest.mark.parametrize("name", TORCH)
@pytest.mark.parametrize("op", FUNCS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_meta_autograd_and_explicit_backward(name: str, op: str, reduction: str,
                                              dtype: str) -> None:
    ours, theirs = FUNCS[op]
    like = torch.empty(SHAPE, dtype=getattr(torch, dtype))
    w = meta(torch.empty(SHAPE[1], dtype=like.dtype))
    kw: dict[str, Any] = {"reduction": reduction, "weight": w}
    if op == "bcewl":
        kw["pos_weight"] = meta(torch.empty(SHAPE[1], dtype=like.dtype))
    grads = []
    for fn in (ours, theirs):
        x, y = meta(like, requires_grad=True), meta(like, requires_grad=True)
        loss = fn(x, y, **kw)
        g = meta(loss)
        grads.append(torch.autograd.grad(loss, (x, y), g))
    for got, expected in zip(*grads, strict=True):
        _same_meta(got, expected, f"{op} {reduction} autograd")
    g = meta(torch.empty(() if reduction != "none" else SHAPE, dtype=like.dtype))
    for fn, expected in zip(BACKWARDS[op], grads[1], strict=True):
        got = fn(g, meta(like), meta(like), **kw)
        _same_meta(got, expected, f"{fn.__name__} {reduction}")


@pytest.mark.parametrize("name", TORCH)
@pytest.mark.parametrize("op", FUNCS)
def test_meta_skips_the_value_check_as_torch(name: str, op: str) -> None:
    """torch's meta kernels never look at values (there are none): neither does xbce,
    whatever the reduction (BCE's value check rides on the computed loss elsewhere)."""
    ours, theirs = FUNCS[op]
    x, y = meta(torch.empty(4)), meta(torch.empty(4))
    for reduction in REDUCTIONS:
        _same_meta(ours(x, y, reduction=reduction), theirs(x, y, reduction=reduction),
                   reduction)


def _torch_error(fn: Any, *args: Any, **kwargs: Any) -> BaseException:
    with pytest.raises(Exception) as info:  # noqa: PT011 - torch's own class
        fn(*args, **kwargs)
    return info.value


@pytest.mark.parametrize("name", TORCH)
@pytest.mark.parametrize("op", FUNCS)
@pytest.mark.parametrize("where", ["input", "target", "weight"])
def test_meta_next_to_cpu_raises_torchs_error(name: str, op: str, where: str) -> None:
    ours, theirs = FUNCS[op]
    args = {"input": torch.full((3,), 0.5), "target": torch.ones(3), "weight": torch.ones(3)}
    args[where] = meta(args[where])
    expected = _torch_error(theirs, **args)
    with pytest.raises(type(expected)) as info:
        ours(**args)
    assert str(info.value) == str(expected)


@pytest.mark.parametrize("name", TORCH)
@pytest.mark.parametrize("op", FUNCS)
def test_meta_shape_errors_are_torchs(name: str, op: str) -> None:
    ours, theirs = FUNCS[op]
    x, y = meta(torch.empty(3)), meta(torch.empty(2))
    expected = _torch_error(theirs, x, y)
    with pytest.raises(type(expected)) as info:
        ours(x, y)
    assert str(info.value) == str(expected)
    w = meta(torch.empty(2))
    expected = _torch_error(theirs, x, x, weight=w)
    with pytest.raises(RuntimeError) as info:
        ours(x, x, weight=w)
    if op == "bce":  # F.binary_cross_entropy's Python-side broadcast_shapes, as on the CPU
        assert str(info.value) == str(expected)


@pytest.mark.parametrize("name", TORCH)
@pytest.mark.parametrize("op", FUNCS)
@pytest.mark.parametrize("bad", ["int64", "bool"])
def test_meta_dtype_errors_are_the_devices(name: str, op: str, bad: str) -> None:
    """torch's meta kernels (Python decompositions) accept an integer or bool input that
    every device's kernel refuses (``F.binary_cross_entropy`` of int64 meta tensors
    returns a float32 meta tensor; bool ones fail in another op): xbce raises the error
    of the device a meta tensor stands in for, measured here on the CPU."""
    ours, theirs = FUNCS[op]
    x = torch.zeros(3, dtype=getattr(torch, bad))
    y = torch.ones(3)
    if bad == "int64":  # torch's meta path: no error
        assert theirs(meta(x), meta(y)).device.type == "meta"
    expected = _torch_error(theirs, x, y)
    with pytest.raises(type(expected)) as info:
        ours(meta(x), meta(y))
    assert str(info.value) == str(expected)
