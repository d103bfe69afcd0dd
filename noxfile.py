"""Developer tasks for xbce. ``nox -l`` lists them; ``nox`` runs the default ones (what CI runs).

Each test session installs xbce, the pinned reference PyTorch (every expected value in
the tests is computed by ``torch.nn.functional`` on the CPU) and one backend, and runs
the whole suite with ``XBCE_BACKENDS`` naming that backend, so a missing backend is an
error instead of a skip. Arguments after ``--`` go to pytest (or to the script a session
runs), e.g. ``nox -s jax -- -x -k logits``.

Besides the newest releases: ``minimum`` runs the suite at the declared minimum versions
(pyproject.toml's floors), ``jax`` runs it with ``jax_enable_x64`` off (JAX's default)
and then its float64 tests with it on, and ``array_api_strict`` runs at the newest
standard with array-api-strict's strictest flags.

Virtualenvs are made by ``virtualenv`` and filled by pip (not uv): the pinned
``torch==2.13.0`` must resolve to the CPU wheel that pip finds locally, and a bare or
open-ended ``torch`` can pull a multi-GB CUDA build. Environments are reused between
local runs (``--reuse-venv=no`` rebuilds them, as ``.ci/run`` does).

GPU sessions (``cupy``, ``torch_cuda``, ``jax_gpu``) are not default: they first look
for a working ``nvidia-smi`` and skip, saying so, on a machine without a CUDA GPU;
``gpu`` (the one-shot GPU report) says so and exits 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox
import nox.command

#: The reference PyTorch: the version whose CPU results xbce reproduces.
TORCH = "torch==2.13.0"

ROOT = Path(__file__).resolve().parent

nox.options.default_venv_backend = "virtualenv"
nox.options.reuse_venv = "yes"
nox.options.error_on_external_run = True

# pip installs without byte-compiling (`pip install --no-compile`; pip reads its
# --no-X switches from the environment inverted: PIP_NO_COMPILE=0 means --no-compile).
# Measured: torch==2.13.0 and numpy into a new virtualenv take 20 s instead of 67 s; the
# modules a session imports are compiled when first imported.
os.environ.setdefault("PIP_NO_COMPILE", "0")

#: pytest-xdist: the suites of the backend sessions run on every core (``-n auto``; on
#: CI's 2 cores the torch suite takes ~0.6x the time of one process)
TEST_DEPS = ("pytest", "pytest-xdist", "hypothesis", "numpy", TORCH)

#: The newest version of the array API standard that array-api-strict supports; the
#: ``array_api_strict`` session runs there with its strictest flags (tests/backends.py)
STRICT_API_VERSION = "2025.12"


# ----------------------------------------------------------------------- helpers
def _cuda_gpu() -> str | None:
    """The first GPU ``nvidia-smi -L`` lists, or None when there is no working one."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("GPU ")]
    return lines[0] if out.returncode == 0 and lines else None


def _require_gpu(session: nox.Session) -> None:
    gpu = _cuda_gpu()
    if gpu is None:
        why = (
            "nvidia-smi is not installed"
            if shutil.which("nvidia-smi") is None
            else "nvidia-smi -L fails or lists no GPU"
        )
        session.skip(f"no CUDA GPU on this machine: {why}; this session did not run")
    session.log(f"CUDA GPU found: {gpu}")


#: four JAX CPU devices, for the sharding tests (tests/test_scale_out.py)
FOUR_CPU_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}


def _run_tests(
    session: nox.Session, backend: str, env: dict[str, str] | None = None, *args: str
) -> None:
    """The whole suite against one backend (forwarding pytest arguments).

    tests/test_readme.py runs the README's examples, which name their libraries
    themselves: once, in ``conventions``, where every one of them is installed."""
    session.run(
        "pytest",
        "tests",
        "--ignore=tests/test_readme.py",
        "-n",
        "auto",
        *args,
        *session.posargs,
        env={"XBCE_BACKENDS": backend, **(env or {})},
    )


# ------------------------------------------------------------------ CPU test sessions
@nox.session
def numpy(session: nox.Session) -> None:
    """Test suite on NumPy, plus the docstring examples of the package (doctests).

    nox is installed here too: tests/test_nox_gpu.py loads this noxfile (XBCE_REQUIRE_NOX
    makes a missing nox an error there instead of a skip)."""
    session.install(".", *TEST_DEPS, "nox")
    _run_tests(session, "numpy", {"XBCE_REQUIRE_NOX": "1"})
    # the docstring examples use NumPy; the JAX backend module (_jax.py) needs jax to be imported
    session.run(
        "pytest",
        "--doctest-modules",
        "xbce",
        "--ignore=xbce/_jax.py",
        "--ignore=xbce/keras.py",  # needs Keras: tests/test_keras.py (nox -s conventions)
        env={"XBCE_BACKENDS": "numpy"},
    )


@nox.session
def torch(session: nox.Session) -> None:
    """Test suite on PyTorch tensors (CPU), autograd included."""
    session.install(".", *TEST_DEPS)
    _run_tests(session, "torch")


@nox.session
def jax(session: nox.Session) -> None:
    """Test suite on JAX arrays (CPU), jax.grad/jit/vmap included; x64 off, then on.

    First with ``jax_enable_x64`` off, JAX's default and what most JAX users run (float32
    throughout; the tests that need float64 on JAX are marked ``x64`` and skip, saying
    so), then with it on for those tests alone (``-m x64``; tests/conftest.py)."""
    session.install(".", *TEST_DEPS, "jax")
    _run_tests(session, "jax", {**FOUR_CPU_DEVICES, "XBCE_JAX_X64": "0"})
    _run_tests(session, "jax", {**FOUR_CPU_DEVICES, "XBCE_JAX_X64": "1"}, "-m", "x64")


@nox.session
def dask(session: nox.Session) -> None:
    """Test suite on Dask arrays (lazy: values are never read before compute)."""
    session.install(".", *TEST_DEPS, "dask[array]")
    _run_tests(session, "dask")


@nox.session
def distributed(session: nox.Session) -> None:
    """Scale-out: a dask.distributed cluster of worker processes, JAX on 4 CPU devices.

    The cluster computes both losses (errors reach the client); JAX arrays sharded over
    four CPU devices run under jit, shard_map and grad (tests/test_scale_out.py). The
    running BCE's states merge across them, and across two torch.distributed (gloo)
    processes (tests/test_running_distributed.py)."""
    # distributed pins the dask it needs (``dask==`` its own version); unbounded, pip
    # backtracked to distributed 2021.4.1 beside dask 2026.11.0 (released before
    # distributed 2026.11: measured 2026-12-06), which fails to import
    session.install(".", *TEST_DEPS, "dask[array]", "distributed>=2024.8", "jax")
    session.run("pytest", "tests/test_scale_out.py", "tests/test_running_distributed.py",
                *session.posargs,
                env={"XBCE_BACKENDS": "dask,jax,torch", **FOUR_CPU_DEVICES})


@nox.session
def array_api_strict(session: nox.Session) -> None:
    """Test suite on array-api-strict: proves xbce uses only the array API standard.

    At the newest version of the standard array-api-strict supports, with its strictest
    flags: no data-dependent shapes, no boolean indexing, no optional extensions
    (tests/backends.py sets them before any test runs)."""
    session.install(".", *TEST_DEPS, "array-api-strict")
    _run_tests(session, "array_api_strict", {"XBCE_STRICT_API_VERSION": STRICT_API_VERSION})


#: The declared minimum versions: pyproject.toml's floors, tested together (``minimum``).
#: NumPy's floor is 2.0, not 1.26: under NumPy 1.26's value-based casting 0-d float16
#: and float32 inputs give float64 losses and gradients (measured: 18 failures in
#: tests/test_errors.py::test_empty_and_zero_d and
#: tests/test_mixed_inputs.py::test_zero_d_inputs_give_zero_d_arrays; NEP 50, NumPy 2.0).
MINIMUM = (
    "numpy==2.0.*",
    # 0.4.35 and 0.7.0 measured failing (pyproject.toml's comment on the jax extra)
    "jax==0.7.2",
    "jaxlib==0.7.2",
    "dask[array]==2024.8.*",
    "array-api-compat==1.11.*",
    "array-api-strict==2.3.*",
)

MINIMUM_CHECK = """
import sys
from importlib.metadata import version
pins = dict(p.split("==") for p in sys.argv[1:])
found = {name: version(name.split("[")[0]) for name in pins}
wrong = {n: v for n, v in found.items() if not v.startswith(pins[n].rstrip("*").rstrip("."))}
assert not wrong, f"not the declared minimum versions: {wrong}"
print("minimum versions:", ", ".join(f"{n} {v}" for n, v in found.items()))
"""


@nox.session
def minimum(session: nox.Session) -> None:
    """Test suite at the declared minimum versions (pyproject.toml), the reference torch.

    NumPy, JAX, Dask and array-api-strict arrays through array-api-compat, all at their
    floors (JAX with x64 on: the float64 tests run too); torch is the pinned reference
    in every session, so its backend runs in ``torch``."""
    # wheels only: a floor without a wheel for this Python must fail, not build from source
    session.install("--only-binary=:all:", *MINIMUM, TORCH, "pytest", "pytest-xdist",
                    "hypothesis")
    session.install("--no-deps", ".")
    session.run("python", "-c", MINIMUM_CHECK, *MINIMUM)
    _run_tests(session, "numpy,jax,dask,array_api_strict",
               {**FOUR_CPU_DEVICES, "XBCE_JAX_X64": "1"})


@nox.session
def conventions(session: nox.Session) -> None:
    """Other frameworks: xbce.conventions and xbce.keras against Keras, sklearn, optax, TF.

    xbce.conventions is compared with Keras 3, scikit-learn, optax and TensorFlow on
    every CPU backend; xbce.keras runs on Keras' JAX and torch backends (tests/test_keras.py
    once for each: Keras reads KERAS_BACKEND once, at import). One virtualenv for both."""
    session.install(
        ".", *TEST_DEPS, "jax", "dask[array]", "array-api-strict",
        "keras", "scikit-learn", "optax", "tensorflow-cpu",
    )
    session.run(
        "pytest",
        "tests/test_conventions.py",
        *session.posargs,
        env={
            "XBCE_BACKENDS": "numpy,torch,jax,dask,array_api_strict",
            "XBCE_CONVENTIONS_REQUIRED": "1",  # a missing library is an error, not a skip
            "KERAS_BACKEND": "jax",
        },
    )
    for backend in ("jax", "torch"):
        session.run(
            "pytest",
            "tests/test_keras.py",
            *session.posargs,
            env={"KERAS_BACKEND": backend, "XBCE_BACKENDS": "numpy", "XBCE_REQUIRE_KERAS": "1"},
        )
    # README.md's examples as written (torch, Keras, NumPy, JAX, `xbce explain`), checked
    # against torch; every library they import is installed here, so a missing one fails
    session.run("pytest", "tests/test_readme.py", *session.posargs,
                env={"XBCE_BACKENDS": "numpy", "XBCE_README_REQUIRED": "1"})


# ------------------------------------------------------------------ GPU test sessions
@nox.session(default=False)
def cupy(session: nox.Session) -> None:
    """Test suite on CuPy (needs a CUDA 12 GPU; skips without one)."""
    _require_gpu(session)
    session.install(".", *TEST_DEPS, "cupy-cuda12x")
    _run_tests(session, "cupy")


@nox.session(default=False)
def torch_cuda(session: nox.Session) -> None:
    """Test suite on PyTorch CUDA tensors against torch on the CPU (needs a CUDA GPU)."""
    _require_gpu(session)
    session.install(".", *TEST_DEPS)
    cuda = session.run(
        "python", "-c", "import torch; print(torch.version.cuda or '')", silent=True
    )
    if not str(cuda).strip():
        session.error(
            f"pip installed a CPU-only {TORCH} (a local wheel won); install the CUDA build, "
            "e.g. `pip install --index-url https://download.pytorch.org/whl/cu128 "
            f"{TORCH}` inside .nox/torch_cuda, then rerun with --reuse-venv=yes --no-install"
        )
    _run_tests(session, "torch_cuda")


@nox.session(default=False)
def jax_gpu(session: nox.Session) -> None:
    """Test suite on JAX arrays on a CUDA GPU (jax[cuda12]; needs a CUDA GPU)."""
    _require_gpu(session)
    session.install(".", *TEST_DEPS, "jax[cuda12]")
    _run_tests(session, "jax_gpu")


# --------------------------------------------------------------------------- quality
@nox.session
def lint(session: nox.Session) -> None:
    """ruff check (xbce, tests, noxfile) and mypy --strict on xbce (config: pyproject.toml)."""
    # pinned: a new ruff or mypy release may add rules and fail CI on unchanged code
    session.install(
        "ruff==0.17.6", "mypy==2.4.1", "numpy", TORCH, "jax", "dask[array]", "array-api-compat"
    )
    failed = []
    try:
        session.run("ruff", "check", "xbce", "tests", "noxfile.py", *session.posargs)
    except nox.command.CommandFailed:
        failed.append("ruff")  # go on: report mypy's findings too
    # strict = true comes from [tool.mypy]; a command-line --strict would also
    # override its warn_unused_ignores = false (ignores needed by other torch versions)
    try:
        session.run("mypy", "xbce")
    except nox.command.CommandFailed:
        failed.append("mypy")
    if failed:
        session.error(f"{' and '.join(failed)} reported errors (above)")


@nox.session
def vendoring(session: nox.Session) -> None:
    """Vendored xbce (the _array_api_compat_vendor hook); `import xbce` imports no array lib."""
    tests = ["tests/test_vendoring.py", "tests/test_import_isolation.py"]
    missing = [t for t in tests if not (ROOT / t).exists()]
    if missing:
        session.error(f"missing test files: {', '.join(missing)}")
    # tests/conftest.py imports torch (the reference) and hypothesis: installed here too
    session.install(".", "array-api-compat", *TEST_DEPS)
    session.run("pytest", *tests, *session.posargs, env={"XBCE_BACKENDS": "numpy"})


@nox.session
def docs(session: nox.Session) -> None:
    """Build the Sphinx docs with warnings as errors, then run their doctests."""
    session.install("-r", "docs/requirements.txt", ".", "numpy", TORCH, "jax", "keras")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
    # every page built, every local link, anchor and image resolves, nothing loaded remotely
    session.run("python", "docs/_check_html.py", "docs/_build/html")
    session.run("sphinx-build", "-W", "-b", "doctest", "docs", "docs/_build/doctest")


WHEEL_CHECK = """
import sys, zipfile
wheels = sys.argv[1:]
assert len(wheels) == 1, f"expected one wheel, found {wheels}"
names = zipfile.ZipFile(wheels[0]).namelist()
problems = []
if "xbce/py.typed" not in names:
    problems.append("xbce/py.typed is missing (PEP 561 marker)")
if "xbce/__init__.py" not in names:
    problems.append("xbce/__init__.py is missing")
stray = [n for n in names if n.startswith(("tests/", "docs/")) or "/tests/" in n]
if stray:
    problems.append(f"test or docs files in the wheel: {stray[:5]}")
if problems:
    sys.exit(f"{wheels[0]}: " + "; ".join(problems))
print(f"{wheels[0]}: {len(names)} files, py.typed present, no tests/ or docs/")
"""


@nox.session
def build(session: nox.Session) -> None:
    """Build the sdist and wheel; check the wheel has py.typed and no tests, and imports."""
    session.install("build")
    out = Path(session.create_tmp()) / "dist"
    shutil.rmtree(out, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(out))
    wheels = [str(p) for p in out.glob("xbce-*.whl")]
    session.run("python", "-c", WHEEL_CHECK, *wheels)
    session.install("--force-reinstall", *wheels)
    # the installed wheel (array-api-compat its only dependency) imports on its own;
    # run outside the checkout so that its xbce/ folder is not what gets imported
    with session.chdir(out):
        session.run(
            "python", "-c", "import xbce; print('installed xbce', xbce.__version__, xbce.__file__)"
        )


# ------------------------------------------------------------ reports (not default)
@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks against torch, optax, scikit-learn (tests/benchmarks/run.py; slow)."""
    session.install(".", "numpy", TORCH, "jax", "optax", "scikit-learn", "matplotlib", "psutil")
    session.run("python", "tests/benchmarks/run.py", *session.posargs)


@nox.session(default=False)
def parity(session: nox.Session) -> None:
    """The main job: xbce against torch, every CPU backend x dtype; report in build/parity/."""
    # tests/parity imports the test helpers (tests/comparisons.py and backends.py need
    # torch; the suite's conftest.py needs pytest and hypothesis).
    # Writes build/parity/cpu.{json,md,png} (ignored by git) and prints a summary;
    # `-- --verbose` prints every cell; `-- --update-docs` refreshes the committed
    # docs/parity/cpu.* instead (a maintainer's action, on a quiet machine).
    session.install(
        ".", *TEST_DEPS, "jax", "dask[array]", "array-api-strict", "matplotlib", "mpmath"
    )
    session.run("python", "tests/parity/sweep.py", *session.posargs)


@nox.session(default=False)
def gpu(session: nox.Session) -> None:
    """One-shot GPU report (CUDA GPU; says so and exits 0 without): parity + benchmark."""
    # On a machine with a CUDA GPU: the parity sweep on torch CUDA, CuPy and JAX GPU
    # (bfloat16 included; the reference stays torch on the CPU), the CUDA error-path
    # tests, and the GPU benchmark against torch's kernels; writes docs/parity/gpu.*
    # and docs/benchmarks/gpu.*. Budget: under 5 minutes on one H100/H200.
    gpu_name = _cuda_gpu()
    if gpu_name is None:
        session.log("no CUDA GPU on this machine (nvidia-smi finds none): nothing to do")
        return
    session.log(f"CUDA GPU found: {gpu_name}")
    session.install(
        ".", *TEST_DEPS, "cupy-cuda12x", "jax[cuda12]", "matplotlib", "mpmath", "psutil"
    )
    cuda = session.run(
        "python", "-c", "import torch; print(torch.version.cuda or '')", silent=True
    )
    if not str(cuda).strip():
        session.error(
            f"pip installed a CPU-only {TORCH}; install its CUDA build in .nox/gpu "
            "(e.g. `pip install --index-url https://download.pytorch.org/whl/cu128 "
            f"{TORCH}`), then rerun with --reuse-venv=yes --no-install"
        )
    session.run(
        "python", "tests/parity/sweep.py", "--device", "gpu", "--out", "docs/parity",
        "--rows", "50", *session.posargs,
    )
    session.run(
        "pytest", "-q", "tests/test_errors.py", env={"XBCE_BACKENDS": "torch_cuda,cupy,jax_gpu"}
    )
    session.run("python", "tests/benchmarks/gpu.py")
