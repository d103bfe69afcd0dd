"""The parity sweep's outputs: JSON (every cell), Markdown (for the docs), PNG heat map."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from metrics import fmt_ulps

LOSS_TITLE = {"bce": "BCE", "bcewl": "BCE with logits"}
Q_TITLE = {"fwd": "forward", "grad_input": "d/d input", "grad_target": "d/d target"}
GROUPS = [(loss, q) for loss in ("bce", "bcewl") for q in ("fwd", "grad_input", "grad_target")]


def _max(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def _rows(cells: list[Any]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for c in cells:
        seen.setdefault((c.backend, c.dtype), None)
    return list(seen)


def summary(cells: list[Any]) -> list[dict[str, Any]]:
    """Per backend and dtype, per (loss, quantity): the worst over weightings and
    reductions, the element-weighted identical share, and the cells passed."""
    out = []
    for backend, dtype in _rows(cells):
        mine = [c for c in cells if (c.backend, c.dtype) == (backend, dtype)]
        row: dict[str, Any] = {
            "backend": backend,
            "dtype": dtype,
            "passed": sum(c.passed for c in mine),
            "cells": len(mine),
        }
        for loss, q in GROUPS:
            grp = [c for c in mine if (c.loss, c.quantity) == (loss, q)]
            n = sum(c.n for c in grp if c.identical_share is not None)
            same = sum(c.n * c.identical_share for c in grp if c.identical_share is not None)
            row[f"{loss} {q}"] = {
                "ulp_vs_torch": _max(
                    float("inf") if c.ulp_vs_torch is None and c.failure else c.ulp_vs_torch
                    for c in grp
                ),
                "identical_share": same / n if n else None,
                "ulp_vs_exact": _max(c.ulp_vs_exact for c in grp),
                "torch_ulp_vs_exact": _max(c.torch_ulp_vs_exact for c in grp),
                "failing": sum(not c.passed for c in grp),
            }
        out.append(row)
    return out


def _pct(share: float | None) -> str:
    if share is None:
        return "—"
    if share == 1:
        return "100%"
    return f"{100 * share:.2f}%" if share > 0.9999 or share < 0.0001 else f"{100 * share:.1f}%"


def summary_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: worst ulps against torch (bit-identical share) per backend x dtype."""
    head = (
        ["backend", "dtype"]
        + [f"{LOSS_TITLE[lo]} {Q_TITLE[q]}" for lo, q in GROUPS]
        + ["cells passed"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = []
        for lo, q in GROUPS:
            g = r[f"{lo} {q}"]
            mark = " **FAIL**" if g["failing"] else ""
            vals.append(f"{fmt_ulps(g['ulp_vs_torch'])} ({_pct(g['identical_share'])}){mark}")
        lines.append(
            f"| {r['backend']} | {r['dtype']} | "
            + " | ".join(vals)
            + f" | {r['passed']}/{r['cells']} |"
        )
    return "\n".join(lines)


def exact_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: worst ulps against the exact value, xbce / torch."""
    head = ["backend", "dtype"] + [f"{LOSS_TITLE[lo]} {Q_TITLE[q]}" for lo, q in GROUPS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [
            f"{fmt_ulps(r[f'{lo} {q}']['ulp_vs_exact'])} / "
            f"{fmt_ulps(r[f'{lo} {q}']['torch_ulp_vs_exact'])}"
            for lo, q in GROUPS
        ]
        lines.append(f"| {r['backend']} | {r['dtype']} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def cells_table(cells: list[Any]) -> str:
    head = [
        "backend",
        "dtype",
        "loss",
        "quantity",
        "weighting",
        "reduction",
        "n",
        "tolerance",
        "ulp vs torch",
        "identical",
        "ulp vs exact",
        "torch vs exact",
        "FTZ",
        "result",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        ftz = (
            ""
            if c.ftz_elements is None
            else (f"{c.ftz_elements} ({fmt_ulps(c.ulp_vs_torch_unflushed)})")
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    c.backend,
                    c.dtype,
                    c.loss,
                    Q_TITLE[c.quantity],
                    c.weighting,
                    c.reduction,
                    str(c.n),
                    f"{c.tolerance_ulps} ({c.tolerance_quantity})",
                    fmt_ulps(c.ulp_vs_torch),
                    _pct(c.identical_share),
                    fmt_ulps(c.ulp_vs_exact),
                    fmt_ulps(c.torch_ulp_vs_exact),
                    ftz,
                    "pass" if c.passed else "**FAIL**",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def _failure_lines(cells: list[Any]) -> list[str]:
    failed = [c for c in cells if not c.passed]
    if not failed:
        return ["None: every cell is within its tolerance."]
    out = []
    for c in failed:
        first = c.failure.strip().splitlines()
        msg = " ".join(first[:3]) if first else "(no message)"
        w = c.worst
        at = ""
        if w.get("index") is not None and "x" in w:
            at = (
                f" Worst at x={w['x']!r}, y={w['y']!r}, weight={w['w']!r}, "
                f"pos_weight={w['pos_weight']!r}, grad={w['grad']!r}: "
                f"xbce={w['xbce']!r}, torch={w['expected']!r}."
            )
        elif w.get("row") is not None:
            at = f" Worst at row {w['row']}: xbce={w['xbce']!r}, torch={w['expected']!r}."
        out.append(
            f"- **{c.backend} {c.dtype}, {c.case}** "
            f"(tolerance {c.tolerance_ulps} ulp, worst {fmt_ulps(c.ulp_vs_torch)}): "
            f"`{msg[:300]}`{at}"
        )
    return out


def _exact_notes(cells: list[Any], threshold: float = 16) -> list[str]:
    """Per (dtype, loss, quantity), torch's worst distance from the exact value when it
    exceeds ``threshold`` ulps, with the element that shows it."""
    best: dict[tuple[str, str, str], Any] = {}
    for c in cells:
        u = c.torch_ulp_vs_exact
        if u is None or u <= threshold or not c.torch_worst_exact:
            continue
        key = (c.dtype, c.loss, c.quantity)
        if key not in best or u > best[key].torch_ulp_vs_exact:
            best[key] = c
    if not best:
        return [f"- (none: torch is within {threshold:g} ulps of the exact value everywhere)"]
    out = []
    for (dtype, loss, q), c in sorted(best.items()):
        w = c.torch_worst_exact
        where = (
            f"x={w['x']!r}, y={w['y']!r}, weight={w['w']!r}, pos_weight={w['pos_weight']!r}, "
            f"grad={w['grad']!r}"
            if "x" in w
            else f"row {w.get('row')}"
        )
        out.append(
            f"- {dtype} {LOSS_TITLE[loss]} {Q_TITLE[q]} ({c.weighting}, {c.reduction}): "
            f"{fmt_ulps(c.torch_ulp_vs_exact)} ulps at {where}: torch gives "
            f"{w['xbce']!r}, the exact value is {w['expected']!r}."
        )
    return out


def markdown(cells: list[Any], meta: dict[str, Any], name: str) -> str:
    rows = summary(cells)
    m, v = meta["machine"], meta["versions"]
    failed = sum(not c.passed for c in cells)
    vers = ", ".join(f"{k} {val}" for k, val in v.items())
    lines = [
        f"### Parity report: {name.upper() if name == 'cpu' else name}",
        "",
        f"xbce {v['xbce']} against **torch {v['torch']}** on the CPU "
        f"(`torch.nn.functional`, gradients by its autograd), {meta['date']}.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['os']}, Python {m['python']}"
        + (f", GPU {m['gpu']}" if "gpu" in m else "")
        + ".",
        f"- Versions: {vers}.",
        f"- Inputs: {meta['elements_per_cell']:,} elements per cell ({meta['rows']} rows "
        f"x {meta['cols']}; `mean`/`sum` reduce each row, so {meta['rows']} reduced values "
        "per cell): the edge tables of `tests/cases.py` and a seeded random corpus "
        "(uniform, near 0 and 1, exact 0/1, subnormal, hard and soft targets, logits up "
        f"to 1e4 and +-inf), seed {meta['seed']}.",
        f"- Cells: {len(cells)} (backend x dtype x loss x weighting x reduction x quantity), "
        f"**{len(cells) - failed} pass, {failed} fail**. Generated by `{meta['command']}` "
        f"in {meta['seconds']:.0f} s.",
        "- Exact reference: the same formula evaluated on the same dtype-rounded inputs; "
        f"for half and float32 in {meta['exact_reference']['float16/bfloat16/float32']}, "
        f"for float64 in {meta['exact_reference']['float64']}"
        + (
            f" (within {max(meta['mpmath_check_ulps'].values()):.2g} ulp of mpmath at 60 "
            "digits on a sample)"
            if meta.get("mpmath_check_ulps")
            else ""
        )
        + ".",
        "",
        "An error is `|xbce - torch| / ulp(scale)` in the dtype of the data, `scale` being "
        "the value's magnitude, for BCE with logits the magnitude of its cancelling terms "
        "`|(1-t)x| + |log_sigmoid(x)(1+(p-1)t)|`, for a reduction the sum of `|terms|`, and "
        "for the logits gradients the terms of `sigmoid(x) - t` (as the test suite "
        "measures). 0 means bit-identical; `inf` means a NaN or infinity did not match. "
        "JAX flushes subnormals to zero on the CPU: its cells compare with torch given the "
        "flushed inputs, and the FTZ column counts the elements with a subnormal input "
        "(with the worst error against torch on the unflushed inputs).",
        "",
        f"![Heat map of the worst error against torch per cell]({name}.png)",
        "",
        "#### Worst error against torch, ulps (share of bit-identical elements)",
        "",
        "Worst over the weightings (none, `weight`, `pos_weight`) and reductions "
        "(none, mean, sum).",
        "",
        summary_table(rows),
        "",
        "#### Worst error against the exact value, ulps: xbce / torch",
        "",
        exact_table(rows),
        "",
        "Large numbers here are limits of torch's formulas themselves, which xbce "
        "reproduces; the worst element of each (torch's value against the exact one):",
        "",
        *_exact_notes(cells),
        "",
        "#### Failing cells",
        "",
        *_failure_lines(cells),
        "",
        "#### Every cell",
        "",
        "Tolerances are those of `tests/tolerances.py` (quantity in parentheses).",
        "",
        cells_table(cells),
        "",
    ]
    return "\n".join(lines)


def heatmap(cells: list[Any], meta: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.patches import Rectangle

    rows = _rows(cells)
    order = {
        k: i
        for i, k in enumerate(
            [
                "bce",
                "bcewl",
                "fwd",
                "grad_input",
                "grad_target",
                "none",
                "weight",
                "pos_weight",
                "mean",
                "sum",
            ]
        )
    }
    cases = {(c.loss, c.quantity, c.weighting, c.reduction) for c in cells}
    cols = [" ".join(k) for k in sorted(cases, key=lambda k: [order[p] for p in k])]
    grid = np.full((len(rows), len(cols)), np.nan)
    fail = np.zeros_like(grid, dtype=bool)
    for c in cells:
        i = rows.index((c.backend, c.dtype))
        j = cols.index(f"{c.loss} {c.quantity} {c.weighting} {c.reduction}")
        u = c.ulp_vs_torch
        grid[i, j] = np.inf if u is None else u
        fail[i, j] = not c.passed
    shown = np.log2(1 + np.where(np.isinf(grid), 2.0**20, grid))
    cmap = LinearSegmentedColormap.from_list("ulps", ["#1a9850", "#fee08b", "#d73027", "#67001f"])
    cmap.set_bad("#dddddd")
    fig, ax = plt.subplots(figsize=(0.32 * len(cols) + 3.5, 0.34 * len(rows) + 3.2))
    im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=0, vmax=10, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            if np.isnan(grid[i, j]):
                continue
            txt = fmt_ulps(float(grid[i, j]))
            ax.text(
                j,
                i,
                txt,
                ha="center",
                va="center",
                fontsize=5,
                color="white" if shown[i, j] > 5 else "black",
            )
            if fail[i, j]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="#000000", lw=1.6))
    for j in range(1, len(cols)):  # a line between (loss, quantity) groups
        if cols[j].split()[:2] != cols[j - 1].split()[:2]:
            ax.axvline(j - 0.5, color="white", lw=2)
    for i in range(1, len(rows)):  # and between dtypes
        if rows[i][1] != rows[i - 1][1]:
            ax.axhline(i - 0.5, color="white", lw=2)
    ax.set_yticks(range(len(rows)), [f"{b} {d}" for b, d in rows], fontsize=7)
    short = {
        "fwd": "fwd",
        "grad_input": "dx",
        "grad_target": "dt",
        "none": "-",
        "weight": "w",
        "pos_weight": "pw",
        "bce": "BCE",
        "bcewl": "BCEWL",
    }
    labels = []
    for col in cols:
        lo, q, wt, red = col.split()
        labels.append(f"{short[lo]} {short[q]} {short[wt]} {red}")
    ax.set_xticks(range(len(cols)), labels, rotation=90, fontsize=6)
    cb = fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    ticks = [0, 1, 2, 4, 16, 256]
    cb.set_ticks([np.log2(1 + t) for t in ticks], labels=[str(t) for t in ticks])
    cb.set_label("worst error against torch (ulps)", fontsize=7)
    ax.set_title(
        f"xbce vs torch {meta['versions']['torch']}: worst ulps per cell "
        f"({meta['elements_per_cell']:,} elements; black frame = outside tolerance)",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _json_safe(o: Any) -> Any:
    """Strict JSON: non-finite floats become the strings 'inf', '-inf', 'nan'."""
    if isinstance(o, dict):
        return {str(k): _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
    if isinstance(o, float) and not np.isfinite(o):
        return repr(o)
    if isinstance(o, (np.floating, np.integer)):
        return _json_safe(o.item())
    return o


# What each table's cells mean, printed before the table (the report's Markdown has the
# same explanations in its headings and its opening paragraph).
LEGEND_VS_TORCH = (
    "Each cell is `U (S)`: U = the worst error against torch, in ulps of the dtype, over\n"
    "the weightings (none, weight, pos_weight) and reductions (none, mean, sum); S = the\n"
    "share of elements bit-identical to torch. 0 = bit-identical; inf = a NaN or infinity\n"
    "where torch has another value; **FAIL** = a cell outside its tolerance\n"
    "(tests/tolerances.py). 'cells passed' = cells within their tolerance / cells."
)
LEGEND_VS_EXACT = (
    "Each cell is `A / B`: A = xbce's worst error against the exact value (the same formula\n"
    "evaluated in higher precision on the same inputs), B = torch's own worst error against\n"
    "it, in ulps. inf = a NaN or infinity where the exact value is finite, so `inf / inf`\n"
    "means torch itself overflows there and xbce does too (e.g. float16's BCE gradient at\n"
    "p = 0, where torch's 1e-12 underflows to 0). Not judged: only the first table is."
)
LEGEND_MIXED = (
    "Every (input, target, weight, pos_weight) dtype combination torch accepts,\n"
    "reduction='none'. 'combinations' = how many were run; 'all bit-identical' = those\n"
    "bit-identical to torch in all three quantities. Each other cell is `S (U)`: S = the\n"
    "share of elements bit-identical to torch over all combinations, U = the worst error in\n"
    "ulps of the result's dtype at the value's own magnitude (so a cancelling element can\n"
    "read large). torch tensors must be bit-identical in every combination;\n"
    "the other backends are reported, not judged (their same-dtype cells are, above)."
)


def _aligned(table: list[str]) -> list[str]:
    """A Markdown table with its columns padded, for reading in a terminal."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table]
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        if all(set(c) <= {"-"} for c in r):
            r = ["-" * w for w in widths]
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + " |")
    return out


def _heading(text: str) -> str:
    return f"\n{text}\n{'=' * len(text)}\n"


def terminal_summary(rows: list[dict[str, Any]], cells: list[Any], mixed_lines: list[str]) -> str:
    """What ``nox -s parity`` prints: each table after its heading and a legend of its cells."""
    failures = _failure_lines(cells)
    if len(failures) > 12:
        failures = [*failures[:12], f"... {len(failures) - 12} more in the report"]
    out = [
        _heading("1. Worst error against torch, ulps (share of bit-identical elements)"),
        LEGEND_VS_TORCH,
        "",
        *_aligned(summary_table(rows).splitlines()),
        _heading("2. Worst error against the exact value, ulps: xbce / torch"),
        LEGEND_VS_EXACT,
        "",
        *_aligned(exact_table(rows).splitlines()),
        _heading("3. Failing cells"),
        *failures,
    ]
    if mixed_lines:
        table = [line for line in mixed_lines if line.startswith("|")]
        rest = [line for line in mixed_lines if line.startswith(("Failing", "- "))]
        out += [
            _heading("4. Mixed dtypes (BCE with logits): bit-identical share (worst ulps)"),
            LEGEND_MIXED,
            "",
            *_aligned(table),
            "",
            *rest,
        ]
    return "\n".join(out)


def layout_markdown(cells: list[Any]) -> list[str]:
    """The layout cells (2^18 + 1 elements; transposed inputs): one row per backend,
    dtype, layout, loss and quantity, worst over the weightings."""
    groups: dict[tuple[str, str, str, str, str], list[Any]] = {}
    for c in cells:
        groups.setdefault((c.backend, c.dtype, c.layout, c.loss, c.quantity), []).append(c)
    lines = [
        "#### Layouts",
        "",
        "`reduction='none'`, every weighting (worst shown), torch's reference on the same "
        "layout: 2^18 + 1 elements (52429 x 5, in blocks on NumPy) and 2^21 + 1 (699051 x 3, "
        "in blocks on NumPy and torch CPU), and the 100 x 1000 corpus transposed "
        "(non-contiguous).",
        "",
        "| backend | dtype | layout | loss | quantity | worst ulp vs torch | bit-identical "
        "| tolerance | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (backend, dtype, layout, loss, q), cs in groups.items():
        ulps = [c.ulp_vs_torch for c in cs]
        worst = None if any(u is None for u in ulps) else max(ulps)
        n = sum(c.n for c in cs)
        share = sum((c.identical_share or 0) * c.n for c in cs) / n if n else 1.0
        tol = max(c.tolerance_ulps for c in cs)
        ok = all(c.passed for c in cs)
        lines.append(
            f"| {backend} | {dtype} | {layout} | {LOSS_TITLE[loss]} | {Q_TITLE[q]} | "
            f"{fmt_ulps(worst)} | {100 * share:.2f}% | {tol} | {'ok' if ok else 'FAIL'} |"
        )
    return [*lines, ""]


def write_reports(
    cells: list[Any],
    meta: dict[str, Any],
    out: Path,
    name: str,
    *,
    plot: bool = True,
    mixed: list[Any] | None = None,
    layouts: list[Any] | None = None,
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    rows = summary(cells)
    mixed_lines: list[str] = []
    if mixed:
        import mixed as mixed_sweep

        mixed_lines = mixed_sweep.markdown(mixed)
        meta = {**meta, "mixed_dtypes": mixed_sweep.summary(mixed)}
    if layouts:
        mixed_lines = layout_markdown(layouts) + mixed_lines
        meta = {**meta, "layout_cells": [_json_safe(c.to_json()) for c in layouts]}
    print(terminal_summary(rows, cells, mixed_lines))
    paths = []
    jp = out / f"{name}.json"
    # one cell per line: diffable, and a third of the size of an indented dump
    head = json.dumps(_json_safe({"meta": meta, "summary": rows}), indent=1, allow_nan=False)
    body = ",\n".join(
        "  " + json.dumps(_json_safe(c.to_json()), allow_nan=False, separators=(",", ":"))
        for c in cells
    )
    jp.write_text(head[:-2] + ',\n "cells": [\n' + body + "\n ]\n}\n")
    paths.append(jp)
    mp = out / f"{name}.md"
    text = markdown(cells, meta, name)
    if mixed_lines:
        # before the per-cell table, after the failing cells
        marker = "#### Every cell"
        text = text.replace(marker, "\n".join(mixed_lines) + "\n\n" + marker, 1)
    mp.write_text(text)
    paths.append(mp)
    if plot:
        pp = out / f"{name}.png"
        heatmap(cells, meta, pp)
        paths.append(pp)
    return paths
