"""Print the size of xbce's core and the length of its call paths (issue: the vendorable core).

* **The core**: the modules of ``xbce/`` loaded after both losses and their explicit
  backward functions ran on NumPy, torch and JAX arrays (in a fresh interpreter), with
  their lines of code: lines that are not blank, not comments and not part of a
  docstring (found with ``tokenize``/``ast``).
* **Call paths**, counted with ``sys.setprofile`` (Python functions defined in ``xbce/``
  only; the array libraries' own calls are not counted): *calls* is the number of calls
  of such functions, *crossings* the number of those calls made from a frame of another
  ``xbce/`` file (the first call, from the user's code, is not a crossing). Measured on
  the second of two identical calls (the first one fills caches).

Usage: ``python tests/scripts/core_size.py [--json]``; needs numpy, torch and jax.
"""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
import tokenize

HERE = os.path.dirname(os.path.abspath(__file__))

_LOAD = """
import json, sys
import numpy as np, torch, jax.numpy as jnp
import xbce
for xp_asarray in (np.asarray, torch.asarray, jnp.asarray):
    x = xp_asarray(np.linspace(0.1, 0.9, 8, dtype=np.float32))
    g = xp_asarray(np.float32(1.0))
    xbce.binary_cross_entropy(x, x)
    xbce.binary_cross_entropy_with_logits(x, x)
    xbce.binary_cross_entropy_backward(g, x, x)
    xbce.binary_cross_entropy_with_logits_backward(g, x, x)
    xbce.binary_cross_entropy_target_backward(g, x, x)
    xbce.binary_cross_entropy_with_logits_target_backward(g, x, x)
mods = [m for n, m in sys.modules.items() if n == "xbce" or n.startswith("xbce.")]
print(json.dumps(sorted(m.__file__ for m in mods if getattr(m, "__file__", None))))
"""


def code_lines(path: str) -> tuple[int, int]:
    """``(lines, lines of code)`` of a Python file: code excludes blank lines, comments
    and docstrings (of the module, classes and functions)."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    docstring_lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                docstring_lines.update(range(first.lineno, (first.end_lineno or 0) + 1))
    code: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                        tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        for line in range(tok.start[0], tok.end[0] + 1):
            if line not in docstring_lines:
                code.add(line)
    return source.count("\n"), len(code)


def core_modules() -> list[str]:
    out = subprocess.run([sys.executable, "-c", _LOAD], check=True, capture_output=True,
                         text=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def call_path(fn, *args, **kwargs) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """``(calls, crossings)`` of ``fn(*args, **kwargs)`` inside ``xbce/``."""
    import xbce

    package = os.path.dirname(os.path.abspath(xbce.__file__)) + os.sep
    calls = crossings = 0

    def profile(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal calls, crossings
        if event != "call":
            return
        file = frame.f_code.co_filename
        if not file.startswith(package):
            return
        calls += 1
        caller = frame.f_back.f_code.co_filename if frame.f_back is not None else ""
        if caller.startswith(package) and caller != file:
            crossings += 1

    fn(*args, **kwargs)  # caches filled
    sys.setprofile(profile)
    try:
        fn(*args, **kwargs)
    finally:
        sys.setprofile(None)
    return calls, crossings


def measure() -> dict[str, object]:
    import numpy as np
    import torch

    import xbce

    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 1000).astype(np.float32)
    y = rng.uniform(0, 1, 1000).astype(np.float32)
    xt = torch.from_numpy(rng.standard_normal(1000).astype(np.float32)).requires_grad_()
    tt = torch.from_numpy(y.copy())

    def torch_logits() -> None:
        xbce.binary_cross_entropy_with_logits(xt, tt).backward()

    pt = torch.from_numpy(p.copy()).requires_grad_()

    def torch_bce() -> None:
        xbce.binary_cross_entropy(pt, tt).backward()

    paths = {
        "numpy binary_cross_entropy (1000)": call_path(xbce.binary_cross_entropy, p, y),
        "numpy binary_cross_entropy_with_logits (1000)": call_path(
            xbce.binary_cross_entropy_with_logits, p, y),
        "torch binary_cross_entropy_with_logits forward+backward (1000)": call_path(torch_logits),
        "torch binary_cross_entropy forward+backward (1000)": call_path(torch_bce),
    }
    files = core_modules()
    sizes = {os.path.basename(f): code_lines(f) for f in files}
    return {
        "core_modules": len(files),
        "core_lines": sum(n for n, _ in sizes.values()),
        "core_code_lines": sum(c for _, c in sizes.values()),
        "modules": {name: {"lines": n, "code": c} for name, (n, c) in sorted(sizes.items())},
        "call_paths": {k: {"calls": c, "crossings": x} for k, (c, x) in paths.items()},
    }


def main() -> None:
    result = measure()
    if "--json" in sys.argv:
        print(json.dumps(result, indent=1))
        return
    print(f"core: {result['core_modules']} modules, {result['core_lines']} lines, "
          f"{result['core_code_lines']} of code")
    for name, s in result["modules"].items():  # type: ignore[attr-defined]
        print(f"  {name:24} {s['lines']:5} lines {s['code']:5} code")
    for name, s in result["call_paths"].items():  # type: ignore[attr-defined]
        print(f"{name}: {s['calls']} calls, {s['crossings']} crossings")


if __name__ == "__main__":
    main()
