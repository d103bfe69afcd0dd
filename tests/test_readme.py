"""README.md's examples run as written, and what their comments say is true.

Every ```` ```python ```` block of README.md runs in a fresh interpreter, as a user would
paste it (from the checkout's root, ``KERAS_BACKEND`` unset: the Keras example sets it
itself). The values it leaves are then compared with ``torch.nn.functional``'s, computed
here on the same inputs, within the tolerances of ``tests/tolerances.py``. A number in a
comment (``# 0.60529``) is checked as torch's value rounded to the digits shown, and so
is every value within twice the tolerance of torch's: the digits hold on every CPU, not
only on the one that printed them. Every number in a comment must be checked here.

The ``$ xbce explain ...`` example of the bash blocks is run; its output must contain
the README's excerpt (``...`` standing for omitted text), and the numbers in it are
checked against torch.

A block whose library is not installed is skipped, unless ``XBCE_README_REQUIRED=1``
(``nox -s conventions``, which installs all of them): there it is an error.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tokenize
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as TF
from comparisons import assert_ulp_close, loss_scale, spacing
from grads import Case
from tolerances import ulps

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
REQUIRED = os.environ.get("XBCE_README_REQUIRED") == "1"

PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```", README, re.S | re.M)
BASH_BLOCKS = re.findall(r"^```bash\n(.*?)^```", README, re.S | re.M)


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README.md has no section {title!r}"
    return match.group(1)


def _kind(code: str) -> str:
    """Which example a block is (the key of CHECKS)."""
    if re.search(r"^from xbce import running\b", code, re.M):
        return "running"
    for module, kind in (("xbce.keras", "keras"), ("xbce.torch", "torch"), ("jax", "jax"),
                         ("numpy", "numpy")):
        if re.search(rf"^import {re.escape(module)}\b", code, re.M):
            return kind
    return "other"


def _needs(code: str) -> list[str]:
    """The libraries a block imports (and the Keras backend it sets), xbce's own aside."""
    tops = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            tops |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            tops.add(node.module.split(".")[0])
    tops |= set(re.findall(r"""os\.environ\["KERAS_BACKEND"\] = "(\w+)\"""", code))
    return sorted(t for t in tops if t != "xbce" and t not in sys.stdlib_module_names)


def _comment_numbers(code: str) -> dict[str, str]:
    """``{assigned name: the number in its line's comment}`` for every comment holding a
    number; a number in a comment on any other line is an error."""
    out: dict[str, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type != tokenize.COMMENT:
            continue
        numbers = re.findall(r"(?<![\w.])\d+\.\d+", tok.string)
        if not numbers:
            continue
        line = tok.line.split("#", 1)[0]
        name = re.match(r"\s*([A-Za-z_]\w*)\s*=[^=]", line)
        why = f"README comment {tok.string!r}: one number per comment, on a line `name = ...`"
        assert name, why
        assert len(numbers) == 1, why
        out[name.group(1)] = numbers[0]
    return out


_DUMP = """

import json as _json
import numpy as _np

def _plain(_v):
    if hasattr(_v, "detach"):
        _v = _v.detach().cpu().numpy()
    _a = _np.asarray(_v)
    return {"dtype": str(_a.dtype), "shape": list(_a.shape),
            "hex": [float(_e).hex() for _e in _a.reshape(-1).tolist()]}

print("\\n" + _json.dumps({_k: _plain(eval(_e)) for _k, _e in _WANTED.items()}))
"""


def _run_block(code: str, wanted: dict[str, str]) -> dict[str, torch.Tensor]:
    """Run ``code`` in a fresh interpreter; return the values of the expressions
    ``wanted`` (evaluated in its namespace afterwards) as CPU tensors, bits kept."""
    for lib in _needs(code):
        if importlib.util.find_spec(lib) is None and not REQUIRED:
            pytest.skip(f"this README example needs {lib}, not installed here "
                        "(XBCE_README_REQUIRED=1 in nox -s conventions makes this an error)")
    script = code + f"\n_WANTED = {wanted!r}" + _DUMP
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300, check=False)
    assert proc.returncode == 0, f"the README example fails:\n{code}\n{proc.stderr}"
    dumped = json.loads(proc.stdout.strip().splitlines()[-1])
    out = {}
    for key, value in dumped.items():
        dtype = getattr(torch, value["dtype"])
        flat = torch.tensor([float.fromhex(h) for h in value["hex"]], dtype=torch.float64)
        out[key] = flat.to(dtype).reshape(value["shape"])
    return out


class Claims:
    """The numbers in one block's comments, each checked once against torch."""

    def __init__(self, code: str) -> None:
        self.numbers = _comment_numbers(code)
        self.checked: set[str] = set()

    def digits(self, name: str, expected: torch.Tensor, max_ulps: int,
               scale: torch.Tensor | None = None) -> None:
        """The comment on ``name = ...`` shows torch's value ``expected`` rounded to the
        digits shown, and so does every value within 2 * ``max_ulps`` of it (of
        ``scale``): whatever the CPU, the digits printed are those."""
        claimed = self.numbers[name]
        decimals = len(claimed.partition(".")[2])
        mag = expected.double().abs() if scale is None else scale.double()
        step = 2 * max(max_ulps, 1) * spacing(mag, expected.dtype).item()
        value = expected.double().item()
        for v in (value - step, value, value + step):
            assert f"{v:.{decimals}f}" == claimed, (
                f"README: `{name} = ...  # {claimed}`, torch gives {value!r}: "
                f"{v!r} (within {2 * max(max_ulps, 1)} ulp) prints as {v:.{decimals}f}")
        self.checked.add(name)

    def all_checked(self) -> None:
        assert set(self.numbers) == self.checked, (
            f"README numbers in comments not checked by tests/test_readme.py: "
            f"{sorted(set(self.numbers) - self.checked)}")


def _check_torch(code: str, claims: Claims) -> None:
    v = _run_block(code, {"logits": "logits", "target": "target", "loss": "loss",
                          "grad": "logits.grad", "pos_weight": "criterion.pos_weight",
                          "x": "x", "total": "total"})
    x, t, pw = v["logits"], v["target"], v["pos_weight"]
    # `loss = criterion(logits, target)  # torch.nn.BCEWithLogitsLoss's value`
    expected = torch.nn.BCEWithLogitsLoss(pos_weight=pw)(x, t)
    scale = loss_scale("bcewl", x, t, pos_weight=pw, reduction="mean")
    assert_ulp_close(v["loss"], expected, ulps("reduced", "float32", "torch"), scale=scale,
                     what="README torch loss")
    # `loss.backward()  # and its gradient, in logits.grad`
    case = Case("bcewl", x, t, torch.tensor(1.0), "mean", None, pw)
    assert_ulp_close(v["grad"], case.reference()[0],
                     ulps("bcewl_grad", "float32", "torch")
                     + ulps("broadcast_div", "float32", "torch"),
                     scale=case.scales()[0], what="README torch gradient")
    # `total = xbce.torch.BCELoss(reduction="sum")(x, ...)  # 100.95`
    y = torch.tensor([1.0, 0.7, 1.0])
    assert "(x, torch.tensor([1.0, 0.7, 1.0]))" in code  # the target the check uses
    expected = torch.nn.BCELoss(reduction="sum")(v["x"], y)
    scale = loss_scale("bce", v["x"], y, reduction="sum")
    tol = ulps("reduced", "float32", "torch")
    assert_ulp_close(v["total"], expected, tol, scale=scale, what="README torch total")
    claims.digits("total", expected, tol, scale)


def _check_keras(code: str, claims: Claims) -> None:
    assert 'os.environ["KERAS_BACKEND"] = ' in code.split("import keras")[0], (
        "the Keras example must set KERAS_BACKEND before importing keras")
    v = _run_block(code, {"loss": "loss", "logits": "keras.ops.convert_to_numpy(model(x))",
                          "y": "y"})
    # `loss = model.evaluate(x, y)  # torch's BCEWithLogitsLoss()(model(x), y)`
    expected = torch.nn.BCEWithLogitsLoss()(v["logits"], v["y"])
    scale = loss_scale("bcewl", v["logits"], v["y"], reduction="mean")
    assert_ulp_close(v["loss"].to(torch.float32), expected,
                     ulps("reduced", "float32", "jax") + ulps("bcewl", "float32", "jax"),
                     scale=scale, what="README keras loss")


def _check_numpy(code: str, claims: Claims) -> None:
    v = _run_block(code, {"p": "p", "y": "y", "mean": "mean", "total": "total",
                          "grad": "grad"})
    p, y = v["p"], v["y"]
    tol = ulps("reduced", "float32", "numpy") + ulps("bce", "float32", "numpy")
    for name, reduction in (("mean", "mean"), ("total", "sum")):
        expected = TF.binary_cross_entropy(p, y, reduction=reduction)
        scale = loss_scale("bce", p, y, reduction=reduction)
        assert_ulp_close(v[name], expected, tol, scale=scale, what=f"README numpy {name}")
        claims.digits(name, expected, tol, scale)
    # `grad = xbce.binary_cross_entropy_backward(np.float32(1.0), p, y)  # torch's gradient`
    case = Case("bce", p, y, torch.tensor(1.0), "mean")
    assert_ulp_close(v["grad"], case.reference()[0],
                     ulps("bce_grad", "float32", "numpy")
                     + ulps("broadcast_div", "float32", "numpy"), what="README numpy grad")


def _check_jax(code: str, claims: Claims) -> None:
    v = _run_block(code, {"logits": "logits", "t": "t", "loss": "loss", "grad": "grad"})
    x, t = v["logits"], v["t"]
    dtype = str(x.dtype).removeprefix("torch.")
    assert "pos_weight=3.0" in code  # the pos_weight the check uses
    pw = torch.tensor(3.0, dtype=x.dtype)
    # `loss, grad = f(logits), jax.grad(f)(logits)  # torch's value and gradient`
    expected = TF.binary_cross_entropy_with_logits(x, t, pos_weight=pw)
    assert_ulp_close(v["loss"], expected, ulps("reduced", dtype, "jax"),
                     scale=loss_scale("bcewl", x, t, pos_weight=pw, reduction="mean"),
                     what="README jax loss")
    case = Case("bcewl", x, t, torch.tensor(1.0, dtype=x.dtype), "mean", None, pw)
    assert_ulp_close(v["grad"], case.reference()[0],
                     ulps("bcewl_grad", dtype, "jax") + ulps("broadcast_div", dtype, "jax"),
                     scale=case.scales()[0], what="README jax gradient")


def _check_running(code: str, claims: Claims) -> None:
    v = _run_block(code, {"p": "p", "y": "y", "usual": "usual", "bce": "bce"})
    p, y = v["p"], v["y"]
    tol = ulps("reduced", "float32", "torch")
    # `bce = metric.compute()  # torch's BCE of all ten samples at once`
    expected = TF.binary_cross_entropy(p, y)
    scale = loss_scale("bce", p, y, reduction="mean")
    assert_ulp_close(v["bce"], expected, tol, scale=scale, what="README running BCE")
    claims.digits("bce", expected, tol, scale)
    # `usual = epoch_loss / 3  # the mean of the batch means`, recomputed here
    assert "batch_size=4)" in code  # the batches the check uses
    means = [TF.binary_cross_entropy(p[i:i + 4], y[i:i + 4]) for i in range(0, len(p), 4)]
    usual = torch.stack(means).double().mean().to(torch.float32)
    scale = torch.stack([loss_scale("bce", p[i:i + 4], y[i:i + 4], reduction="mean")
                         for i in range(0, len(p), 4)]).mean()
    assert_ulp_close(v["usual"].to(torch.float32), usual, tol, scale=scale,
                     what="README mean of batch means")
    claims.digits("usual", usual, tol, scale)


CHECKS: dict[str, Callable[[str, Claims], None]] = {
    "torch": _check_torch, "keras": _check_keras, "numpy": _check_numpy, "jax": _check_jax,
    "running": _check_running,
}


def test_readme_has_the_examples() -> None:
    assert sorted(_kind(code) for code in PYTHON_BLOCKS) == sorted(CHECKS)


@pytest.mark.parametrize("code", PYTHON_BLOCKS, ids=[_kind(c) for c in PYTHON_BLOCKS])
def test_python_example_runs_and_its_comments_are_torchs(code: str) -> None:
    claims = Claims(code)
    check = CHECKS.get(_kind(code))
    if check is None:  # a new example: it must run, and say no number unchecked
        _run_block(code, {})
    else:
        check(code, claims)
    claims.all_checked()


def _explain_examples() -> list[tuple[list[str], str]]:
    """``(arguments, README's output excerpt)`` of each ``$ xbce explain`` in a bash block."""
    out = []
    for block in BASH_BLOCKS:
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("$ xbce "):
                rest = []
                for following in lines[i + 1:]:
                    if following.startswith("$ "):
                        break
                    rest.append(following)
                out.append((shlex.split(line[2:])[1:], "\n".join(rest)))
    return out


EXPLAIN_EXAMPLES = _explain_examples()


def test_readme_has_the_explain_example() -> None:
    assert [args[0] for args, _ in EXPLAIN_EXAMPLES] == ["explain"]


@pytest.mark.parametrize(("args", "excerpt"), EXPLAIN_EXAMPLES)
def test_explain_example_output_and_its_numbers(args: list[str], excerpt: str) -> None:
    if importlib.util.find_spec("numpy") is None:  # explain needs NumPy
        pytest.skip("xbce explain needs NumPy")
    script = shutil.which("xbce", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "xbce"]
    proc = subprocess.run([*command, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    got = " ".join(proc.stdout.split())
    position = 0
    for fragment in " ".join(excerpt.split()).split("..."):
        fragment = fragment.strip()
        found = got.find(fragment, position)
        assert found >= 0, f"README's `xbce explain` output {fragment!r} is not in:\n{got}"
        position = found + len(fragment)
    # the numbers: --value is torch's sum; "gives X in float64" is torch's mean
    opts = dict(zip(args[1::2], args[2::2], strict=False))
    x = torch.tensor([float(a) for a in opts["--input"].split(",")], dtype=torch.float64)
    t = torch.tensor([float(a) for a in opts["--target"].split(",")], dtype=torch.float64)
    if "'torch sum'" in excerpt.split("...")[0]:
        total = TF.binary_cross_entropy(x, t, reduction="sum").item()
        assert f"{total:.8g}" == opts["--value"]
    mean = TF.binary_cross_entropy(x, t).item()
    claimed = re.search(r"gives (\S+) in float64", " ".join(excerpt.split()))
    assert claimed, excerpt
    assert f"{mean:.8g}" == claimed.group(1)


def test_install_section_names_the_reference_torch_and_the_cpu_build() -> None:
    install = _section("Install")
    pin = re.search(r'^TORCH = "(torch==[^"]+)"$', (ROOT / "noxfile.py").read_text(), re.M)
    assert pin
    assert f"pip install {pin.group(1)} --index-url https://download.pytorch.org/whl/cpu" \
        in install
    assert "KERAS_BACKEND" in install
    # every extra named is one pyproject.toml declares
    declared = set(re.findall(r"^(\w+) = \[", (ROOT / "pyproject.toml").read_text()
                              .split("[project.optional-dependencies]")[1].split("\n[")[0],
                              re.M))
    named = {e for group in re.findall(r"\.\[([\w,]+)\]", install) for e in group.split(",")}
    assert named, install
    assert named <= declared, named - declared


def test_use_section_says_how_the_examples_are_tested() -> None:
    assert "tests/test_readme.py" in _section("Use")
