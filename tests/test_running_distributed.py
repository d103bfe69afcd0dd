"""The running BCE across devices and processes (issue 20, item 4).

The states of shards merge into the state of all the data, so each scale-out engine's
own reduction of the state fields gives torch's one-shot loss on the whole data:

- JAX sharded over 4 CPU devices: ``shard_map`` runs the per-device updates (jitted),
  ``jax.lax.psum`` adds the state fields;
- a dask.distributed ``LocalCluster`` of 2 worker processes: one state per partition,
  computed on the workers, merged on the client (and a lazy Dask state, computed there);
- ``torch.distributed`` over 2 CPU processes (gloo): ``all_reduce(SUM)`` of each state
  tensor.

Expected values: torch's ``F.binary_cross_entropy[_with_logits]`` on the concatenated
data, computed here, within tests/tolerances.py's ``reduced`` tolerance (the one-shot
loss's own summation order). ``nox -s distributed`` runs this file (dask, distributed,
JAX with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``, torch); the JAX tests
run in ``nox -s jax`` too (there with ``jax_enable_x64`` off: the float32 TwoSum
accumulator), the torch.distributed test in ``nox -s torch``.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import BACKENDS, load, rounded
from comparisons import check, loss_scale

from xbce import running

ROWS, COLS = 4000, 6  # 4 shards of 1000 rows for JAX; partitions and ranks split unevenly
OPS = ("bce", "bcewl")


def _data() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(20)
    return {
        "p": rounded(rng.random((ROWS, COLS)), "float32"),
        "y": rounded(np.round(rng.random((ROWS, COLS))), "float32"),
        "x": rounded(rng.normal(0, 4, (ROWS, COLS)), "float32"),
        "w": rounded(rng.random(COLS) * 2, "float32"),
        "pw": rounded(rng.random(COLS) * 3, "float32"),
    }


def _one_shot(d: dict[str, torch.Tensor], op: str, reduction: str) -> torch.Tensor:
    """torch's loss on the whole data at once: what every running result must equal."""
    if op == "bce":
        return TF.binary_cross_entropy(d["p"], d["y"], d["w"], reduction=reduction)
    return TF.binary_cross_entropy_with_logits(d["x"], d["y"], d["w"], reduction=reduction,
                                               pos_weight=d["pw"])


def _scale(d: dict[str, torch.Tensor], op: str, reduction: str) -> torch.Tensor:
    key = "p" if op == "bce" else "x"
    return loss_scale(op, d[key], d["y"], d["w"], None if op == "bce" else d["pw"],
                      reduction=reduction)


def _check(backend: str, got: Any, d: dict[str, torch.Tensor], op: str, reduction: str,
           what: str) -> None:
    check(load(backend), got, _one_shot(d, op, reduction), "reduced", "float32",
          scale=_scale(d, op, reduction), what=f"{what}: {op} {reduction}")


def _update(state: Any, a: dict[str, Any], lo: int, hi: int, op: str) -> Any:
    """One batch, rows ``lo:hi``, of the arrays ``a`` (of any library)."""
    if op == "bce":
        return running.update(state, a["p"][lo:hi], a["y"][lo:hi], a["w"])
    return running.update(state, a["x"][lo:hi], a["y"][lo:hi], a["w"], logits=True,
                          pos_weight=a["pw"])


#: batch boundaries inside a shard of 1000 rows: an empty and a one-row batch included
SHARD_BATCHES = ((0, 0), (0, 1), (1, 64), (64, 564), (564, 1000))


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


def _shard_map() -> Any:
    import jax

    if hasattr(jax, "shard_map"):
        return jax.shard_map
    from jax.experimental.shard_map import shard_map  # JAX before 0.7

    return shard_map


@pytest.mark.parametrize("op", OPS)
def test_jax_shard_map_psum_of_the_state(mesh: Any, op: str) -> None:
    """Each device updates its state with its rows' batches (jitted, inside shard_map);
    ``psum`` of every field is the state of the four shards."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    d = _data()
    rows, whole = PartitionSpec("rows"), PartitionSpec()
    key = "p" if op == "bce" else "x"
    arrays = {k: jax.device_put(d[k].numpy(), NamedSharding(mesh, rows if d[k].ndim == 2
                                                            else whole))
              for k in (key, "y", "w", "pw")}

    def per_device(v: Any, y: Any, w: Any, pw: Any) -> Any:
        local = {key: v, "y": y, "w": w, "pw": pw}
        state = running.init(v)
        for lo, hi in SHARD_BATCHES:
            state = _update(state, local, lo, hi, op)
        # the merge across devices: a psum of each state field
        return running.State(*(jax.lax.psum(field, "rows") for field in state))

    merged = jax.jit(_shard_map()(per_device, mesh=mesh, in_specs=(rows, rows, whole, whole),
                                  out_specs=whole))(arrays[key], arrays["y"], arrays["w"],
                                                    arrays["pw"])
    assert isinstance(merged, running.State)
    # float64 with jax_enable_x64 (nox -s distributed), a float32 TwoSum pair without
    assert merged.total.dtype == ("float64" if jax.config.jax_enable_x64 else "float32")
    assert int(merged.count) + int(merged.count_high) * 2**24 == ROWS * COLS
    for reduction in ("mean", "sum"):
        _check("jax", running.result(merged, reduction), d, op, reduction, "shard_map + psum")


def test_jax_state_is_a_pytree_and_checkpoints(mesh: Any, tmp_path: Path) -> None:
    """The state's leaves are its fields; saved with NumPy and rebuilt with its treedef,
    it carries on as if never interrupted (bit for bit), and ``tree_map`` keeps its type."""
    import jax
    import jax.numpy as jnp

    d = _data()
    a = {k: jnp.asarray(v.numpy()) for k, v in d.items()}
    step = jax.jit(functools.partial(_update, op="bcewl"), static_argnums=(2, 3))
    state = running.init(a["x"])
    for lo, hi in ((0, 7), (7, 1500)):
        state = step(state, a, lo, hi)
    leaves, treedef = jax.tree_util.tree_flatten(state)
    assert len(leaves) == len(running.State._fields)
    assert all(isinstance(leaf, jax.Array) and leaf.shape == () for leaf in leaves)
    assert isinstance(jax.tree_util.tree_map(lambda v: v, state), running.State)

    np.savez(tmp_path / "checkpoint.npz", *(np.asarray(leaf) for leaf in leaves))
    with np.load(tmp_path / "checkpoint.npz") as saved:
        restored = jax.tree_util.tree_unflatten(
            treedef, [jnp.asarray(saved[f"arr_{i}"]) for i in range(len(leaves))])
    assert jax.tree_util.tree_structure(restored) == treedef
    assert [leaf.dtype for leaf in jax.tree_util.tree_leaves(restored)] == [
        leaf.dtype for leaf in leaves]

    go_on, resumed = state, restored
    for lo, hi in ((1500, 1501), (1501, ROWS)):
        go_on, resumed = step(go_on, a, lo, hi), step(resumed, a, lo, hi)
    for reduction in ("mean", "sum"):
        got = running.result(resumed, reduction)
        assert np.asarray(got).tobytes() == np.asarray(running.result(go_on, reduction)).tobytes()
        _check("jax", got, d, "bcewl", reduction, "checkpointed pytree")


# ------------------------------------------------------------------ dask.distributed
#: row chunks of the Dask arrays: uneven, one of a single row
DASK_CHUNKS = (1, 999, 1700, 1300)


@pytest.fixture(scope="module")
def client() -> Any:
    if "dask" not in BACKENDS:
        pytest.skip("runs in the dask and distributed sessions")
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as c:
        yield c


def _dask_arrays(d: dict[str, torch.Tensor]) -> dict[str, Any]:
    import dask.array as da

    return {k: da.from_array(v.numpy(), chunks=(DASK_CHUNKS, COLS) if v.ndim == 2 else COLS)
            for k, v in d.items()}


@pytest.mark.parametrize("op", OPS)
def test_dask_partition_states_merged_on_the_client(client: Any, op: str) -> None:
    """One state per partition, computed by the worker processes (NumPy states come
    back), merged on the client in two orders: both are torch's one-shot loss."""
    import dask

    d = _data()
    a = _dask_arrays(d)
    key = "p" if op == "bce" else "x"
    blocks = zip(a[key].to_delayed().ravel(), a["y"].to_delayed().ravel(), strict=True)
    w, pw = d["w"].numpy(), d["pw"].numpy()
    if op == "bce":
        tasks = [dask.delayed(running.update)(dask.delayed(running.init)(v), v, y, w)
                 for v, y in blocks]
    else:
        tasks = [dask.delayed(functools.partial(running.update, logits=True, pos_weight=pw))(
            dask.delayed(running.init)(v), v, y, w) for v, y in blocks]
    states = client.gather(client.compute(tasks))  # run in the worker processes
    assert len(states) == len(DASK_CHUNKS)
    worker_pids = set(client.run(os.getpid).values())
    assert len(worker_pids) == 2
    assert os.getpid() not in worker_pids
    for s in states:
        assert isinstance(s, running.State)
        assert isinstance(s.total, np.ndarray)
        assert s.total.dtype == np.float64
    assert [int(s.count) for s in states] == [n * COLS for n in DASK_CHUNKS]

    in_order = functools.reduce(running.merge, states)
    s0, s1, s2, s3 = states
    as_a_tree = running.merge(running.merge(s3, s1), running.merge(s2, s0))
    for reduction in ("mean", "sum"):
        _check("numpy", running.result(in_order, reduction), d, op, reduction,
               "partition states merged in order")
        _check("numpy", running.result(as_a_tree, reduction), d, op, reduction,
               "partition states merged as a tree")


def test_dask_lazy_state_computed_on_the_cluster(client: Any) -> None:
    """``update`` on Dask arrays builds a lazy state; its result, computed by the
    workers, is torch's one-shot loss."""
    d = _data()
    a = _dask_arrays(d)
    state = running.init(a["p"])
    for lo, hi in ((0, 0), (0, 1), (1, 2500), (2500, ROWS)):
        state = _update(state, a, lo, hi, "bce")
    for reduction in ("mean", "sum"):
        got = client.compute(running.result(state, reduction)).result()
        _check("numpy", np.asarray(got), d, "bce", reduction, "lazy Dask state")


# ------------------------------------------------------------- torch.distributed
WORKER = """
import sys

import torch
import torch.distributed as dist

from xbce import running

rank, world, data_file, rendezvous, out = sys.argv[1:6]
rank, world = int(rank), int(world)
dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank,
                        world_size=world)
d = torch.load(data_file)
n = d["p"].shape[0]
lo, hi = (0, SPLIT) if rank == 0 else (SPLIT, n)  # an uneven split of the rows
bounds = [lo, lo, lo + 1, lo + 64, lo + 300, hi]  # batches of 0, 1, 63, 236, the rest

# the functional form, BCE with a weight
state = running.init(d["p"])
for a, b in zip(bounds, bounds[1:]):
    state = running.update(state, d["p"][a:b], d["y"][a:b], d["w"])
fields = [field.clone() for field in state]
for field in fields:
    dist.all_reduce(field, op=dist.ReduceOp.SUM)
merged = running.State(*fields)

# the object form, BCE with logits; its state_dict checkpointed half way
metric = running.RunningBCE(logits=True, pos_weight=d["pw"])
for a, b in zip(bounds[:3], bounds[1:3]):
    metric.update(d["x"][a:b], d["y"][a:b], d["w"])
torch.save(metric.state_dict(), f"{out}.ckpt")
metric = running.RunningBCE(logits=True, pos_weight=d["pw"])
metric.load_state_dict(torch.load(f"{out}.ckpt"))
for a, b in zip(bounds[2:], bounds[3:]):
    metric.update(d["x"][a:b], d["y"][a:b], d["w"])
shared = metric.state_dict()
for tensor in shared.values():
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
metric.load_state_dict(shared)

torch.save({"bce mean": running.result(merged, "mean"),
            "bce sum": running.result(merged, "sum"),
            "bcewl mean": metric.compute(),
            "bcewl sum": running.result(metric.state, "sum"),
            "count": int(merged.count)}, out)
dist.destroy_process_group()
"""


def test_torch_distributed_all_reduce_of_the_state(tmp_path: Path) -> None:
    """Two CPU processes (gloo) each accumulate their rows; ``all_reduce(SUM)`` of each
    state tensor gives both ranks the state of all rows."""
    if "torch" not in BACKENDS:
        pytest.skip("runs in the torch and distributed sessions")
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.fail("this torch has no torch.distributed gloo backend")
    d = _data()
    torch.save(d, tmp_path / "data.pt")
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER).replace("SPLIT", "1237"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the loopback: no network needed
    start = time.perf_counter()
    procs = [subprocess.Popen(
        [sys.executable, str(script), str(rank), "2", str(tmp_path / "data.pt"),
         str(tmp_path / "rendezvous"), str(tmp_path / f"out{rank}.pt")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for rank in (0, 1)]
    try:
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    elapsed = time.perf_counter() - start
    assert elapsed < 60, f"two gloo processes took {elapsed:.1f} s"
    for rank in (0, 1):
        got = torch.load(tmp_path / f"out{rank}.pt")
        assert got["count"] == ROWS * COLS
        for op in OPS:
            for reduction in ("mean", "sum"):
                _check("torch", got[f"{op} {reduction}"], d, op, reduction,
                       f"rank {rank} after all_reduce")
