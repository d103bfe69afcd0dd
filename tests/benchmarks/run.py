"""CPU benchmark of xbce against PyTorch, NumPy, scikit-learn, optax and jax.numpy.

Usage (from the repository root)::

    python tests/benchmarks/run.py                 # full run, ~10 min on 2 cores
    python tests/benchmarks/run.py --quick         # sizes 1e3, 1e5, 1e6
    python tests/benchmarks/run.py --sizes 1e3 1e7 --dtypes float32 --out /tmp/b
    python tests/benchmarks/run.py --per-call      # per-call targets only, ~1 min
    python tests/benchmarks/run.py --contention    # beside busy processes only, ~3 min

Everything runs in one process, interleaved: for each case (family, n, dtype,
reduction, mode) every competitor is timed once per round, round-robin, and medians
over rounds are reported with ratios against PyTorch's ``torch.nn.functional``
(``x F``) and against the same backend's hand-written baseline (``x base``).
Peak extra memory per call is measured afterwards in fresh child processes
(``_memory.py``). Per-call cases on torch with one thread (xbce against a bare
``autograd.Function`` floor at B = 64 and 1024, and an MLP training step; see
``_per_call.py``) run after the other timings, then the same cases beside busy
processes, at one torch thread and under ``OMP_NUM_THREADS=1`` (``_contention.py``).
Results go to ``OUT/cpu.md``,
``OUT/cpu.json`` and ``OUT/cpu.png``.

This directory is not collected by pytest (no ``test_*`` files).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import _contention  # noqa: E402
import _per_call  # noqa: E402
from _competitors import (  # noqa: E402
    DTYPES,
    FAMILIES,
    MODES,
    REDUCTIONS,
    Competitor,
    Data,
    Libs,
    agree,
    build,
)
from _data import make_numpy  # noqa: E402
from _report import fmt_n, write_all  # noqa: E402
from _timing import paired_ratio, time_case  # noqa: E402

#: 64 and 1024: per-call cost at training batch sizes; 1e6: torch.compile (T33-T36)
FULL_SIZES = (64, 1_000, 1_024, 100_000, 1_000_000, 10_000_000, 30_000_000)
QUICK_SIZES = (64, 1_000, 1_024, 100_000, 1_000_000)
MIB = 1 << 20
#: float64 is timed up to this size only (the targets are float32; --all-float64: all)
FLOAT64_MAX_N = 10**7
#: a case stops after 2 rounds if it would otherwise take longer than this (seconds)
CASE_CAP_S = 45.0
#: --per-call: the other cases it times (NumPy and torch at 1e3: T10-T13, T37, T38)
PER_CALL_OTHER_SIZES = (1_000,)

F_NAME = {"probs": "F.binary_cross_entropy", "logits": "F.binary_cross_entropy_with_logits"}

#: (id, description, family, n, reduction, mode, numerator, denominator, threshold)
TIME_TARGETS: list[tuple[str, str, str, int, str, str, str, str, float]] = [
    (
        "T1",
        "xbce torch / F.bce, forward, mean",
        "probs",
        10**7,
        "mean",
        "fwd",
        "torch:xbce",
        "torch:ref",
        0.30,
    ),
    (
        "T2",
        "xbce torch / F.bce, forward, none",
        "probs",
        10**7,
        "none",
        "fwd",
        "torch:xbce",
        "torch:ref",
        0.30,
    ),
    (
        "T3",
        "xbce torch / F.bce, fwd+bwd (autograd), mean",
        "probs",
        10**7,
        "mean",
        "fwdbwd",
        "torch:xbce (autograd)",
        "torch:ref",
        0.50,
    ),
    (
        "T4",
        "xbce torch / F.bce, fwd+bwd (autograd), none",
        "probs",
        10**7,
        "none",
        "fwdbwd",
        "torch:xbce (autograd)",
        "torch:ref",
        0.50,
    ),
    (
        "T5",
        "xbce logits torch / F.bce_with_logits, forward, mean",
        "logits",
        10**7,
        "mean",
        "fwd",
        "torch:xbce",
        "torch:ref",
        0.50,
    ),
    (
        "T6",
        "xbce NumPy / F.bce, forward, mean",
        "probs",
        10**7,
        "mean",
        "fwd",
        "numpy:xbce",
        "torch:ref",
        0.50,
    ),
    (
        "T7",
        "xbce jax.jit / jnp formula jit, forward, mean",
        "probs",
        10**7,
        "mean",
        "fwd",
        "jax:xbce jit",
        "jax:base",
        1.10,
    ),
    (
        "T8",
        "xbce logits jax.jit / jnp formula jit, forward, mean",
        "logits",
        10**7,
        "mean",
        "fwd",
        "jax:xbce jit",
        "jax:base",
        1.10,
    ),
    (
        "T9",
        "xbce NumPy / sklearn log_loss, forward, mean",
        "probs",
        10**7,
        "mean",
        "fwd",
        "numpy:xbce",
        "numpy:sklearn log_loss",
        0.10,
    ),
    (
        "T10",
        "per call at 1e3: xbce torch / F.bce, forward, mean",
        "probs",
        10**3,
        "mean",
        "fwd",
        "torch:xbce",
        "torch:ref",
        2.0,
    ),
    (
        "T11",
        "per call at 1e3: xbce NumPy / F.bce, forward, mean",
        "probs",
        10**3,
        "mean",
        "fwd",
        "numpy:xbce",
        "torch:ref",
        2.0,
    ),
    (
        "T12",
        "per call at 1e3: xbce logits torch / F.bce_with_logits, forward, mean",
        "logits",
        10**3,
        "mean",
        "fwd",
        "torch:xbce",
        "torch:ref",
        2.0,
    ),
    (
        "T13",
        "per call at 1e3: xbce logits NumPy / F.bce_with_logits, forward, mean",
        "logits",
        10**3,
        "mean",
        "fwd",
        "numpy:xbce",
        "torch:ref",
        2.0,
    ),
]
#: Targets of issue #10, numbered after the memory targets (T14-T21) so that the
#: earlier ids keep their meaning: per-call cost at batch sizes (torch CPU, interleaved
#: against torch's own function), and compiled xbce against a compiled hand-written
#: formula (both ``torch.compile``, Inductor). Same tuple layout, without the id.
CALL_TARGETS: list[tuple[str, str, int, str, str, str, str, float]] = [
    *(
        (
            f"per call at B={n}: xbce {name}torch / {ref}, {what}, mean",
            family,
            n,
            "mean",
            mode,
            "torch:xbce" + (" (autograd)" if mode == "fwdbwd" else ""),
            "torch:ref",
            limit,
        )
        for n in (64, 1024)
        for mode, what, limit in (("fwdbwd", "fwd+bwd (autograd)", 2.0), ("fwd", "forward", 3.0))
        for family, name, ref in (
            ("probs", "", "F.bce"),
            ("logits", "logits ", "F.bce_with_logits"),
        )
    ),
    (
        "xbce logits torch / F.bce_with_logits, forward, mean",
        "logits",
        10**5,
        "mean",
        "fwd",
        "torch:xbce",
        "torch:ref",
        1.0,
    ),
    (
        "xbce logits torch / F.bce_with_logits, fwd+bwd (autograd), mean",
        "logits",
        10**5,
        "mean",
        "fwdbwd",
        "torch:xbce (autograd)",
        "torch:ref",
        1.0,
    ),
    (
        "xbce logits torch / F.bce_with_logits, fwd+bwd (autograd), mean",
        "logits",
        10**7,
        "mean",
        "fwdbwd",
        "torch:xbce (autograd)",
        "torch:ref",
        0.5,
    ),
    *(
        (
            f"torch.compile: xbce {name}/ compiled torch formula, {what}, mean",
            family,
            10**6,
            "mean",
            mode,
            "torch:xbce compiled",
            "torch:formula compiled",
            1.1,
        )
        for mode, what in (("fwd", "forward"), ("fwdbwd", "fwd+bwd"))
        for family, name in (("probs", ""), ("logits", "logits "))
    ),
    *(
        (
            f"per call at 1e3: xbce {name}NumPy / hand-written NumPy formula, forward, mean",
            family,
            10**3,
            "mean",
            "fwd",
            "numpy:xbce",
            "numpy:base",
            1.5,
        )
        for family, name in (("probs", ""), ("logits", "logits "))
    ),
]
MEM_LIMIT_MIB = 32.0
MEM_TARGET_N = 3 * 10**7


def _plan(n: int, dtype: str, quick: bool) -> tuple[int, int, float]:
    """(min rounds, max rounds, seconds budget) for one case of size n.

    Rounds continue to the maximum or until the budget is spent, but never stop
    before the minimum. float64 gets fewer rounds at large sizes (the targets are
    float32) to keep a full run near 10 minutes on 2 cores (unloaded).
    """
    if n <= 10**4:
        return (5, 15, 1.0) if quick else (11, 31, 1.5)
    if n <= 10**6:
        return (5, 9, 2.0) if quick else (7, 15, 3.0)
    if n <= 10**7:
        return (5, 7, 6.0) if dtype == "float32" else (3, 5, 4.0)
    return (3, 5, 8.0) if dtype == "float32" else (3, 3, 0.0)


def _per_call_plan(quick: bool) -> tuple[int, int, float]:
    """``_plan`` for the one-thread per-call cases: more rounds (their limits are tight)."""
    return (9, 21, 1.5) if quick else (15, 41, 3.0)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": _cores(),
    }
    try:
        text = Path("/proc/cpuinfo").read_text()
        names = [
            ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")
        ]
        if names:
            info["cpu_model"] = names[0]
        flags = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
        info["simd"] = " ".join(f for f in ("avx2", "avx512f", "fma") if f" {f}" in flags)
    except OSError:
        info["cpu_model"] = platform.processor()
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["memory_gib"] = round(int(mem) / 2**20, 1)
    except (OSError, IndexError, ValueError):
        pass
    with contextlib.suppress(OSError):
        info["loadavg_start"] = os.getloadavg()
    return info


def git_revision() -> str:
    """The checkout's commit, with "+dirty" when xbce/ has uncommitted changes."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "xbce"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="sizes 1e3 1e5 1e6 (about 2 min)")
    ap.add_argument("--sizes", nargs="+", type=lambda s: int(float(s)), help="e.g. 1e3 1e7")
    ap.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    ap.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--reductions", nargs="+", choices=REDUCTIONS, default=list(REDUCTIONS))
    ap.add_argument("--repeats", type=int, help="fixed number of rounds per case")
    ap.add_argument(
        "--all-float64",
        action="store_true",
        help=f"also time float64 above {FLOAT64_MAX_N:.0e} elements (skipped by default)",
    )
    ap.add_argument("--threads", type=int, default=_cores(), help="torch intra-op threads")
    ap.add_argument(
        "--mem-size",
        type=lambda s: int(float(s)),
        help="elements for the memory measurement (default 3e7; --quick: the largest size)",
    )
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    per_call = ap.add_mutually_exclusive_group()
    per_call.add_argument(
        "--per-call",
        action="store_true",
        help="only the per-call targets: the one-thread torch cases (bare floor, MLP step) "
        "and float32 mean forward at 1e3 (NumPy vs its formula); no memory (about 1 min)",
    )
    per_call.add_argument(
        "--no-per-call", action="store_true", help="skip the one-thread torch per-call cases"
    )
    per_call.add_argument(
        "--contention",
        action="store_true",
        help="only the cases beside busy processes, at one torch thread and with "
        "OMP_NUM_THREADS=1 (about 3 min)",
    )
    ap.add_argument("--no-contention", action="store_true", help="skip the contention cases")
    ap.add_argument(
        "--out",
        type=Path,
        help="output folder (default: docs/benchmarks; --per-call: build/benchmarks)",
    )
    args = ap.parse_args(argv)
    if args.out is None:
        only = args.per_call or args.contention
        args.out = ROOT / ("build" if only else "docs") / "benchmarks"
    if args.contention:
        args.no_memory = args.no_per_call = True
    if args.per_call:
        args.sizes = args.sizes or list(PER_CALL_OTHER_SIZES)
        args.dtypes, args.modes, args.reductions = ["float32"], ["fwd"], ["mean"]
        args.no_memory = True
    return args


# --------------------------------------------------------------------------- timing
def run_timings(args: argparse.Namespace, libs: Libs, sizes: list[int]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    for n in sizes:
        for dtype in args.dtypes:
            if dtype == "float64" and n > FLOAT64_MAX_N and not args.all_float64:
                continue
            data = Data(libs, make_numpy(n, dtype))
            for family in args.families:
                for mode in args.modes:
                    for reduction in args.reductions:
                        records += _one_case(
                            args,
                            build(libs, data, family, reduction, mode),
                            (family, n, dtype, reduction, mode),
                            _plan(n, dtype, args.quick),
                            t_start,
                        )
            del data
    return records


def run_per_call(args: argparse.Namespace, libs: Libs) -> list[dict[str, Any]]:
    """The one-thread torch cases of ``_per_call.py`` (float32, mean); torch's thread
    count is restored afterwards."""
    torch = libs.torch
    if torch is None:
        return []
    records: list[dict[str, Any]] = []
    plan = _per_call_plan(args.quick)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    print("per call: torch CPU, 1 thread, float32, mean", flush=True)
    t_start = time.perf_counter()
    try:
        for n in _per_call.SIZES:
            data = Data(libs, make_numpy(n, "float32"))
            for mode in ("fwdbwd", "fwd"):
                for family in args.families:
                    comps = _per_call.build_floor_case(data, family, mode)
                    case = (family, n, "float32", "mean", mode)
                    records += _one_case(args, comps, case, plan, t_start)
        for family in args.families:
            comps = _per_call.build_mlp_step(libs, family)
            case = (family, _per_call.MLP_BATCH, "float32", "mean", "step")
            records += _one_case(args, comps, case, plan, t_start)
    finally:
        torch.set_num_threads(threads)
    return records


def _one_case(
    args: argparse.Namespace,
    comps: list[Competitor],
    case: tuple[str, int, str, str, str],
    plan: tuple[int, int, float],
    t_start: float,
) -> list[dict[str, Any]]:
    """Times one case's competitors (interleaved) and returns one record each."""
    family, n, dtype, reduction, mode = case
    lo, hi, budget = plan
    if args.repeats:
        lo = hi = args.repeats
    timed = time_case(
        comps,
        min_rounds=lo,
        max_rounds=hi,
        budget_s=budget,
        cap_s=math.inf if args.repeats else CASE_CAP_S,
        warm_all=n <= 2 * 10**6,
    )
    ref = next((t for t in timed if t.comp.role == "ref"), None)
    base = {t.comp.backend: t for t in timed if t.comp.role in ("ref", "base")}
    out = []
    for t in timed:
        b = base.get(t.comp.backend)
        if ref is None or t.result is None or ref.result is None:
            sane = None
        else:
            sane = agree(t.result, ref.result, dtype)
        out.append(
            {
                "family": family,
                "n": n,
                "dtype": dtype,
                "reduction": reduction,
                "mode": mode,
                "backend": t.comp.backend,
                "competitor": t.comp.name,
                "role": t.comp.role,
                "median_ms": t.median * 1e3,
                "samples_ms": [s * 1e3 for s in t.samples],
                "inner": t.inner,
                "rounds": len(t.samples),
                "first_call_ms": None if t.first_call_s is None else t.first_call_s * 1e3,
                "x_ref": t.median / ref.median if ref else math.nan,
                "x_base": t.median / b.median if b else math.nan,
                "paired_x_ref": paired_ratio(t, ref) if ref else math.nan,
                "paired_x_base": paired_ratio(t, b) if b else math.nan,
                "agrees_with_ref": sane,
            }
        )
    elapsed = time.perf_counter() - t_start
    parts = " | ".join(
        f"{r['backend']}:{r['competitor']} {r['median_ms']:.3g}ms ({r['x_ref']:.2f}xF)"
        for r in out
    )
    print(
        f"[{elapsed:6.0f}s] {family} n={fmt_n(n)} {dtype} {reduction} {mode}: {parts}", flush=True
    )
    bad = [r["competitor"] for r in out if r["agrees_with_ref"] is False]
    if bad:
        print(f"    WARNING: results differ from {F_NAME[family]}: {bad}", flush=True)
    return out


# --------------------------------------------------------------------------- memory
def run_memory(args: argparse.Namespace, n: int) -> list[dict[str, Any]]:
    rows = []
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    for backend in ("numpy", "torch"):
        for family in args.families:
            for reduction in ("mean", "none"):
                for name in ("xbce", "ref"):
                    cmd = [
                        sys.executable,
                        str(HERE / "_memory.py"),
                        backend,
                        family,
                        name,
                        reduction,
                        str(n),
                        "float32",
                        str(args.threads),
                    ]
                    try:
                        proc = subprocess.run(
                            cmd, capture_output=True, text=True, env=env, timeout=300, check=True
                        )
                        row = json.loads(proc.stdout.strip().splitlines()[-1])
                    except (subprocess.SubprocessError, ValueError, IndexError) as e:
                        err = getattr(e, "stderr", "") or ""
                        print(
                            f"    memory {backend} {family} {name} {reduction} failed: "
                            f"{e} {err[-500:]}",
                            flush=True,
                        )
                        continue
                    row["competitor"] = (
                        "xbce"
                        if name == "xbce"
                        else ("numpy formula" if backend == "numpy" else F_NAME[family])
                    )
                    # NumPy: tracemalloc (exact buffer bytes); torch: RSS high-water mark
                    row["extra_bytes"] = row.get("tracemalloc_extra_bytes", row["rss_extra_bytes"])
                    row["extra_beyond_output_bytes"] = row["extra_bytes"] - row["out_bytes"]
                    rows.append(row)
                    print(
                        f"    memory {backend:5} {family:6} {reduction:4} "
                        f"{row['competitor']:34} extra {row['extra_bytes'] / MIB:8.1f} MiB "
                        f"(beyond output {row['extra_beyond_output_bytes'] / MIB:8.1f}; "
                        f"RSS {row['rss_extra_bytes'] / MIB:8.1f})",
                        flush=True,
                    )
    return rows


# -------------------------------------------------------------------------- targets
def _nearest(available: list[int], want: int) -> int | None:
    if not available:
        return None
    return min(available, key=lambda m: (abs(math.log(m / want)), -m))


def _index(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Records by (family, n, dtype, reduction, mode, "backend:competitor"); also
    "torch:ref" (the case's reference) and "BACKEND:base" (the backend's baseline)."""
    index: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        case = (r["family"], r["n"], r["dtype"], r["reduction"], r["mode"])
        index[(*case, f"{r['backend']}:{r['competitor']}")] = r
        if r["role"] == "ref":
            index[(*case, "torch:ref")] = r
        if r["role"] in ("ref", "base"):
            index[(*case, f"{r['backend']}:base")] = r
    return index


def evaluate_targets(
    records: list[dict[str, Any]],
    memory: list[dict[str, Any]],
    sizes: list[int],
    per_call: list[dict[str, Any]],
    contention: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    index = _index(records)
    out = [_time_target(index, sizes, *t) for t in TIME_TARGETS]
    k = len(TIME_TARGETS)
    for backend in ("numpy", "torch"):
        for family in ("probs", "logits"):
            for red in ("mean", "none"):
                k += 1
                what = "peak extra" if red == "mean" else "peak extra beyond the output"
                fname = "binary_cross_entropy" + ("_with_logits" if family == "logits" else "")
                row = {
                    "id": f"T{k}",
                    "n": MEM_TARGET_N,
                    "threshold": MEM_LIMIT_MIB,
                    "unit": "MiB",
                    "target": f"{what}, xbce {backend} {fname}, reduction={red}",
                }
                mrow = next(
                    (
                        r
                        for r in memory
                        if r["backend"] == backend
                        and r["family"] == family
                        and r["reduction"] == red
                        and r["competitor"] == "xbce"
                    ),
                    None,
                )
                if mrow is None:
                    row.update(measured_n=None, value=None, paired=None, status="not measured")
                else:
                    key = "extra_bytes" if red == "mean" else "extra_beyond_output_bytes"
                    value = mrow[key] / MIB
                    row.update(
                        measured_n=mrow["n"],
                        value=value,
                        paired=None,
                        detail=("tracemalloc" if backend == "numpy" else "RSS HWM")
                        + f"; output {mrow['out_bytes'] / MIB:.1f} MiB",
                        status=_status(value <= MEM_LIMIT_MIB, mrow["n"] == MEM_TARGET_N),
                    )
                out.append(row)
    for t in CALL_TARGETS:
        k += 1
        out.append(_time_target(index, sizes, f"T{k}", *t))
    # the one-thread per-call cases: their own records, timed at exactly these sizes
    index = _index(per_call)
    for t in _per_call.TARGETS:
        k += 1
        row = _time_target(index, [t[2]], f"T{k}", *t)
        if t[4] == "step" and row["value"] is not None:
            met = "met" if row["value"] <= _per_call.MLP_STRETCH else "not met"
            row["stretch"] = _per_call.MLP_STRETCH
            row["detail"] += f"; stretch <= {_per_call.MLP_STRETCH:g} {met}"
        out.append(row)
    # beside other work: the worst cell of each criterion (every cell: the report's table)
    for desc, value, limit, where in _contention.summary_targets(contention):
        k += 1
        out.append({"id": f"T{k}", "target": desc, "n": None, "measured_n": None,
                    "threshold": limit, "unit": "ratio", "value": value, "paired": None,
                    "detail": where,
                    "status": "not measured" if value is None else _status(value <= limit, True)})
    return out


def _time_target(
    index: dict[tuple[Any, ...], dict[str, Any]],
    sizes: list[int],
    tid: str,
    desc: str,
    family: str,
    n: int,
    red: str,
    mode: str,
    num: str,
    den: str,
    thr: float,
) -> dict[str, Any]:
    """One timing target: the ratio of two competitors' medians in one case."""
    m = _nearest(sizes, n)
    a = index.get((family, m, "float32", red, mode, num))
    b = index.get((family, m, "float32", red, mode, den))
    row: dict[str, Any] = {
        "id": tid,
        "target": desc,
        "n": n,
        "measured_n": m,
        "threshold": thr,
        "unit": "ratio",
    }
    if a is None or b is None:
        row.update(value=None, paired=None, status="not measured")
    else:
        value = a["median_ms"] / b["median_ms"]
        row.update(
            value=value,
            paired=paired_ratio_from_records(a, b),
            detail=f"{a['median_ms']:.3g} ms / {b['median_ms']:.3g} ms",
            status=_status(value <= thr, m == n),
        )
    return row


def paired_ratio_from_records(a: dict[str, Any], b: dict[str, Any]) -> float:
    import statistics

    m = min(len(a["samples_ms"]), len(b["samples_ms"]))
    if m == 0:
        return math.nan
    return statistics.median(
        x / y for x, y in zip(a["samples_ms"][:m], b["samples_ms"][:m], strict=True)
    )


def _status(ok: bool, exact_size: bool) -> str:
    s = "PASS" if ok else "FAIL"
    return s if exact_size else s + "*"


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.simplefilter("ignore")
    sizes = sorted(args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES))
    mem_n = args.mem_size or (max(sizes) if args.quick else MEM_TARGET_N)
    t0 = time.perf_counter()
    started = _dt.datetime.now(_dt.UTC)
    info = machine()
    libs = Libs(args.threads)
    for name, why in libs.missing.items():
        print(f"note: {name} unavailable, its competitors are skipped ({why})")
    print(
        f"xbce benchmark: sizes {[fmt_n(n) for n in sizes]}, dtypes {args.dtypes}, "
        f"torch threads {args.threads}, CPU {info.get('cpu_model')} "
        f"({info['usable_cpus']} usable cores)",
        flush=True,
    )
    records = [] if args.contention else run_timings(args, libs, sizes)
    per_call = [] if args.no_per_call else run_per_call(args, libs)
    contention = [] if args.no_contention else _contention.evaluate(_contention.run(libs))
    t_timing = time.perf_counter() - t0
    memory: list[dict[str, Any]] = []
    if not args.no_memory:
        print(f"memory: float32, n={fmt_n(mem_n)}, one child process per measurement", flush=True)
        memory = run_memory(args, mem_n)
    targets = evaluate_targets(records, memory, sizes, per_call, contention)
    if args.per_call or args.contention:  # the rest would be "not measured" or elsewhere
        targets = [t for t in targets if t["status"] in ("PASS", "FAIL")]
    with contextlib.suppress(OSError):
        info["loadavg_end"] = os.getloadavg()
    meta = {
        "date_utc": started.isoformat(timespec="seconds"),
        "machine": info,
        "versions": libs.versions(),
        "xbce_git": git_revision(),
        "torch_threads": args.threads,
        "per_call_torch_threads": 1 if per_call else None,
        "argv": sys.argv[1:] if argv is None else argv,
        "sizes": sizes,
        "dtypes": args.dtypes,
        "memory_n": None if args.no_memory else mem_n,
        "timing_seconds": round(t_timing, 1),
        "total_seconds": round(time.perf_counter() - t0, 1),
        "skipped": libs.missing,
    }
    paths = write_all(args.out, meta, records, memory, targets, per_call, contention)
    print()
    print(paths["tables"])
    print(f"total {meta['total_seconds']:.0f} s")
    for kind, p in paths["files"].items():
        print(f"wrote {kind}: {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
