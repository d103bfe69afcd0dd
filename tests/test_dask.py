"""Dask: graphs are built without computing anything; values, errors and unknown
chunk sizes are settled when the graph is computed, inside the chunk tasks.

Expected values come from torch on the same (rounded) data, and the elementwise
results from xbce on the same NumPy data (each chunk is that NumPy computation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import BACKENDS, rounded
from comparisons import check

import xbce

pytestmark = pytest.mark.skipif("dask" not in BACKENDS, reason="runs in the dask session")

da = pytest.importorskip("dask.array") if "dask" in BACKENDS else None
dask = pytest.importorskip("dask") if "dask" in BACKENDS else None


def _no_compute(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("building the graph computed something")


def _backend() -> Any:
    from backends import load

    return load("dask")


def _arrays(rng: np.random.Generator, n: int, dtype: str, chunks: int) -> dict[str, Any]:
    p, y = rng.random(n), np.round(rng.random(n))
    p[:3] = [0.0, 1.0, 0.5]
    logits = rng.normal(0, 4, n)
    w, pw = rng.random(n) * 2, rng.random(n) * 3
    out = {}
    for name, v in {"p": p, "y": y, "x": logits, "w": w, "pw": pw}.items():
        t = rounded(v, dtype)
        out[name] = (t, da.from_array(t.numpy(), chunks=chunks))
    return out


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_graph_built_without_computing_then_torchs_values(
    rng: np.random.Generator, dtype: str, reduction: str
) -> None:
    a = _arrays(rng, 1000, dtype, chunks=300)
    (pt, p), (yt, y), (xt, x), (wt, w), (pwt, pw) = (a[k] for k in ("p", "y", "x", "w", "pw"))
    g = da.from_array(_grad(reduction, pt.numpy()), chunks=300)
    with dask.config.set(scheduler=_no_compute):
        graphs = {
            "bce": xbce.binary_cross_entropy(p, y, reduction=reduction),
            "bce_w": xbce.binary_cross_entropy(p, y, w, reduction=reduction),
            "bcewl": xbce.binary_cross_entropy_with_logits(x, y, reduction=reduction),
            "bcewl_wp": xbce.binary_cross_entropy_with_logits(
                x, y, w, reduction=reduction, pos_weight=pw
            ),
            "bce_grad": xbce.binary_cross_entropy_backward(
                g, p, y, w, reduction=reduction
            ),
            "bcewl_grad": xbce.binary_cross_entropy_with_logits_backward(
                g, x, y, w, reduction=reduction, pos_weight=pw
            ),
        }
        masked = xbce.binary_cross_entropy(p[p > 0.25], y[p > 0.25], reduction=reduction)
    expected = {
        "bce": TF.binary_cross_entropy(pt, yt, reduction=reduction),
        "bce_w": TF.binary_cross_entropy(pt, yt, wt, reduction=reduction),
        "bcewl": TF.binary_cross_entropy_with_logits(xt, yt, reduction=reduction),
        "bcewl_wp": TF.binary_cross_entropy_with_logits(
            xt, yt, wt, reduction=reduction, pos_weight=pwt
        ),
    }
    backend = _backend()
    for name, want in expected.items():
        quantity = name.split("_")[0] if reduction == "none" else "reduced"
        terms = _terms(name, pt, yt, xt, wt, pwt)
        scale = terms if reduction == "none" else terms.double().sum() / max(1, terms.numel())
        if reduction == "sum":
            scale = terms.double().sum()
        check(backend, graphs[name], want, quantity, dtype, scale=scale, what=name)
    # the explicit backward: each chunk is NumPy's computation, bit for bit
    g = _grad(reduction, pt.numpy())
    npp, npy, npw, npx, nppw = (t.numpy() for t in (pt, yt, wt, xt, pwt))
    want_bce = xbce.binary_cross_entropy_backward(g, npp, npy, npw, reduction=reduction)
    want_bcewl = xbce.binary_cross_entropy_with_logits_backward(
        g, npx, npy, npw, reduction=reduction, pos_weight=nppw
    )
    assert np.asarray(graphs["bce_grad"].compute()).tobytes() == want_bce.tobytes()
    assert np.asarray(graphs["bcewl_grad"].compute()).tobytes() == want_bcewl.tobytes()
    # boolean masking gives unknown chunk sizes: torch's value for the same data
    keep = pt > 0.25
    want = TF.binary_cross_entropy(pt[keep], yt[keep], reduction=reduction)
    scale = torch.tensor(100.0 * (float(keep.sum()) if reduction == "sum" else 1))
    check(backend, masked, want, "bce" if reduction == "none" else "reduced", dtype,
          scale=scale, what="masked")


def _grad(reduction: str, like: np.ndarray) -> np.ndarray:
    """The upstream gradient: 0.75 everywhere (``none``) or a 0-d 0.75."""
    return np.full(like.shape if reduction == "none" else (), 0.75, dtype=like.dtype)


def _terms(name: str, p: torch.Tensor, y: torch.Tensor, x: torch.Tensor, w: torch.Tensor,
           pw: torch.Tensor) -> torch.Tensor:
    """The magnitudes that add up to each loss: the scale of its rounding."""
    if name.startswith("bcewl"):
        mag = x.double().abs() + TF.logsigmoid(x.double()).abs() * (1 + pw.double())
    else:
        mag = TF.binary_cross_entropy(p.double(), y.double(), reduction="none") + 1
    return mag * (w.double() if name.endswith(("_w", "_wp")) else 1)


def test_no_extra_graph_layer_or_task() -> None:
    """The value check rides inside the loss's own chunk tasks: the graph has the
    layers and tasks of a hand-written elementwise loss reduced the same way."""
    p = da.from_array(np.linspace(0, 1, 1000, dtype=np.float32), chunks=100)
    y = da.from_array(np.ones(1000, dtype=np.float32), chunks=100)
    ours = xbce.binary_cross_entropy(p, y)
    hand = (p * y).sum() / 1000
    assert len(ours.dask.layers) == len(hand.dask.layers)
    assert len(dict(ours.__dask_graph__())) == len(dict(hand.__dask_graph__()))
    none = xbce.binary_cross_entropy(p, y, reduction="none")
    assert len(dict(none.__dask_graph__())) == len(dict((p * y).__dask_graph__()))


@pytest.mark.parametrize("where", ["input", "target"])
@pytest.mark.parametrize("bad", [-0.5, 1.5, float("nan"), float("inf")])
def test_compute_raises_torchs_error(where: str, bad: float) -> None:
    xv, yv = np.full(400, 0.5, np.float32), np.ones(400, np.float32)
    (xv if where == "input" else yv)[321] = bad
    expected = _torch_error(torch.from_numpy(xv), torch.from_numpy(yv))
    x, y = da.from_array(xv, chunks=100), da.from_array(yv, chunks=100)
    with dask.config.set(scheduler=_no_compute):
        graphs = [xbce.binary_cross_entropy(x, y, reduction=r) for r in ("mean", "sum", "none")]
    runs = [
        lambda g: g.compute(),
        lambda g: dask.compute(g, scheduler="synchronous"),
        lambda g: g.persist(),
    ]
    for graph in graphs:
        for run in runs:
            with pytest.raises(type(expected)) as info:
                run(graph)
            assert isinstance(info.value, ValueError)  # and the natural Python class
            assert str(info.value) == str(expected)


def test_bad_values_in_two_chunks_raise_one_of_their_errors() -> None:
    """Across chunks, the task that fails first reports (within a chunk, the first bad
    element in memory order decides, as in torch)."""
    xv, yv = np.full(200, 0.5, np.float32), np.ones(200, np.float32)
    xv[150], yv[20] = 2.0, -1.0
    x, y = da.from_array(xv, chunks=100), da.from_array(yv, chunks=100)
    with pytest.raises(RuntimeError, match=r"^all elements of (input|target) should be"):
        xbce.binary_cross_entropy(x, y).compute()


def test_bce_with_logits_has_no_value_checks() -> None:
    xv, tv = np.asarray([np.nan, 3.0, -np.inf, 0.0]), np.asarray([2.0, -1.0, 0.5, np.nan])
    want = TF.binary_cross_entropy_with_logits(
        torch.from_numpy(xv), torch.from_numpy(tv), reduction="none"
    )
    got = xbce.binary_cross_entropy_with_logits(
        da.from_array(xv, chunks=2), da.from_array(tv, chunks=2), reduction="none"
    ).compute()
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("name", ["bce", "bcewl"])
def test_unknown_sizes_that_differ_raise_torchs_error_at_compute(name: str) -> None:
    """Sizes unknown when the graph is built are compared block by block when it is
    computed; the message is torch's, naming the sizes of the blocks that differ."""
    v = np.linspace(0.05, 0.95, 40, dtype=np.float32)
    x = da.from_array(v, chunks=10)
    xm, ym = x[x > 0.2], x[x > 0.5]  # 32 and 20 elements
    ours = xbce.binary_cross_entropy if name == "bce" else xbce.binary_cross_entropy_with_logits
    theirs = TF.binary_cross_entropy if name == "bce" else TF.binary_cross_entropy_with_logits
    with dask.config.set(scheduler=_no_compute):
        graph = ours(xm, ym)  # no false error from comparing NaN sizes
    with pytest.raises(ValueError, match="size") as info:
        graph.compute()
    # which pair of blocks fails first depends on the scheduler: it is one that differs
    pairs = [(int((b > 0.2).sum()), int((b > 0.5).sum())) for b in v.reshape(4, 10)]
    messages = {
        str(_torch_error(torch.full((a,), 0.5), torch.full((b,), 0.5), fn=theirs))
        .replace("torch.Size([", "(").replace("])", ",)")
        for a, b in pairs if a != b
    }
    assert str(info.value) in messages


def test_unknown_sizes_with_a_weight() -> None:
    rng = np.random.default_rng(3)
    pv = rng.random((60, 4)).astype(np.float32)
    yv = np.round(rng.random((60, 4))).astype(np.float32)
    wv = np.asarray([1.0, 2.0, 0.5, 3.0], np.float32)
    keep = pv[:, 0] > 0.3
    p, y = da.from_array(pv, chunks=(25, 4)), da.from_array(yv, chunks=(25, 4))
    m = da.from_array(keep, chunks=25)
    got = xbce.binary_cross_entropy(p[m], y[m], da.from_array(wv))
    want = TF.binary_cross_entropy(
        torch.from_numpy(pv[keep]), torch.from_numpy(yv[keep]), torch.from_numpy(wv)
    )
    check(_backend(), got, want, "reduced", "float32", scale=torch.tensor(300.0))


def test_mean_gradient_of_unknown_size_is_an_error_not_nan() -> None:
    x = da.from_array(np.linspace(0.1, 0.9, 10), chunks=5)
    xm = x[x > 0.3]
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        xbce.binary_cross_entropy_backward(da.asarray(np.float64(1.0)), xm, xm)


def _torch_error(x: torch.Tensor, y: torch.Tensor, fn: Any = TF.binary_cross_entropy) -> Any:
    with pytest.raises(Exception) as info:  # noqa: PT011 - torch's own class
        fn(x, y)
    return info.value
