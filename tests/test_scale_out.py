"""Scale-out engines users already run: a dask.distributed cluster of worker processes,
and JAX arrays sharded over several devices (``jit`` and ``shard_map``).

Run by ``nox -s distributed`` (dask + distributed + JAX with four host devices:
``XLA_FLAGS=--xla_force_host_platform_device_count=4``). Expected values: torch on the
same data, and for Dask also the local scheduler's result, bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import BACKENDS, load, rounded
from comparisons import check

import xbce

N, C = 4000, 8  # rows x columns; 4 chunks of rows for Dask, 4 shards for JAX


def _data(dtype: str = "float32") -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(11)
    return {
        "p": rounded(rng.random((N, C)), dtype),
        "y": rounded(np.round(rng.random((N, C))), dtype),
        "x": rounded(rng.normal(0, 4, (N, C)), dtype),
        "w": rounded(rng.random(C) * 2, dtype),
        "pw": rounded(rng.random(C) * 3, dtype),
    }


def _torch(d: dict[str, torch.Tensor], op: str, reduction: str) -> torch.Tensor:
    if op == "bce":
        return TF.binary_cross_entropy(d["p"], d["y"], d["w"], reduction=reduction)
    return TF.binary_cross_entropy_with_logits(
        d["x"], d["y"], d["w"], reduction=reduction, pos_weight=d["pw"]
    )


def _xbce(a: dict[str, Any], op: str, reduction: str) -> Any:
    if op == "bce":
        return xbce.binary_cross_entropy(a["p"], a["y"], a["w"], reduction=reduction)
    return xbce.binary_cross_entropy_with_logits(
        a["x"], a["y"], a["w"], reduction=reduction, pos_weight=a["pw"]
    )


def _scale(d: dict[str, torch.Tensor], op: str, reduction: str) -> torch.Tensor:
    """The magnitude of the summed terms: the scale of a reduction's rounding."""
    if op == "bce":
        terms = TF.binary_cross_entropy(d["p"].double(), d["y"].double(), reduction="none") + 1
    else:
        x = d["x"].double()
        terms = x.abs() + TF.logsigmoid(x).abs() * (1 + d["pw"].double())
    terms = terms * d["w"].double()
    if reduction == "none":
        return terms
    return terms.sum() / (terms.numel() if reduction == "mean" else 1)


# ------------------------------------------------------------------ dask.distributed
@pytest.fixture(scope="module")
def client() -> Any:
    if "dask" not in BACKENDS:
        pytest.skip("runs in the dask and distributed sessions")
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_distributed_equals_local_dask_and_torch(client: Any, op: str, reduction: str) -> None:
    import dask
    import dask.array as da

    d = _data()
    arrays = {k: da.from_array(v.numpy(), chunks=(N // 4, C) if v.ndim == 2 else C)
              for k, v in d.items()}
    graph = _xbce(arrays, op, reduction)
    on_workers = client.compute(graph).result()  # graphs pickled to worker processes
    local = dask.compute(graph, scheduler="threads")[0]
    assert np.asarray(on_workers).tobytes() == np.asarray(local).tobytes()
    expected = _torch(d, op, reduction)
    quantity = op if reduction == "none" else "reduced"
    check(load("numpy"), np.asarray(on_workers), expected, quantity, "float32",
          scale=_scale(d, op, reduction), what=f"{op} {reduction}")


def test_distributed_error_reaches_the_client(client: Any) -> None:
    import dask.array as da

    d = _data()
    p = d["p"].numpy().copy()
    p[3 * N // 4 + 5, 2] = 1.5  # in the last chunk
    expected = None
    try:
        TF.binary_cross_entropy(torch.from_numpy(p), d["y"])
    except RuntimeError as e:
        expected = str(e)
    graph = xbce.binary_cross_entropy(da.from_array(p, chunks=(N // 4, C)),
                                      da.from_array(d["y"].numpy(), chunks=(N // 4, C)))
    with pytest.raises(RuntimeError) as info:
        client.compute(graph).result()
    assert isinstance(info.value, ValueError)
    assert str(info.value) == expected


# ------------------------------------------------------------------------ JAX sharding
@pytest.fixture(scope="module")
def mesh() -> Any:
    if "jax" not in BACKENDS:
        pytest.skip("runs in the jax and distributed sessions")
    import jax

    load("jax")  # jax_enable_x64 as XBCE_JAX_X64 says (on unless 0)
    if jax.device_count() < 4:
        pytest.fail(
            f"{jax.device_count()} JAX device(s): the session must set "
            "XLA_FLAGS=--xla_force_host_platform_device_count=4 before JAX starts"
        )
    return jax.make_mesh((4,), ("rows",))


def _sharded(mesh: Any, d: dict[str, torch.Tensor]) -> dict[str, Any]:
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    rows = NamedSharding(mesh, PartitionSpec("rows"))
    whole = NamedSharding(mesh, PartitionSpec())
    return {k: jax.device_put(v.numpy(), rows if v.ndim == 2 else whole) for k, v in d.items()}


@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sharded_under_jit(mesh: Any, op: str, reduction: str) -> None:
    import jax

    d = _data()
    a = _sharded(mesh, d)
    out = jax.jit(lambda a: _xbce(a, op, reduction))(a)
    if reduction == "none":  # the elementwise loss keeps the input's sharding
        assert out.sharding.is_equivalent_to(a["p"].sharding, out.ndim)
    expected = _torch(d, op, reduction)
    quantity = op if reduction == "none" else "reduced"
    check(load("jax"), out, expected, quantity, "float32", scale=_scale(d, op, reduction),
          what=f"{op} {reduction}")


@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.x64  # float64 on JAX
def test_grad_of_sharded_loss(mesh: Any, op: str) -> None:
    import jax

    d = _data("float64")
    a = _sharded(mesh, d)
    key = "p" if op == "bce" else "x"

    def loss(v: Any) -> Any:
        return _xbce({**a, key: v}, op, "mean")

    got = jax.jit(jax.grad(loss))(a[key])
    leaf = d[key].clone().requires_grad_(True)
    _torch({**d, key: leaf}, op, "mean").backward()
    assert got.sharding.is_equivalent_to(a[key].sharding, got.ndim)
    # float64: torch's own formula, op for op (a few ulp: XLA fuses under jit)
    check(load("jax"), got, leaf.grad, f"{op}_grad", "float64",
          scale=leaf.grad.abs() * 4 + _grad_scale(d, op), what=f"{op} grad")


def _grad_scale(d: dict[str, torch.Tensor], op: str) -> torch.Tensor:
    if op == "bcewl":  # sigmoid(x) * (1 + pw) - pw * t: the terms that cancel
        return (1 + d["pw"]) * d["w"] / d["x"].numel()
    return torch.zeros(())


def test_shard_map_with_psum(mesh: Any) -> None:
    """Each device sums its rows' losses; ``psum`` adds the four partial sums."""
    import jax
    from jax.sharding import PartitionSpec

    d = _data()
    a = _sharded(mesh, d)

    def local(p: Any, y: Any, w: Any) -> Any:
        return jax.lax.psum(xbce.binary_cross_entropy(p, y, w, reduction="sum"), "rows")

    spec = PartitionSpec("rows")
    total = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, PartitionSpec()),
                                  out_specs=PartitionSpec()))(a["p"], a["y"], a["w"])
    expected = TF.binary_cross_entropy(d["p"], d["y"], d["w"], reduction="sum")
    check(load("jax"), total, expected, "reduced", "float32", scale=_scale(d, "bce", "sum"))
