"""Tables and files: ``cpu.md`` (Markdown), ``cpu.json`` (everything), ``cpu.png`` (plot)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

MIB = 1 << 20

METHOD = """\
* **Timing.** One process. For each case (family, n, dtype, reduction, mode) every
  competitor is timed once per *round*, round-robin, the order rotated by one each
  round; a round's sample for a competitor is `inner` back-to-back calls (enough for at
  least 5 ms; 1 for large arrays) with the garbage collector off, each timed on its own,
  and the sample is the median of those calls (robust to the millisecond stalls a
  multi-threaded call suffers on a shared machine when one of its threads is
  descheduled). Results are dropped inside the timed region (freeing them is part of the
  cost). Rounds per case: 11-31 up to 10^4 elements, 7-15 up to 10^6, 5-7 at 10^7
  (float64: 3-5), 3-5 above (float64: 3), adapted to a per-case time budget (`--quick`:
  5-15 and 5-9); a case stops after 2 rounds if it would take over 45 s (pathologically
  slow calls on a loaded machine). scikit-learn takes part in the first 3 rounds only,
  and only up to 10^7 elements. float64 is timed up to 10^7 elements (`--all-float64`
  for more). Every competitor is called once before timing where n <= 2*10^6, and JAX
  competitors always (to compile for the shape). *median ms* is the median over rounds;
  **x F** is that median over the median of PyTorch's `torch.nn.functional` function in
  the same case, **x base** over the same backend's baseline (NumPy: the hand-written
  formula; JAX: the hand-written `jax.numpy` formula under `jit`, the fused floor;
  torch: `F`). The JSON also has the median of the per-round (paired) ratios.
* **Competitors.** torch: `xbce` vs `F.binary_cross_entropy[_with_logits]` on the same
  tensors (fwd+bwd: `loss.backward()` on a leaf with `requires_grad`, through autograd;
  `none` uses a ones cotangent). NumPy: `xbce` vs the formula `-(y*max(log(p),-100) +
  (1-y)*max(log1p(-p),-100))` (logits: `(1-t)*x - (min(x,0) - log1p(exp(-|x|)))`) and
  `sklearn.metrics.log_loss` (mean, forward only); fwd+bwd is the loss plus
  `xbce.binary_cross_entropy[_with_logits]_backward` vs the formula plus its analytic
  gradient `(p-y)/max((1-p)p, 1e-12)` (logits: `sigmoid(x)-t`). JAX (x64 enabled):
  `jax.jit(xbce...)` vs `(y-1)*max(log1p(-x),-100) - y*max(log(x),-100)` under `jit`
  (logits: `(1-t)*x - jax.nn.log_sigmoid(x)`) and
  `optax.losses.sigmoid_binary_cross_entropy` under `jit`; "xbce eager" is xbce called
  on concrete JAX arrays (it then checks values, one host sync); fwd+bwd is `jit` of
  `jax.vjp` (value and gradient) vs the formula plus its analytic gradient under `jit`.
  Every result is `block_until_ready()`-ed. A sanity check compares every competitor's
  result with `F`'s (where warmed up) and prints a warning on disagreement.
* **Per call (one torch thread).** After the other timings, with
  `torch.set_num_threads(1)` (restored afterwards), float32, `mean`, timed the same way
  with 15-41 rounds and a 3 s budget per case (`--quick`: 9-21, 1.5 s); `--per-call`
  runs only these and the 1e3 forward cases. At B = 64 and 1024: `F`, `xbce` and the
  *bare floor*, a hand-written `torch.autograd.Function` with no checks whose forward
  is torch's formula (`(y-1)*log1p(-x).clamp_min(-100) - y*log(x).clamp_min(-100)`;
  logits: `(1-y)*x - logsigmoid(x)`; then `.mean()`) and whose backward is torch's
  input derivative (`grad*(x-y)/((1-x)*x).clamp_min(1e-12)/numel`; logits:
  `(sigmoid(x)-y)*grad/numel`); forward on plain tensors, fwd+bwd with only the input
  requiring grad (**x base** is the ratio to the bare floor). MLP step (mode `step`,
  B = 64): a 64-256-256-1 MLP (Linear-ReLU-Linear-ReLU-Linear), SGD with lr 0.01, one
  fixed batch; a step is `zero_grad`, forward, loss, `backward`, `step`, with the loss
  `binary_cross_entropy_with_logits(logits, y)` (logits) or
  `binary_cross_entropy(sigmoid(logits), y)` (probs) of `F` or xbce, each on its own
  copy of one initial model.
* **Data.** Probabilities uniform in [0.001, 0.999), targets 0/1, logits 3*N(0,1); 1-D
  contiguous arrays; torch tensors share NumPy's memory (`torch.from_numpy`).
* **Memory.** Float32, fresh child process per measurement (`_memory.py`): imports, a
  warm-up call on 1,000 elements, inputs allocated in place, then three calls, each
  measured on its own. NumPy: `tracemalloc` peak during the call minus traced bytes
  before it (NumPy reports its buffers to `tracemalloc`; exact and repeatable).
  torch: resident-set high-water mark, reset just before each call by writing `5` to
  `/proc/self/clear_refs`, `VmHWM` after minus `VmRSS` before (fallback: `ru_maxrss`
  delta, a lower bound); the maximum over the three calls is reported (*RSS per
  call* lists them). Both are taken for NumPy (RSS column). For `none` the output is
  alive at the reading and counted; *beyond output* subtracts it. RSS sees what the
  process really takes from the OS, including heap growth of the C allocator: many
  medium temporaries (e.g. 256 KiB per block) are served from glibc's heap once its
  dynamic mmap threshold has risen, and freed heap memory is not always reused or
  trimmed, so a blocked evaluation can raise the RSS peak by far more than its live
  temporaries, on some calls and not others.
"""


def fmt_n(n: int) -> str:
    e = math.floor(math.log10(n)) if n > 0 else 0
    m = n / 10**e
    if n > 0 and abs(m - round(m)) < 1e-9:
        return f"{round(m)}e{e}" if round(m) != 1 else f"1e{e}"
    return str(n)


def _f(x: Any, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec)


def md_table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" * len(headers)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        cols = zip(cells, widths, align, strict=True)
        return "| " + " | ".join(c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in cols) + " |"

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2))
            for w, a in zip(widths, align, strict=True)
        )
        + "|"
    )
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def targets_table(targets: list[dict[str, Any]]) -> str:
    rows = []
    for t in targets:
        unit = t["unit"]
        thr = f"<= {t['threshold']:g}" + (" MiB" if unit == "MiB" else "")
        val = _f(t["value"], ".3f" if unit == "ratio" else ".1f")
        if unit == "MiB" and t["value"] is not None:
            val += " MiB"
        n = fmt_n(t["measured_n"]) if t.get("measured_n") else "-"
        rows.append(
            [
                t["id"],
                t["target"],
                fmt_n(t["n"]) if t["n"] else "-",
                n,
                thr,
                val,
                _f(t.get("paired"), ".3f"),
                t.get("detail", ""),
                t["status"],
            ]
        )
    return md_table(
        [
            "id",
            "target (float32)",
            "n",
            "measured at",
            "threshold",
            "measured",
            "paired",
            "detail",
            "status",
        ],
        rows,
        "lllllrrll",
    )


def timing_table(records: list[dict[str, Any]]) -> str:
    rows = []
    for r in records:
        agree = {True: "", False: " (!)", None: ""}[r["agrees_with_ref"]]
        rows.append(
            [
                r["family"],
                fmt_n(r["n"]),
                r["dtype"],
                r["reduction"],
                r["mode"],
                r["backend"],
                r["competitor"] + agree,
                _f(r["median_ms"], ".4g"),
                _f(r["x_ref"], ".2f"),
                _f(r["x_base"], ".2f"),
                str(r["rounds"]),
            ]
        )
    return md_table(
        [
            "family",
            "n",
            "dtype",
            "red.",
            "mode",
            "backend",
            "competitor",
            "median ms",
            "x F",
            "x base",
            "rounds",
        ],
        rows,
        "lrlllllrrrr",
    )


def memory_table(memory: list[dict[str, Any]]) -> str:
    rows = []
    for m in memory:
        rows.append(
            [
                m["backend"],
                m["family"],
                m["reduction"],
                m["competitor"],
                fmt_n(m["n"]),
                f"{m['input_bytes'] / MIB:.1f}",
                f"{m['out_bytes'] / MIB:.1f}",
                f"{m['extra_bytes'] / MIB:.1f}",
                f"{m['extra_beyond_output_bytes'] / MIB:.1f}",
                f"{m['rss_extra_bytes'] / MIB:.1f}",
                " / ".join(f"{b / MIB:.1f}" for b in m.get("rss_extra_each_bytes", [])),
            ]
        )
    return md_table(
        [
            "backend",
            "family",
            "red.",
            "competitor",
            "n",
            "inputs MiB",
            "output MiB",
            "peak extra MiB",
            "beyond output MiB",
            "RSS extra MiB",
            "RSS per call",
        ],
        rows,
        "llllrrrrrrr",
    )


def _markdown(
    meta: dict[str, Any],
    records: list[dict[str, Any]],
    memory: list[dict[str, Any]],
    targets: list[dict[str, Any]],
    per_call: list[dict[str, Any]],
    contention: list[dict[str, Any]],
) -> str:
    m, v = meta["machine"], meta["versions"]
    la = m.get("loadavg_start")
    lines = [
        "## CPU benchmarks",
        "",
        "Generated by `python tests/benchmarks/run.py"
        + ("".join(f" {a}" for a in meta["argv"]))
        + "` (`nox -s bench`); "
        "do not edit by hand.",
        "",
        f"* **Date (UTC):** {meta['date_utc']}",
        f"* **CPU:** {m.get('cpu_model', '?')} ({m.get('simd', '')}), "
        f"{m['usable_cpus']} usable cores of {m['logical_cpus']}, "
        f"{m.get('memory_gib', '?')} GiB RAM; torch threads: {meta['torch_threads']}",
        f"* **Platform:** {m['platform']}",
        "* **Versions:** "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + f" (xbce checkout {meta.get('xbce_git', 'unknown')})",
        f"* **Load average** at start: {', '.join(f'{x:.2f}' for x in la) if la else '?'}"
        + (
            f"; at end: {', '.join(f'{x:.2f}' for x in m['loadavg_end'])}"
            if m.get("loadavg_end")
            else ""
        )
        + " (timings on a shared machine are noisy; the interleaving spreads load "
        "evenly over competitors)",
        f"* **Run time:** {meta['total_seconds']:.0f} s (timings {meta['timing_seconds']:.0f} s)",
        "",
        "### Targets",
        "",
        "Ratios are medians over rounds (time of the first over time of the second), "
        "measured in the same interleaved case; *paired* is the median of the per-round "
        "ratios. A `*` marks a target measured at another size than the one it is "
        "defined at (e.g. with `--quick`).",
        "",
        targets_table(targets),
        "",
        "### Time vs size (float32, mean, forward)",
        "",
        "![time vs size](cpu.png)",
        "",
    ]
    if memory:
        lines += [
            f"### Peak extra memory per call (float32, n={fmt_n(memory[0]['n'])})",
            "",
            "*peak extra* is tracemalloc for NumPy and the RSS high-water mark for torch; "
            "*RSS extra* is the RSS measurement for both.",
            "",
            memory_table(memory),
            "",
        ]
    if per_call:
        lines += [
            "### Per call, one torch thread (float32, mean)",
            "",
            "*x base* is the ratio to the bare `autograd.Function` floor (mode `step`: to "
            "the MLP step with `F`'s loss).",
            "",
            timing_table(per_call),
            "",
        ]
    lines += floors(records)
    if contention:
        from _contention import GROWTH_LIMIT
        from _contention import table as contention_table

        lines += [
            "### Beside other work (float32, mean)",
            "",
            "Each condition times the same cases, interleaved: torch's `F`, xbce on the "
            "same tensors, xbce on NumPy arrays (`fwdbwd`: with the explicit backward). "
            "*busy*: processes spinning a core each beside the benchmark; *torch 1 "
            "thread*: `torch.set_num_threads(1)`, as in a DataLoader worker; "
            "`OMP_NUM_THREADS=1`: a child process started with it. *xbce/torch*: paired "
            "ratio; *growth*: that ratio over the quiet one. A cell passes when xbce/torch "
            f"<= 1 and growth <= {GROWTH_LIMIT:g}.",
            "",
            contention_table(contention),
            "",
        ]
    lines += [
        "### All timings",
        "",
        "`(!)` marks a competitor whose result disagreed with `F`'s in the sanity check.",
        "",
        timing_table(records),
        "",
        "### Method",
        "",
        METHOD,
    ]
    return "\n".join(lines)


def floors(records: list[dict[str, Any]]) -> list[str]:
    """Each xbce's forward ``mean`` time at the largest float32 size with floors, as a
    multiple of the floors timed in the same run (BCE's case; BCE with logits' reads
    the same inputs)."""
    from _competitors import FLOOR_LOGS, FLOOR_READ

    def at(family: str, n: int, who: str) -> dict[str, Any] | None:
        return next((r for r in records if (r["family"], r["n"], r["dtype"], r["reduction"],
                                           r["mode"]) == (family, n, "float32", "mean", "fwd")
                     and f"{r['backend']}:{r['competitor']}" == who), None)

    sizes = [r["n"] for r in records if r["competitor"] == FLOOR_READ]
    if not sizes:
        return []
    n = 10**7 if 10**7 in sizes else max(sizes)  # the size of the large-array targets
    read, logs = at("probs", n, f"jax:{FLOOR_READ}"), at("probs", n, f"jax:{FLOOR_LOGS}")
    if read is None or logs is None:  # timed only in BCE's case
        return []
    rows = []
    for family in ("probs", "logits"):
        for who in ("torch:F.binary_cross_entropy" + ("_with_logits" if family == "logits"
                                                      else ""),
                    "torch:xbce", "numpy:xbce", "jax:xbce jit", "jax:jnp formula jit"):
            r = at(family, n, who)
            if r is not None:
                ms = r["median_ms"]
                rows.append([family, who, f"{ms:.3g}", f"{ms / read['median_ms']:.1f}",
                             f"{ms / logs['median_ms']:.1f}"])
    return [
        f"### The floor at scale (float32, n={fmt_n(n)}, mean, forward)",
        "",
        f"Timed in this run, jitted JAX, one fused pass each: reading both inputs "
        f"{read['median_ms']:.3g} ms; BCE's two logs (`log(p)`, `log1p(-p)`) "
        f"{logs['median_ms']:.3g} ms. Each time below as a multiple of them.",
        "",
        md_table(["loss", "who", "ms", "x read floor", "x two-logs floor"], rows, "llrrr"),
        "",
    ]


def _plot(path: Path, records: list[dict[str, Any]]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fams = [f for f in ("probs", "logits") if any(r["family"] == f for r in records)]
    if not fams:
        return False
    fig, axes = plt.subplots(1, len(fams), figsize=(6.5 * len(fams), 5), squeeze=False)
    # one colour per competitor across both panels (torch F plays the same role in each)
    labels = list(
        dict.fromkeys(
            f"{r['backend']}:{r['competitor'].replace('_with_logits', '')}" for r in records
        )
    )
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    colour = {k: cmap(i % cmap.N) for i, k in enumerate(labels)}
    for ax, fam in zip(axes[0], fams, strict=True):
        sel = [
            r
            for r in records
            if r["family"] == fam
            and r["dtype"] == "float32"
            and r["reduction"] == "mean"
            and r["mode"] == "fwd"
        ]
        keys = list(dict.fromkeys(f"{r['backend']}:{r['competitor']}" for r in sel))
        for k in keys:
            pts = sorted(
                (r["n"], r["median_ms"]) for r in sel if f"{r['backend']}:{r['competitor']}" == k
            )
            style = "-" if "xbce" in k else "--"
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                style,
                marker="o",
                label=k,
                color=colour[k.replace("_with_logits", "")],
                linewidth=2.2 if "xbce" in k else 1.2,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("elements")
        ax.set_ylabel("median time per call (ms)")
        title = "binary_cross_entropy" if fam == "probs" else "binary_cross_entropy_with_logits"
        ax.set_title(f"{title}\nfloat32, reduction=mean, forward")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_all(
    out: Path,
    meta: dict[str, Any],
    records: list[dict[str, Any]],
    memory: list[dict[str, Any]],
    targets: list[dict[str, Any]],
    per_call: list[dict[str, Any]] | None = None,
    contention: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    per_call, contention = per_call or [], contention or []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    md = out / "cpu.md"
    md.write_text(_markdown(meta, records, memory, targets, per_call, contention) + "\n")
    files["markdown"] = md
    js = out / "cpu.json"

    def clean(o: Any) -> Any:
        if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        return o

    js.write_text(
        json.dumps(
            clean(
                {
                    "meta": meta,
                    "targets": targets,
                    "memory": memory,
                    "timings": records,
                    "per_call": per_call,
                    "contention": contention,
                }
            ),
            indent=1,
        )
        + "\n"
    )
    files["json"] = js
    png = out / "cpu.png"
    if _plot(png, records):
        files["plot"] = png
    tables = "\n\n".join(
        [
            "All timings (median ms per call; x F: ratio to torch.nn.functional; x base: ratio "
            "to the same backend's baseline):",
            timing_table(records),
            *(["Per call, one torch thread:", timing_table(per_call)] if per_call else []),
            *(["Peak extra memory per call:", memory_table(memory)] if memory else []),
            "Targets:",
            targets_table(targets),
        ]
    )
    return {"files": files, "tables": tables}
