"""``nox -s gpu`` on a machine without a CUDA GPU says so and returns at once (exit 0)."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


class _Session:
    """The bits of ``nox.Session`` the session uses before it would install anything."""

    def __init__(self) -> None:
        self.logs: list[str] = []

    def log(self, msg: str) -> None:
        self.logs.append(msg)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the no-GPU path called session.{name}")


def test_gpu_session_without_gpu_exits_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.environ.get("XBCE_REQUIRE_NOX"):  # nox -s numpy installs nox: missing is an error
        import nox  # noqa: F401
    else:
        pytest.importorskip("nox", reason="nox -s numpy runs this (it installs nox)")
    spec = importlib.util.spec_from_file_location("xbce_noxfile", ROOT / "noxfile.py")
    assert spec is not None
    assert spec.loader is not None
    noxfile = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "xbce_noxfile", noxfile)
    spec.loader.exec_module(noxfile)
    monkeypatch.setattr(noxfile, "_cuda_gpu", lambda: None)
    session = _Session()
    t0 = time.perf_counter()
    noxfile.gpu(session)  # returns normally: nox reports success (exit 0)
    assert time.perf_counter() - t0 < 1
    assert any("no CUDA GPU" in m for m in session.logs)
