"""``import xbce`` imports no array library; using it imports only the one you use.

Each check runs in a fresh interpreter (``sys.modules`` of the test process is full of
whatever other tests imported). The interpreter starts in the repository root, so it
imports this checkout's xbce even when xbce is not installed.

Needs only NumPy, array-api-compat and pytest; the other libraries are checked for
*absence*, so they may or may not be installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARRAY_LIBRARIES = ("numpy", "torch", "jax", "jaxlib", "cupy", "dask", "array_api_strict")


def _modules_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; return its ``sys.modules`` and ``xbce.__file__``."""
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import json as _json, sys as _sys
        print(_json.dumps({
            "modules": sorted(_sys.modules),
            "xbce": getattr(_sys.modules.get("xbce"), "__file__", None),
        }))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _imported(modules: list[str], *libraries: str) -> list[str]:
    tops = {m.split(".")[0] for m in modules}
    return sorted(lib for lib in libraries if lib in tops)


def test_import_xbce_imports_no_array_library() -> None:
    out = _modules_after("import xbce")
    assert Path(out["xbce"]).resolve().parent == ROOT / "xbce"  # this checkout's xbce
    assert _imported(out["modules"], *ARRAY_LIBRARIES) == []
    assert "array_api_compat" in out["modules"]  # fine: it imports no array library either


NUMPY_USE = """
import numpy as np
import xbce

p = np.asarray([[0.5401], [0.4482]], dtype=np.float32)
y = np.asarray([[1.0], [0.0]], dtype=np.float32)
x = np.asarray([0.8, -1.2, 3.0])
t = np.asarray([1.0, 0.0, 0.0])
one = np.asarray(1.0)
xbce.binary_cross_entropy(p, y)  # values: against torch in test_forward.py; here, imports
xbce.binary_cross_entropy(p, y, weight=np.asarray([2.0], np.float32), reduction="none")
xbce.binary_cross_entropy_with_logits(x, t, pos_weight=np.asarray([1.0, 2.0, 3.0]))
xbce.binary_cross_entropy_backward(np.float32(1.0), p, y)
xbce.binary_cross_entropy_target_backward(np.float32(1.0), p, y)
xbce.binary_cross_entropy_with_logits_backward(one, x, t)
xbce.binary_cross_entropy_with_logits_target_backward(one, x, t, reduction="sum")
xbce.BCELoss(reduction="sum")(p, y)
xbce.BCEWithLogitsLoss(weight=np.ones(3))(x, t)
repr(xbce.BCEWithLogitsLoss(pos_weight=np.asarray([3.0])))
big = np.full(1 << 19, 0.25)  # large enough for the blocked (cache-sized) evaluation
xbce.binary_cross_entropy(big, big)
xbce.binary_cross_entropy_with_logits(big, big, reduction="none")
try:
    xbce.binary_cross_entropy(np.asarray([1.5]), np.asarray([1.0]))
except xbce.InvalidValueError:
    pass
else:
    raise AssertionError("no InvalidValueError")
try:
    xbce.binary_cross_entropy(np.asarray([1, 0]), np.asarray([1, 0]))
except xbce.UnsupportedDtypeError:
    pass
else:
    raise AssertionError("no UnsupportedDtypeError")
"""


def test_numpy_use_imports_no_other_array_library() -> None:
    out = _modules_after(NUMPY_USE)
    assert "numpy" in out["modules"]
    others = [lib for lib in ARRAY_LIBRARIES if lib != "numpy"]
    assert _imported(out["modules"], *others) == []


@pytest.mark.parametrize(
    ("library", "code"),
    [
        (
            "array_api_strict",
            """
            import array_api_strict as xp
            import xbce
            p = xp.asarray([0.2, 0.7]); y = xp.asarray([0.0, 1.0])
            xbce.binary_cross_entropy(p, y)
            xbce.binary_cross_entropy_with_logits(p, y)
            xbce.binary_cross_entropy_backward(xp.asarray(1.0), p, y)
            """,
        ),
        (
            "dask",
            """
            import dask.array as da
            import numpy as np
            import xbce
            p = da.from_array(np.asarray([0.2, 0.7, 0.9, 0.4]), chunks=2)
            y = da.from_array(np.asarray([0.0, 1.0, 1.0, 0.0]), chunks=2)
            xbce.binary_cross_entropy(p, y).compute()
            xbce.binary_cross_entropy_with_logits(p, y, reduction="none").compute()
            """,
        ),
    ],
)
def test_other_cpu_library_use_imports_neither_torch_nor_jax(library: str, code: str) -> None:
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed")
    out = _modules_after(code)
    assert library in {m.split(".")[0] for m in out["modules"]}
    assert _imported(out["modules"], "torch", "jax", "jaxlib", "cupy") == []


def test_conventions_explain_and_cli_import_no_array_library() -> None:
    out = _modules_after(
        "import xbce, xbce.conventions, xbce._explain, xbce._cli; xbce.explain; xbce.conventions"
    )
    assert _imported(out["modules"], *ARRAY_LIBRARIES) == []


EXPLAIN_USE = """
import numpy as np
import xbce
from xbce import conventions

e = xbce.explain([0.5401, 0.4482], [1, 0], "1.2105706")
assert e.matches[0] == "torch sum", e.matches
str(e)
xbce.explain(np.asarray([-1.0, 2.0]), np.asarray([0.0, 1.0]), 0.2, from_logits=True)
p, y = np.asarray([0.2, 0.7]), np.asarray([0.0, 1.0])
conventions.keras_binary_crossentropy(y, p)
conventions.sklearn_log_loss(y, p)
conventions.optax_sigmoid_binary_cross_entropy(p, y)
conventions.tensorflow_sigmoid_cross_entropy_with_logits(labels=y, logits=p)
conventions.handwritten_binary_cross_entropy(p, y, clip=1e-7)
from xbce._cli import main
main(["explain", "--input", "0.5401,0.4482", "--target", "1,0", "--value", "0.6053"])
"""


def test_explain_and_conventions_on_numpy_import_no_other_array_library() -> None:
    out = _modules_after(EXPLAIN_USE)
    assert "numpy" in out["modules"]
    others = [lib for lib in ARRAY_LIBRARIES if lib != "numpy"]
    assert _imported(out["modules"], *others) == []


def test_xbce_torch_imports_torch_and_no_other_array_library() -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    out = _modules_after(
        """
        import xbce.torch
        import torch
        torch.nn.Sequential(torch.nn.Sigmoid(), xbce.torch.BCELoss())
        xbce.torch.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0]))(
            torch.zeros(3), torch.ones(3))
        """
    )
    assert "torch" in out["modules"]
    assert _imported(out["modules"], "jax", "jaxlib", "cupy", "dask", "array_api_strict",
                     "keras") == []


def test_import_xbce_does_not_import_xbce_torch_or_keras() -> None:
    out = _modules_after("import xbce")
    assert "xbce.torch" not in out["modules"]
    assert "xbce.keras" not in out["modules"]
    assert _imported(out["modules"], "keras") == []


def _error_without(blocked: str, code: str, env: dict[str, str | None] | None = None) -> dict:
    """Run ``code`` in a fresh interpreter in which ``import <blocked>`` fails as it does
    when the library is not installed (``sys.modules[blocked] = None``); return the
    ``ModuleNotFoundError`` it raises: its message, ``name`` and its cause's. ``env``:
    variables to set (``None``: to unset)."""
    script = (
        f"import json, sys\nsys.modules[{blocked!r}] = None\ntry:\n"
        + textwrap.indent(textwrap.dedent(code).strip(), "    ")
        + textwrap.dedent(
            """
            except ModuleNotFoundError as exc:
                cause = exc.__cause__
                print(json.dumps({
                    "message": str(exc), "name": exc.name,
                    "cause": None if cause is None else [type(cause).__name__, cause.name],
                }))
            else:
                print(json.dumps(None))
            """
        )
    )
    environ = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
        timeout=120, check=False, env=environ,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out is not None, f"no ModuleNotFoundError with {blocked} missing"
    return out


def _reference_torch() -> str:
    """noxfile.py's pin of the reference torch, e.g. ``2.13.0``."""
    pin = re.search(r'^TORCH = "torch==([^"]+)"$', (ROOT / "noxfile.py").read_text(), re.M)
    assert pin, "noxfile.py has no TORCH pin"
    return pin.group(1)


def test_xbce_torch_without_torch_says_what_to_install() -> None:
    out = _error_without("torch", "import xbce.torch")
    assert out["name"] == "torch"  # as Python's own error: code testing .name still works
    assert out["cause"] == ["ModuleNotFoundError", "torch"]  # raised from Python's own
    message = out["message"]
    assert message.startswith("xbce.torch needs PyTorch, which is not installed: ")
    assert f"torch=={_reference_torch()}" in message  # the reference version, noxfile's
    assert "--index-url https://download.pytorch.org/whl/cpu" in message  # the CPU build
    assert 'pip install ".[torch]"' in message  # xbce's extra


def test_xbce_keras_without_keras_says_what_to_install() -> None:
    out = _error_without("keras", "import xbce.keras", env={"KERAS_BACKEND": "jax"})
    assert out["name"] == "keras"
    assert out["cause"] == ["ModuleNotFoundError", "keras"]
    assert out["message"].startswith("xbce.keras needs Keras 3, which is not installed: ")
    assert 'pip install ".[keras]"' in out["message"]
    assert "KERAS_BACKEND=jax" in out["message"]


def test_xbce_keras_without_a_backend_says_to_set_keras_backend() -> None:
    """Keras' default backend is TensorFlow: ``import keras`` without it and without
    ``KERAS_BACKEND`` fails on ``tensorflow``. Simulated here without Keras itself: a
    stand-in ``keras`` package whose import fails as Keras 3's does."""
    code = """
    import importlib.abc, importlib.machinery
    class _Keras(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path=None, target=None):
            if name == "keras":
                return importlib.machinery.ModuleSpec(name, self)
        def create_module(self, spec):
            return None
        def exec_module(self, module):
            import tensorflow  # noqa: F401  (Keras 3's default backend)
    sys.meta_path.insert(0, _Keras())
    import xbce.keras
    """
    out = _error_without("tensorflow", code, env={"KERAS_BACKEND": None})
    assert out["name"] == "tensorflow"
    assert out["cause"] == ["ModuleNotFoundError", "tensorflow"]
    assert out["message"].startswith("xbce.keras: Keras could not import tensorflow")
    assert "set KERAS_BACKEND=jax or torch" in out["message"]


def test_xbce_checkify_without_jax_says_what_to_install() -> None:
    out = _error_without("jax", "import xbce\nxbce.checkify(lambda x: x)")
    assert out["name"] == "jax"
    assert out["cause"] == ["ModuleNotFoundError", "jax"]
    assert out["message"].startswith("xbce.checkify needs JAX, which is not installed: ")
    assert 'pip install ".[jax]"' in out["message"]


def test_dir_lists_the_public_api() -> None:
    """``dir(xbce)`` (tab completion) is ``__all__`` and the dunders: no ``annotations``
    (a ``from __future__`` import) and no private submodules."""
    out = subprocess.run(
        [sys.executable, "-c", "import json, xbce; print(json.dumps([dir(xbce), xbce.__all__]))"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=True,
    )
    names, public = json.loads(out.stdout)
    assert "annotations" not in names
    assert sorted(n for n in names if not n.startswith("__")) == sorted(
        n for n in public if not n.startswith("__"))
    assert {"__version__", "__doc__", "__all__"} <= set(names)
    assert names == sorted(names)


def test_import_xbce_loads_only_the_core() -> None:
    """The front ends load on first use: ``import xbce`` and a loss call leave them out,
    ``xbce.explain`` then brings its module in (docs/vendoring.md: a vendor may delete them)."""
    front_ends = ["xbce._explain", "xbce.conventions", "xbce._checkify", "xbce._modules",
                  "xbce._cli", "xbce._requires", "xbce.running"]
    out = _modules_after(
        "import numpy as np, xbce\n"
        "xbce.binary_cross_entropy(np.asarray([0.5]), np.asarray([1.0]))"
    )
    assert [m for m in front_ends if m in out["modules"]] == []
    out = _modules_after("import xbce\nxbce.explain")
    assert "xbce._explain" in out["modules"]
