"""xbce copied into another package ("vendored") must use that package's array_api_compat.

The layout a vendoring library would ship, built in ``tmp_path``::

    mylib/
        __init__.py
        _vendored/
            __init__.py
            _array_api_compat_vendor.py   # the hook (same name and role as array-api-extra's)
            array_api_compat/             # the installed array_api_compat, copied
            xbce/                         # this checkout's xbce/, copied

Each check runs in a fresh interpreter started with ``-I -S``: no ``site``, so no
``.pth`` files and no editable install of xbce. Its ``sys.path`` is the standard
library, ``tmp_path`` and the directory holding NumPy (that directory also holds the
installed ``array_api_compat``, so importing it by mistake *is* possible and detected).

Needs only NumPy, array-api-compat and pytest; torch and JAX are never imported.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

XBCE_SRC = Path(__file__).resolve().parents[1] / "xbce"


def _assert_torch_values(out: dict[str, Any]) -> None:
    """The probe's two float32 means are torch's, computed here on this CPU, within the
    tolerances of the element (``bce``/``bcewl``) plus the mean (``reduced``): the last
    bits of NumPy's ``log``/``log1p`` depend on the CPU's vector instructions."""
    import torch
    import torch.nn.functional as F
    from comparisons import assert_ulp_close
    from tolerances import ulps

    f32 = torch.float32
    p, y = torch.tensor([[0.5401], [0.4482]]), torch.tensor([[1.0], [0.0]])
    x, t = torch.tensor([0.8, -1.2, 3.0]), torch.tensor([1.0, 0.0, 0.0])
    for name, want in (("bce", F.binary_cross_entropy(p, y)),
                       ("bcewl", F.binary_cross_entropy_with_logits(x, t))):
        assert want.dtype == f32
        tol = ulps(name, "float32", "numpy") + ulps("reduced", "float32", "numpy")
        assert_ulp_close(torch.tensor(out[name], dtype=f32), want, tol, what=name)

IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "vendor_tests")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"{name} is not installed; the vendoring test needs it")
    return Path(next(iter(spec.submodule_search_locations)))


def _hook_names() -> list[str]:
    """The names xbce/_compat.py takes from the hook (or, as fallback, from
    ``array_api_compat``): the attributes of ``compat`` it assigns."""
    tree = ast.parse((XBCE_SRC / "_compat.py").read_text())
    hooked = [node for node in ast.walk(tree) if isinstance(node, ast.Constant)
              and node.value == ".._array_api_compat_vendor"]
    assert hooked, "xbce/_compat.py no longer imports .._array_api_compat_vendor"
    names = [node.attr for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
             and node.value.id == "compat"]
    assert len(names) >= 7, names
    return names


HOOK = '''\
"""Hook read by the vendored xbce (and array-api-extra): use *our* array_api_compat."""
from .{compat} import *  # noqa: F403
from .{compat} import {names}  # the names xbce/_compat.py needs
'''


def _build(root: Path, *, hook: bool, compat: str = "array_api_compat") -> Path:
    """``mylib/_vendored/`` with xbce and array_api_compat copied in (the latter under the
    name ``compat``), and the hook if asked for."""
    vendored = root / "mylib" / "_vendored"
    vendored.mkdir(parents=True)
    (root / "mylib" / "__init__.py").write_text("")
    (vendored / "__init__.py").write_text("")
    shutil.copytree(XBCE_SRC, vendored / "xbce", ignore=IGNORE)
    shutil.copytree(_package_dir("array_api_compat"), vendored / compat, ignore=IGNORE)
    if hook:
        names = ", ".join(_hook_names())
        hook_text = HOOK.format(names=names, compat=compat)
        (vendored / "_array_api_compat_vendor.py").write_text(hook_text)
    return root


PROBE = """
import json
import sys

sys.path[:0] = [{root!r}, {numpy_site!r}]

import numpy as np

import mylib._vendored.xbce as xbce

p = np.asarray([[0.5401], [0.4482]], dtype=np.float32)
y = np.asarray([[1.0], [0.0]], dtype=np.float32)
x = np.asarray([0.8, -1.2, 3.0], dtype=np.float32)
t = np.asarray([1.0, 0.0, 0.0], dtype=np.float32)
out = {{
    "bce": float(xbce.binary_cross_entropy(p, y)),
    "bcewl": float(xbce.BCEWithLogitsLoss()(x, t)),
    "grad_shape": list(xbce.binary_cross_entropy_backward(np.float32(1.0), p, y).shape),
    "xbce_file": xbce.__file__,
    "compat_module": xbce._compat.array_namespace.__module__,
    "modules": sorted(sys.modules),
}}
try:
    xbce.binary_cross_entropy(np.asarray([1.5]), np.asarray([1.0]))
except RuntimeError as e:
    out["error"] = [type(e).__module__, type(e).__name__, str(e)]
hook = sys.modules.get("mylib._vendored._array_api_compat_vendor")
vendored = sys.modules.get("mylib._vendored.array_api_compat")
out["hook_names_from_vendored_compat"] = (
    None if hook is None or vendored is None
    else all(getattr(hook, n) is getattr(vendored, n) for n in {names!r})
)
out["compat_is_hooked"] = hook is not None and xbce._compat.array_namespace is hook.array_namespace
print(json.dumps(out))
"""


def _probe(root: Path) -> dict:
    numpy_site = str(_package_dir("numpy").parent)
    code = PROBE.format(root=str(root), numpy_site=numpy_site, names=_hook_names())
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"vendored xbce failed:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _top_level(modules: list[str], name: str) -> list[str]:
    return [m for m in modules if m == name or m.startswith(name + ".")]


def test_hook_names_match_array_api_compat() -> None:
    """Every name xbce takes from the hook exists in array_api_compat (so the
    one-line star-import hook that SciPy ships is enough)."""
    import array_api_compat

    missing = [n for n in _hook_names() if not hasattr(array_api_compat, n)]
    assert not missing, f"array_api_compat {array_api_compat.__version__} lacks {missing}"


def test_vendored_xbce_uses_the_hook(tmp_path: Path) -> None:
    root = _build(tmp_path, hook=True)
    out = _probe(root)

    # (a) it works, with PyTorch's numbers and PyTorch's error
    _assert_torch_values(out)
    assert out["grad_shape"] == [2, 1]
    assert out["error"] == [
        "mylib._vendored.xbce._checks",
        "InvalidValueError",
        "all elements of input should be between 0 and 1",
    ]
    assert Path(out["xbce_file"]).is_relative_to(root)

    # (b) the hook was used: the vendored array_api_compat, never the installed one
    modules = out["modules"]
    assert "mylib._vendored._array_api_compat_vendor" in modules
    assert "mylib._vendored.array_api_compat" in modules
    assert not _top_level(modules, "array_api_compat"), _top_level(modules, "array_api_compat")
    assert out["compat_module"].startswith("mylib._vendored.array_api_compat.")
    assert out["compat_is_hooked"] is True
    assert out["hook_names_from_vendored_compat"] is True

    # (c) only the vendored name of xbce was imported
    assert not _top_level(modules, "xbce"), _top_level(modules, "xbce")
    assert "mylib._vendored.xbce" in modules

    # and no array library besides NumPy
    for lib in ("torch", "jax", "cupy", "dask", "array_api_strict"):
        assert not _top_level(modules, lib), f"vendored xbce imported {lib}"


def test_vendored_xbce_without_hook_falls_back_to_installed(tmp_path: Path) -> None:
    root = _build(tmp_path, hook=False)
    out = _probe(root)

    _assert_torch_values(out)
    modules = out["modules"]
    assert "mylib._vendored._array_api_compat_vendor" not in modules
    assert "array_api_compat" in modules  # the installed one, from NumPy's directory
    assert not _top_level(modules, "mylib._vendored.array_api_compat")
    assert out["compat_module"].startswith("array_api_compat.")
    assert out["compat_is_hooked"] is False
    assert not _top_level(modules, "xbce")


def test_probe_cannot_see_an_installed_xbce(tmp_path: Path) -> None:
    """The probe's interpreter really is isolated: a top-level ``import xbce`` fails
    there unless xbce was installed into NumPy's directory non-editably (then the
    ``xbce`` check above is what guards against absolute imports)."""
    numpy_site = _package_dir("numpy").parent
    code = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(tmp_path)!r}, {str(numpy_site)!r}]
        try:
            import xbce
        except ImportError:
            print("absent")
        else:
            print(xbce.__file__)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    seen = proc.stdout.strip()
    assert seen == "absent" or Path(seen).is_relative_to(numpy_site), seen


#: the front ends a vendor may leave out (docs/vendoring.md): the core works without them
FRONT_ENDS = ("_explain.py", "conventions.py", "_checkify.py", "_modules.py", "_cli.py",
              "__main__.py", "_requires.py", "torch.py", "keras.py", "running.py")
#: and the backends a vendor may leave out when it never sees their arrays
OPTIONAL_BACKENDS = ("_dask.py", "_array_api.py")

CORE_PROBE = """
import json
import sys

sys.path[:0] = [{root!r}, {numpy_site!r}]

import numpy as np
import torch

import mylib._vendored.xbce as xbce

p = torch.tensor([[0.5401], [0.4482]], requires_grad=True)
y = torch.tensor([[1.0], [0.0]])
w = np.asarray([2.0], dtype=np.float32)  # a NumPy weight next to torch tensors
loss = xbce.binary_cross_entropy(p, y, w)
loss.backward()
x = torch.tensor([0.8, -1.2, 3.0])
t = torch.tensor([1.0, 0.0, 0.0])
out = {{
    "bce": loss.item(),
    "bce_type": type(loss).__module__,
    "grad": p.grad.reshape(-1).tolist(),
    "bcewl": xbce.binary_cross_entropy_with_logits(x, t, pos_weight=np.float32(3.0)).item(),
    "numpy": float(xbce.binary_cross_entropy(p.detach().numpy(), y.numpy())),
    "modules": sorted(sys.modules),
}}
print(json.dumps(out))
"""


def _core_probe(root: Path) -> dict[str, Any]:
    site = str(_package_dir("numpy").parent)
    if _package_dir("torch").parent != Path(site):
        pytest.fail("the probe needs torch and numpy in one site directory")
    code = CORE_PROBE.format(root=str(root), numpy_site=site)
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True, cwd=root, timeout=300, check=False)
    assert proc.returncode == 0, f"vendored xbce failed:\n{proc.stderr}"
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(("front_ends", "compat"), [
    (True, "array_api_compat"), (False, "array_api_compat"), (True, "aac_copy")],
    ids=["whole", "core-only", "compat-renamed"])
def test_vendored_xbce_mixed_numpy_and_torch(tmp_path: Path, front_ends: bool,
                                             compat: str) -> None:
    """A NumPy ``weight``/``pos_weight`` next to torch tensors, in a copy whose
    array_api_compat is vendored too (the namespaces' names then start with
    ``mylib._vendored.array_api_compat``, or ``mylib._vendored.aac_copy`` where the
    vendor renamed it): converted to torch as in the installed package, with torch's
    values and gradient. ``core-only`` copies xbce without its front ends
    (:data:`FRONT_ENDS`) and without the Dask and generic backends."""
    import torch
    import torch.nn.functional as F

    root = _build(tmp_path, hook=True, compat=compat)
    if not front_ends:
        for name in FRONT_ENDS + OPTIONAL_BACKENDS:
            (root / "mylib" / "_vendored" / "xbce" / name).unlink()
    out = _core_probe(root)
    assert not _top_level(out["modules"], "array_api_compat")
    assert out["bce_type"].startswith("torch")
    p = torch.tensor([[0.5401], [0.4482]], requires_grad=True)
    y = torch.tensor([[1.0], [0.0]])
    want = F.binary_cross_entropy(p, y, torch.tensor([2.0]))
    want.backward()
    # torch's own ops on torch tensors: the same kernels, the same bits
    assert out["bce"] == want.item()
    assert out["grad"] == p.grad.reshape(-1).tolist()
    x, t = torch.tensor([0.8, -1.2, 3.0]), torch.tensor([1.0, 0.0, 0.0])
    assert out["bcewl"] == F.binary_cross_entropy_with_logits(
        x, t, pos_weight=torch.tensor(3.0)).item()
    from comparisons import assert_ulp_close
    from tolerances import ulps

    tol = ulps("bce", "float32", "numpy") + ulps("reduced", "float32", "numpy")
    assert_ulp_close(torch.tensor(out["numpy"]), F.binary_cross_entropy(p.detach(), y), tol,
                     what="numpy bce")
    if not front_ends:
        loaded = {m.rsplit(".", 1)[-1] for m in _top_level(out["modules"], "mylib._vendored.xbce")}
        assert not loaded & {n.removesuffix(".py") for n in FRONT_ENDS}
