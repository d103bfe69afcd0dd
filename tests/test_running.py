"""xbce.running: the running BCE equals torch's one-shot loss on the concatenated batches.

Every expected value is torch's ``binary_cross_entropy[_with_logits]`` on the whole data
(``torch.cat`` of the batches), computed here on CPU tensors of the same bits, and
compared within the tolerance xbce documents for ``mean``/``sum`` ("reduced" in
tests/tolerances.py: ulps of the sum of |terms|, the summation order being the only
difference). Parametrized over the ``backend`` fixture, so each nox backend session
runs them (JAX with x64 off: the float32 accumulator with compensation).
"""

from __future__ import annotations

import io
import itertools
import pickle
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import BACKENDS, JAX_X64, Backend, load, rounded
from comparisons import check, loss_scale

import xbce
from xbce import running

OPS = ("bce", "bcewl")
WEIGHTS = ("none", "elementwise", "per_class", "pos_weight")
# empty, one-element and uneven batches (few distinct sizes: JAX compiles update per size)
SIZES = (0, 1, 5, 0, 17, 1, 5, 2, 0, 17)


def _data(rng: np.random.Generator, n: int, op: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (probabilities with exact 0s and 1s, or logits) and soft/hard targets,
    shape (n, 3), float64 NumPy (rounded to the test's dtype by the backend)."""
    if op == "bce":
        x = rng.uniform(0.0, 1.0, (n, 3))
        x.flat[:: 7] = rng.choice([0.0, 1.0, 1e-30, 1 - 1e-9], size=x.flat[:: 7].shape)
    else:
        x = rng.normal(0.0, 4.0, (n, 3))
    y = rng.uniform(0.0, 1.0, (n, 3))
    y.flat[:: 3] = rng.choice([0.0, 1.0], size=y.flat[:: 3].shape)
    return x, y


def _reference(
    op: str, xt: torch.Tensor, yt: torch.Tensor, wt: torch.Tensor | None,
    pt: torch.Tensor | None, reduction: str,
) -> torch.Tensor:
    if op == "bce":
        return TF.binary_cross_entropy(xt, yt, wt, reduction=reduction)
    return TF.binary_cross_entropy_with_logits(xt, yt, wt, pos_weight=pt, reduction=reduction)


class Case:
    """Data of ``sum(sizes)`` rows on the backend, its torch copy and its batches."""

    def __init__(self, backend: Backend, rng: np.random.Generator, op: str, weights: str,
                 dtype: str, sizes: tuple[int, ...] = SIZES) -> None:
        n = sum(sizes)
        x, y = _data(rng, n, op)
        self.op, self.backend, self.dtype = op, backend, dtype
        self.xt, self.yt = rounded(x, dtype), rounded(y, dtype)
        self.x, self.y = backend.asarray(self.xt, dtype), backend.asarray(self.yt, dtype)
        self.wt = self.pt = None
        self.w = self.p = None
        if weights == "elementwise":
            self.wt = rounded(rng.uniform(0.0, 2.0, (n, 3)), dtype)
        elif weights == "per_class":
            self.wt = rounded(rng.uniform(0.0, 2.0, (3,)), dtype)
        elif weights == "pos_weight":
            self.pt = rounded(rng.uniform(0.25, 4.0, (3,)), dtype)
        if self.wt is not None:
            self.w = backend.asarray(self.wt, dtype)
        if self.pt is not None:
            self.p = backend.asarray(self.pt, dtype)
        bounds = np.cumsum((0, *sizes))
        self.slices = [(int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds)]

    def weight_of(self, lo: int, hi: int) -> Any:
        if self.w is None or self.wt is None:
            return None
        return self.w[lo:hi, ...] if self.wt.ndim == 2 else self.w

    def state(self, slices: list[tuple[int, int]] | None = None) -> running.State:
        state = running.init(self.x)
        for lo, hi in self.slices if slices is None else slices:
            state = running.update(
                state, self.x[lo:hi, ...], self.y[lo:hi, ...], self.weight_of(lo, hi),
                logits=self.op == "bcewl", pos_weight=self.p,
            )
        return state

    def expected(self, reduction: str) -> torch.Tensor:
        return _reference(self.op, self.xt, self.yt, self.wt, self.pt, reduction)

    def check(self, got: Any, reduction: str, what: str = "") -> None:
        scale = loss_scale(self.op, self.xt, self.yt, self.wt, self.pt, reduction=reduction)
        check(self.backend, got, self.expected(reduction), "reduced", self.dtype, scale=scale,
              what=f"{self.backend.name} {self.op} {reduction} {self.dtype} {what}")


def _ops_weights() -> list[tuple[str, str]]:
    return [(op, w) for op in OPS for w in WEIGHTS if not (op == "bce" and w == "pos_weight")]


# ------------------------------------------------------------ the one-shot value
@pytest.mark.parametrize(("op", "weights"), _ops_weights())
def test_equals_torch_on_the_concatenated_batches(
    backend: Backend, dtype: str, rng: np.random.Generator, op: str, weights: str
) -> None:
    case = Case(backend, rng, op, weights, dtype)
    state = case.state()
    for reduction in ("mean", "sum"):
        case.check(running.result(state, reduction), reduction)


@pytest.mark.parametrize("op", OPS)
def test_order_of_batches_and_merge(backend: Backend, rng: np.random.Generator, op: str) -> None:
    """Shuffled batches, and states of three groups merged in both associations, all give
    torch's one-shot value; merging a state of no data changes nothing."""
    case = Case(backend, rng, op, "elementwise", "float32")
    shuffled = [case.slices[i] for i in rng.permutation(len(case.slices))]
    a, b, c = (case.state(shuffled[i::3]) for i in range(3))
    empty = running.init(case.x)
    for reduction in ("mean", "sum"):
        case.check(running.result(case.state(shuffled), reduction), reduction, "shuffled")
        left = running.merge(running.merge(a, b), c)
        right = running.merge(a, running.merge(b, c))
        case.check(running.result(left, reduction), reduction, "(a+b)+c")
        case.check(running.result(right, reduction), reduction, "a+(b+c)")
        case.check(running.result(running.merge(empty, left), reduction), reduction, "0+all")


@pytest.mark.parametrize("op", OPS)
def test_empty_dataset_is_torchs_empty_loss(backend: Backend, op: str) -> None:
    """No batch, or only empty ones: NaN for mean, 0 for sum, as torch on empty inputs."""
    x = backend.asarray(np.zeros((0, 3)), "float32")
    logits = op == "bcewl"
    for state in (running.init(x), running.update(running.init(x), x, x, logits=logits)):
        for reduction in ("mean", "sum"):
            empty = torch.zeros((0, 3))
            expected = _reference(op, empty, empty, None, None, reduction)
            check(backend, running.result(state, reduction), expected, "reduced", "float32",
                  what=f"empty {reduction}")


def test_one_element_batches(backend: Backend, rng: np.random.Generator) -> None:
    case = Case(backend, rng, "bce", "elementwise", "float32", sizes=(1,) * 40)
    case.check(running.result(case.state()), "mean")


def test_accumulator(backend: Backend) -> None:
    """float64 where the library has it; a float32 pair (with compensation) on JAX with
    x64 off. Counts: int64, or int32 below 2**24 with a carry."""
    state = running.init(backend.asarray(np.zeros(2), "float32"))
    narrow = backend.name in ("jax", "jax_gpu") and not JAX_X64
    assert str(state.total.dtype).endswith("float32" if narrow else "float64")
    assert state.compensation.dtype == state.total.dtype
    assert str(state.count.dtype).endswith("int32" if narrow else "int64")
    assert state.like.dtype == backend.asarray(np.zeros(1), "float32").dtype
    for field in state:
        assert backend.is_native(field)
        assert tuple(field.shape) == ()


def test_count_carries_past_two_to_the_24(backend: Backend, rng: np.random.Generator) -> None:
    """A state that has seen 2**24 - 1 elements of loss 0.5, 3 more: the mean divides by
    2**24 + 2 (a 32-bit count carries into count_high instead of losing elements)."""
    xp = backend.xp
    seen = 2**24 - 1
    state = running.init(backend.asarray(np.zeros(1), "float32"))
    total = xp.asarray(0.5 * seen, dtype=state.total.dtype)
    count = xp.asarray(seen, dtype=state.count.dtype)
    state = state._replace(total=total, count=count)
    x, y = _data(rng, 1, "bce")
    xt, yt = rounded(x, "float32"), rounded(y, "float32")
    state = running.update(state, backend.asarray(xt, "float32"), backend.asarray(yt, "float32"))
    batch = TF.binary_cross_entropy(xt.double(), yt.double(), reduction="sum")
    expected = ((0.5 * seen + batch) / (seen + 3)).float()
    check(backend, running.result(state), expected, "reduced", "float32")
    if not str(state.count.dtype).endswith("64"):
        assert int(backend.to_torch(state.count_high)) == 1
        assert int(backend.to_torch(state.count)) == 2


@pytest.mark.parametrize("op", OPS)
def test_ten_million_float32_elements(backend: Backend, op: str) -> None:
    """10**7 float32 elements in random batches of 1 to 4096, mean and sum: within the
    one-shot tolerance of torch's value on the whole. JAX: a few batch sizes, drawn at
    random (jitted update compiles once per shape). On Dask a graph of thousands of
    batches is the wrong use (per-partition states, then ``merge``) and array-api-strict
    checks every operation in Python: 2 * 10**5 elements there."""
    rng = np.random.default_rng(20 + OPS.index(op))
    n = 10**7 if backend.name in ("numpy", "torch", "jax") else 2 * 10**5
    if backend.name.startswith("jax"):
        sizes = rng.choice([1, 7, 1000, 4096], size=n // 1024)
    else:
        sizes = rng.integers(1, 4097, size=n // 1024)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    bounds = np.append(bounds[bounds < n], n)
    assert len(bounds) > n // 4096
    y = (rng.uniform(0.0, 1.0, n) < 0.3).astype(np.float32)
    x = rng.uniform(0.0, 1.0, n) if op == "bce" else rng.normal(0.0, 3.0, n)
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    xb, tb = backend.asarray(xt, "float32"), backend.asarray(yt, "float32")
    state = running.init(xb)
    for lo, hi in itertools.pairwise(bounds):
        state = running.update(state, xb[lo:hi], tb[lo:hi], logits=op == "bcewl")
    scale = loss_scale(op, xt, yt, reduction="sum")
    for reduction in ("mean", "sum"):
        expected = _reference(op, xt, yt, None, None, reduction)
        check(backend, running.result(state, reduction), expected, "reduced", "float32",
              scale=scale / n if reduction == "mean" else scale,
              what=f"{op} {reduction} of {n} elements in {len(bounds) - 1} batches")


# ------------------------------------------------------------ the object form
@pytest.mark.parametrize("op", OPS)
def test_object_form(backend: Backend, rng: np.random.Generator, op: str) -> None:
    case = Case(backend, rng, op, "pos_weight" if op == "bcewl" else "elementwise", "float32")
    logits = op == "bcewl"
    for reduction in ("mean", "sum"):
        metric = running.RunningBCE(logits=logits, pos_weight=case.p, reduction=reduction)
        with pytest.raises(RuntimeError, match="before the first update"):
            metric.compute()
        half = len(case.slices) // 2
        other = running.RunningBCE(logits=logits, pos_weight=case.p, reduction=reduction)
        for i, (lo, hi) in enumerate(case.slices):
            target = metric if i < half else other
            batch = (case.x[lo:hi, ...], case.y[lo:hi, ...], case.weight_of(lo, hi))
            assert target.update(*batch) is None
        assert metric.merge(other) is metric
        case.check(metric.compute(), reduction, "object")
        metric.reset()
        assert metric.state is None
        assert metric.state_dict() == {}
        with pytest.raises(RuntimeError, match="before the first update"):
            metric.compute()
    with pytest.raises(ValueError, match="logits"):
        running.RunningBCE(logits=True).merge(running.RunningBCE())
    with pytest.raises(ValueError, match="no reduction 'none'"):
        running.RunningBCE(reduction="none")
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        running.result(running.init(case.x), "avg")


def test_state_dict_round_trip(backend: Backend, rng: np.random.Generator) -> None:
    """state_dict -> checkpoint -> load_state_dict, then more batches: torch.save/torch.load
    for torch tensors, pickle for the other libraries; the JAX state is a pytree."""
    case = Case(backend, rng, "bcewl", "per_class", "float32")
    metric = running.RunningBCE(logits=True)
    cut = len(case.slices) // 2
    for lo, hi in case.slices[:cut]:
        metric.update(case.x[lo:hi, ...], case.y[lo:hi, ...], case.weight_of(lo, hi))
    saved = metric.state_dict()
    assert set(saved) == set(running.State._fields)
    if backend.name.startswith("torch"):
        buffer = io.BytesIO()
        torch.save(saved, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer)
    else:
        try:
            loaded = pickle.loads(pickle.dumps(saved))
        except TypeError:
            # array-api-strict arrays pickle from 2.4 on; at its floor (2.3, nox -s
            # minimum) a checkpoint holds host copies, put back on the arrays' device
            assert backend.name == "array_api_strict", backend.name
            loaded = {
                key: backend.xp.asarray(
                    pickle.loads(pickle.dumps(backend.to_torch(value).numpy())),
                    device=value.device,
                )
                for key, value in saved.items()
            }
    restored = running.RunningBCE(logits=True)
    restored.load_state_dict(loaded)
    for lo, hi in case.slices[cut:]:
        restored.update(case.x[lo:hi, ...], case.y[lo:hi, ...], case.weight_of(lo, hi))
    case.check(restored.compute(), "mean", "restored")
    for key, value in restored.state_dict().items():
        assert backend.is_native(value), key
    with pytest.raises(KeyError, match="missing keys"):
        restored.load_state_dict({"total": saved["total"]})
    restored.load_state_dict({})
    assert restored.state is None
    if backend.name.startswith("jax"):
        import jax

        leaves, tree = jax.tree_util.tree_flatten(metric.state)
        assert len(leaves) == len(running.State._fields)
        again = jax.tree_util.tree_unflatten(tree, leaves)
        assert isinstance(again, running.State)


def test_dtypes_must_agree(backend: Backend) -> None:
    if "float64" not in backend.dtypes:
        pytest.skip(f"{backend.name} has no float64 here (a float32 state, a float64 batch)")
    x32 = backend.asarray(np.full(2, 0.5), "float32")
    x64 = backend.asarray(np.full(2, 0.5), "float64")
    with pytest.raises(TypeError, match="the state accumulates losses of"):
        running.update(running.init(x32), x64, x64)
    with pytest.raises(TypeError, match="do not merge"):
        running.merge(running.init(x32), running.init(x64))
    with pytest.raises(TypeError, match="pos_weight is an argument of the logits loss"):
        running.update(running.init(x32), x32, x32, pos_weight=x32)
    with pytest.raises(TypeError, match="real floating dtype"):
        running.init(backend.xp.asarray([1, 2]))


@pytest.mark.skipif("array_api_strict" not in BACKENDS,
                    reason="array-api-strict's second device: the array_api_strict session")
@pytest.mark.parametrize("op", OPS)
def test_array_api_strict_second_device(rng: np.random.Generator, op: str) -> None:
    """Arrays on array-api-strict's Device("device1"): every state field and the result
    stay there, with torch's value."""
    import array_api_strict as strict

    backend = load("array_api_strict")
    dev = strict.Device("device1")
    case = Case(backend, rng, op, "per_class", "float32")
    case.x, case.y = strict.asarray(case.x, device=dev), strict.asarray(case.y, device=dev)
    case.w = strict.asarray(case.w, device=dev)
    state = case.state()
    assert all(field.device == dev for field in state)
    merged = running.merge(state, running.init(case.x))
    for reduction in ("mean", "sum"):
        out = running.result(merged, reduction)
        assert out.device == dev
        case.check(strict.asarray(out, device=strict.Device("CPU_DEVICE")), reduction, "device1")


def test_python_scalar_weight(backend: Backend, rng: np.random.Generator) -> None:
    """A Python float weight, as the loss takes it (on JAX too, where update is jitted)."""
    x, y = _data(rng, 9, "bce")
    xt, yt = rounded(x, "float32"), rounded(y, "float32")
    state = running.update(None, backend.asarray(xt, "float32"), backend.asarray(yt, "float32"),
                           2.5)
    for reduction in ("mean", "sum"):
        expected = TF.binary_cross_entropy(xt, yt, torch.tensor(2.5), reduction=reduction)
        check(backend, running.result(state, reduction), expected, "reduced", "float32",
              scale=loss_scale("bce", xt, yt, torch.tensor(2.5), reduction=reduction))


@pytest.mark.skipif("torch" not in BACKENDS, reason="torch tensors: the torch session")
def test_numpy_input_joins_torch_target() -> None:
    p, y = np.array([0.25, 0.5], dtype=np.float32), torch.tensor([0.0, 1.0])
    out = running.result(running.update(None, p, y))
    assert isinstance(out, torch.Tensor)
    check(load("torch"), out, TF.binary_cross_entropy(torch.from_numpy(p), y), "reduced",
          "float32")


# ------------------------------------------------------------ errors and values
def _torch_error(fn: Callable[[], Any]) -> Exception:
    """The exception ``fn()`` raises (the test fails if it raises none)."""
    try:
        fn()
    except Exception as error:  # whatever torch raises is the reference
        return error
    raise AssertionError(f"{fn} raised nothing")


_BAD = [("input", [0.5, 1.5], [0.0, 1.0]), ("input", [0.5, float("nan")], [0.0, 1.0]),
        ("target", [0.5, 0.5], [0.0, -1.0])]


@pytest.mark.parametrize(("what", "p", "y"), _BAD)
def test_bad_values(backend: Backend, what: str, p: list[float], y: list[float]) -> None:
    """On the CPU libraries update raises as the loss raises (torch's type and message);
    Dask raises when the result is computed; JAX (update runs jitted: nothing is read)
    gives NaN, and raises torch's message under xbce.checkify."""
    pt, yt = torch.tensor(p), torch.tensor(y)
    expected = _torch_error(lambda: TF.binary_cross_entropy(pt, yt))
    x, t = backend.asarray(pt, "float32"), backend.asarray(yt, "float32")
    state = running.init(x)
    message = re.escape(str(expected))
    if backend.name in ("numpy", "torch", "array_api_strict"):
        with pytest.raises(type(expected), match=message):
            running.update(state, x, t)
    elif backend.name == "dask":
        out = running.result(running.update(state, x, t))  # builds the graph, reads nothing
        with pytest.raises(type(expected), match=message):
            out.compute()
    elif backend.name.startswith("jax"):
        import jax

        out = running.result(running.update(state, x, t))
        assert bool(np.isnan(np.asarray(out)))
        for fn in (running.update, jax.jit(running.update)):
            err, _ = xbce.checkify(fn)(state, x, t)
            assert err.get() is not None
            assert str(expected) in err.get()
        good = backend.asarray(np.full(2, 0.5), "float32")
        err, _ = xbce.checkify(running.update)(state, good, good)
        assert err.get() is None
    else:  # pragma: no cover - GPU backends: nothing read, NaN
        out = running.result(running.update(state, x, t))
        assert bool(backend.to_torch(out).isnan())


def test_argument_errors_are_the_losses(backend: Backend) -> None:
    """Shape errors: torch's exception type, and the message of xbce's loss on the same
    arrays (its shapes written in the library's words), raised at update."""
    x = backend.asarray(np.full(3, 0.5), "float32")
    t = backend.asarray(np.full(2, 0.5), "float32")
    for logits, ref, loss in (
        (False, TF.binary_cross_entropy, xbce.binary_cross_entropy),
        (True, TF.binary_cross_entropy_with_logits, xbce.binary_cross_entropy_with_logits),
    ):
        expected = _torch_error(lambda ref=ref: ref(torch.full((3,), 0.5), torch.full((2,), 0.5)))
        ours = _torch_error(lambda loss=loss: loss(x, t))
        assert isinstance(ours, type(expected))
        with pytest.raises(type(expected), match=re.escape(str(ours))):
            running.update(running.init(x), x, t, logits=logits)


# ------------------------------------------------------------ no host reads
_HOST_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__",
               "__index__")


def _refuse_host_reads(monkeypatch: pytest.MonkeyPatch, which: Callable[[Any], bool]) -> None:
    for name in _HOST_READS:
        original = getattr(torch.Tensor, name)

        def refuse(self: torch.Tensor, *args: Any, _name: str = name, _f: Any = original,
                   **kwargs: Any) -> Any:
            if which(self):
                raise AssertionError(f"update read a tensor on the host: Tensor.{_name}")
            return _f(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, refuse)


@pytest.mark.skipif("torch" not in BACKENDS, reason="torch meta tensors: the torch session")
@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize(("op", "weights"), _ops_weights())
def test_torch_meta_tensors_read_nothing(
    monkeypatch: pytest.MonkeyPatch, op: str, weights: str, dtype: str
) -> None:
    """Meta tensors (values that do not exist, as on a device the host must not wait
    for): update works with every host read of a tensor made to fail."""
    meta = torch.device("meta")
    tdtype = getattr(torch, dtype)
    x = torch.empty((6, 3), dtype=tdtype, device=meta)
    w = {"elementwise": x, "per_class": torch.empty(3, dtype=tdtype, device=meta)}.get(weights)
    p = torch.empty(3, dtype=tdtype, device=meta) if weights == "pos_weight" else None
    _refuse_host_reads(monkeypatch, lambda t: True)
    state = running.init(x)
    for lo, hi in ((0, 2), (2, 2), (2, 6)):
        wb = w[lo:hi] if weights == "elementwise" and w is not None else w
        state = running.update(state, x[lo:hi], x[lo:hi], wb, logits=op == "bcewl",
                               pos_weight=p)
    for reduction in ("mean", "sum"):
        out = running.result(state, reduction)
        assert out.is_meta
        assert out.dtype == tdtype
        assert out.shape == ()
    assert all(f.is_meta for f in state)
    monkeypatch.undo()


@pytest.mark.skipif("torch" not in BACKENDS, reason="torch tensors: the torch session")
def test_torch_accelerator_path_reads_nothing(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator
) -> None:
    """The path tensors off the CPU (CUDA) take, on CPU tensors: with BCE's value check
    left out and every host read failing, update gives torch's value; a bad value gives
    NaN instead of a synchronising check."""
    backend = load("torch")
    case = Case(backend, rng, "bce", "elementwise", "float32")
    bad = torch.tensor([0.5, 1.5])
    monkeypatch.setattr(running, "_reads", lambda lib, x, t: False)
    _refuse_host_reads(monkeypatch, lambda t: True)
    state = case.state()
    nan_state = running.update(running.init(bad), bad, bad * 0)
    half = torch.full((4,), 0.25, dtype=torch.float16)
    half_state = running.update(running.init(half), half, half)
    monkeypatch.undo()
    case.check(running.result(state), "mean", "unread path")
    assert bool(running.result(nan_state).isnan())
    check(backend, running.result(half_state),
          TF.binary_cross_entropy(half, half), "reduced", "float16")


@pytest.mark.skipif("torch" not in BACKENDS, reason="torch tensors: the torch session")
def test_torch_state_keeps_no_graph() -> None:
    x = torch.full((4,), 0.3, requires_grad=True)
    state = running.update(running.init(x), x, torch.ones(4))
    assert not any(f.requires_grad for f in state)
    assert x.grad is None


# ------------------------------------------------------------ JAX transformations
@pytest.mark.skipif("jax" not in BACKENDS, reason="JAX arrays: the jax session")
def test_jax_jit_and_scan(rng: np.random.Generator) -> None:
    """``jax.jit(running.update)`` takes and gives the state as a pytree; so does a
    ``lax.scan`` over equal batches; both give torch's one-shot value."""
    import jax

    backend = load("jax")
    case = Case(backend, rng, "bcewl", "pos_weight", "float32", sizes=(8,) * 6)
    step = jax.jit(running.update, static_argnames=("logits",))
    state = running.init(case.x)
    for lo, hi in case.slices:
        state = step(state, case.x[lo:hi, ...], case.y[lo:hi, ...], logits=True, pos_weight=case.p)
    assert isinstance(state, running.State)
    case.check(running.result(state), "mean", "jit")

    xs, ys = case.x.reshape(6, 8, 3), case.y.reshape(6, 8, 3)

    def body(s: running.State, batch: tuple[Any, Any]) -> tuple[running.State, None]:
        return running.update(s, batch[0], batch[1], logits=True, pos_weight=case.p), None

    scanned, _ = jax.lax.scan(body, running.init(case.x), (xs, ys))
    case.check(running.result(scanned, "sum"), "sum", "scan")
