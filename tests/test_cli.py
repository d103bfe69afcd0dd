"""The command line: ``python -m xbce explain`` and the ``xbce`` console script."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from xbce import _cli

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m xbce ARGS`` in a fresh interpreter, from the checkout's root."""
    return subprocess.run(
        [sys.executable, "-m", "xbce", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )


def test_module_explains_the_perceptron_sum() -> None:
    total = torch.nn.functional.binary_cross_entropy(
        torch.tensor([0.5401, 0.4482]), torch.tensor([1.0, 0.0]), reduction="sum").item()
    value = f"{total:.8g}"
    assert value == "1.2105706"
    out = _run("explain", "--input", "0.5401,0.4482", "--target", "1,0", "--value", value)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("1.2105706 matches 'torch sum'")
    assert "PyTorch (binary_cross_entropy, reduction='mean') gives 0.60528529" in out.stdout
    assert out.stderr == ""


def test_npy_and_csv_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = np.asarray([[0.2, 0.9], [0.6, 0.05]], np.float32)
    y = np.asarray([[0.0, 1.0], [1.0, 0.0]], np.float32)
    np.save(tmp_path / "p.npy", p)
    np.savetxt(tmp_path / "y.csv", y, delimiter=",")
    mean = torch.nn.functional.binary_cross_entropy(torch.from_numpy(p), torch.from_numpy(y))
    status = _cli.main(["explain", "--input", str(tmp_path / "p.npy"),
                        "--target", str(tmp_path / "y.csv"), "--value", str(mean.item())])
    out = capsys.readouterr().out
    assert status == 0
    # p.npy is float32, y.csv float64: explain casts targets to the input's dtype
    assert out.startswith(f"{mean.item():.8g} matches 'torch'")
    assert "float32" in out


def test_logits_weight_and_candidates(capsys: pytest.CaptureFixture[str]) -> None:
    x = torch.tensor([-3.0, 0.5, 2.0], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    value = torch.nn.functional.binary_cross_entropy_with_logits(x, t, weight=w).item()
    status = _cli.main(["explain", "--input", "-3,0.5,2", "--target", "0,1,1", "--weight",
                        "1,2,0.5", "--logits", "--value", repr(value), "--candidates"])
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith(f"{value:.8g} matches 'torch'")
    assert "sigmoid, then log(1-p), clamp 1e-7" in out  # the candidate list


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "0.5,abc", "--target", "1,0", "--value", "1"], "'abc' is not a number"),
        (["--input", "0.5,", "--target", "1,0", "--value", "1"], "comma-separated numbers"),
        (["--input", "0.5", "--target", "1,0", "--value", "1"], "differs from input shape"),
        (["--input", "0.5,0.4", "--target", "1,0", "--value", "x"], "must be a number"),
        (["--input", "1.5,0.4", "--target", "1,0", "--value", "1"], "--logits"),
        (["--input", "missing.npy", "--target", "1,0", "--value", "1"], "no such file"),
        (["--input", "0.5,0.4", "--target", "1,0"], "the following arguments are required"),
        (["--input", "0.5,0.4", "--target", "1,0", "--value", "1", "--bogus"],
         "unrecognized arguments"),
    ],
)
def test_bad_arguments_exit_2_without_traceback(args: list[str], message: str) -> None:
    out = _run("explain", *args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout == ""


def test_malformed_files(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("0.5,oops\n")
    (tmp_path / "bad.npy").write_bytes(b"not a numpy file")
    np.save(tmp_path / "strings.npy", np.asarray(["a", "b"]))
    for name, message in [("bad.csv", "cannot read"), ("bad.npy", "cannot read"),
                          ("strings.npy", "not real numbers")]:
        out = _run("explain", "--input", str(tmp_path / name), "--target", "1,0",
                   "--value", "1")
        assert out.returncode == 2, name
        assert message in out.stderr, (name, out.stderr)
        assert "Traceback" not in out.stderr


def test_object_npy_is_refused_not_unpickled(tmp_path: Path) -> None:
    """A pickle in an .npy file is never executed (np.load(allow_pickle=False))."""
    marker = tmp_path / "executed"
    payload = np.asarray([_Exploit(str(marker))], dtype=object)
    np.save(tmp_path / "evil.npy", payload, allow_pickle=True)
    assert not marker.exists()
    out = _run("explain", "--input", str(tmp_path / "evil.npy"), "--target", "1",
               "--value", "1")
    assert out.returncode == 2
    assert "allow_pickle=False" in out.stderr
    assert not marker.exists()


class _Exploit:
    """Unpickling this would create a file (via os.system's harmless cousin, open)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def test_no_command_and_help() -> None:
    out = _run()
    assert out.returncode == 2
    assert "COMMAND" in out.stderr
    out = _run("explain", "--help")
    assert out.returncode == 0
    assert "--input" in out.stdout


def test_console_script_is_declared() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert '[project.scripts]\nxbce = "xbce._cli:main"' in text


def test_version() -> None:
    import xbce

    out = _run("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"xbce {xbce.__version__}\n"
    try:  # installed (the nox sessions): the wheel's version is the one printed
        installed = importlib.metadata.version("xbce")
    except importlib.metadata.PackageNotFoundError:
        installed = xbce.__version__
    assert installed == xbce.__version__


def test_more_matches_are_listed_not_sent_to_an_attribute() -> None:
    """The summary names six matches; the CLI says the rest follow, and lists them all
    (the Python attribute ``.matches`` means nothing to a shell user)."""
    import xbce

    total = torch.nn.functional.binary_cross_entropy(
        torch.tensor([0.5401, 0.4482]), torch.tensor([1.0, 0.0]), reduction="sum").item()
    value = f"{total:.8g}"
    expected = xbce.explain([0.5401, 0.4482], [1, 0], value).matches
    assert len(expected) > 6  # else the summary would name them all
    out = _run("explain", "--input", "0.5401,0.4482", "--target", "1,0", "--value", value)
    assert out.returncode == 0, out.stderr
    summary, rest = out.stdout.split("\n", 1)
    assert ".matches" not in out.stdout
    assert f" and {len(expected) - 6} more (all listed below)." in summary
    listed = rest.split("matches:\n", 1)[1].splitlines()
    assert [line.strip() for line in listed if line.strip()] == expected
    assert "(see .matches)" in str(xbce.explain([0.5401, 0.4482], [1, 0], value))  # Python


def test_batch_size_recognises_an_epoch_loss(capsys: pytest.CaptureFixture[str]) -> None:
    """``--batch-size``: the sum of torch's batch means of the usual loop, the dataset's
    BCE beside it."""
    p = torch.tensor([0.6, 0.3, 0.2, 0.4, 0.1, 0.8, 0.7], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    epoch_loss = 0.0
    for pb, yb in torch.utils.data.DataLoader(torch.utils.data.TensorDataset(p, y),
                                              batch_size=3):
        epoch_loss += torch.nn.functional.binary_cross_entropy(pb, yb).item()
    dataset = torch.nn.functional.binary_cross_entropy(p, y).item()
    value = f"{epoch_loss:.6f}"
    status = _cli.main(["explain", "--input", ",".join(map(str, p.tolist())), "--target",
                        ",".join(map(str, y.tolist())), "--value", value,
                        "--batch-size", "3"])
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith(f"{float(value):.8g} matches 'torch sum of batch means'")
    assert f"gives {dataset:.8g} in float64: the dataset's BCE" in out
    assert "over 3 batches of 3, the last of 1" in out


@pytest.mark.parametrize(("size", "message"), [
    ("0", "batch_size should be a positive integer value, but got batch_size=0"),
    ("-3", "batch_size should be a positive integer value, but got batch_size=-3"),
    ("two", "argument --batch-size: invalid int value: 'two'"),
])
def test_bad_batch_size_exits_2(size: str, message: str) -> None:
    out = _run("explain", "--input", "0.5,0.4", "--target", "1,0", "--value", "1",
               "--batch-size", size)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
