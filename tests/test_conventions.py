"""xbce.conventions against the real libraries: Keras 3, scikit-learn, optax, TensorFlow.

Each reference is computed in the test by the library itself, on the CPU, from the same
dtype-rounded inputs the backend under test receives; values and (where the library is
differentiable) autodiff gradients must agree within ``ULPS`` ulps of the compared dtype.

Keras runs on its JAX backend (``KERAS_BACKEND=jax``, set below): its JAX, TensorFlow and
NumPy backends share the formula xbce.conventions reproduces. Gradients are compared on
the backends with autodiff (torch, JAX) against ``jax.grad`` of Keras / optax and
``tf.GradientTape`` of TensorFlow.

The libraries are installed by ``nox -s conventions``, which sets
``XBCE_CONVENTIONS_REQUIRED=1``: there a missing library is an error. Elsewhere (the
per-backend sessions, which do not install them) the tests that need one skip.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import pytest
import torch
from backends import BACKENDS, JAX_X64, Backend, load, rounded
from comparisons import allow_flushed, assert_ulp_close

from xbce import conventions

#: Ulps of the compared dtype (of the scale: |expected|, or the magnitude of the terms
#: that cancel or are summed). The formulas are the libraries' own op for op; what is
#: left is each backend's log/log1p/exp (<= 3-4 ulps apart, XLA's float64 log1p is
#: <= 2 ulps on (0, 1], the only range used here) and the summation order of means.
ULPS = 8
# Dask computes after the call returns, outside the functions' NumPy errstate: its
# log(0) / 0 * inf warnings are the NumPy ones the functions silence when eager
DASK_WARNINGS = [
    pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]
REQUIRED = os.environ.get("XBCE_CONVENTIONS_REQUIRED", "") == "1"
DTYPES = ["float16", "float32", "float64"]


def _library(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        if REQUIRED:
            raise
        pytest.skip(f"{name} is not installed (nox -s conventions installs it)")


@pytest.fixture(scope="module")
def jax_x64() -> Any:
    if not JAX_X64:  # XBCE_JAX_X64=0: the run stays float32 (tests/backends.py)
        pytest.skip("compares float64 on JAX; jax_enable_x64 is off here (XBCE_JAX_X64=0)")
    jax = _library("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


@pytest.fixture(scope="module")
def keras(jax_x64: Any) -> Any:
    keras = _library("keras")
    assert keras.backend.backend() == "jax", "KERAS_BACKEND must be jax for these tests"
    return keras


@pytest.fixture(
    params=[pytest.param(n, marks=DASK_WARNINGS if n == "dask" else []) for n in BACKENDS],
    scope="module",
)
def backend(request: pytest.FixtureRequest) -> Backend:
    return load(request.param)


@pytest.fixture(
    params=[n for n in BACKENDS if load(n).autodiff is not None], scope="module"
)
def autodiff_backend(request: pytest.FixtureRequest) -> Backend:
    """The selected backends with autodiff (torch, JAX): gradients are compared there."""
    return load(request.param)


@pytest.fixture(params=DTYPES)
def dtype(request: pytest.FixtureRequest, backend: Backend) -> str:
    if request.param not in backend.dtypes:
        pytest.skip(f"{backend.name} has no {request.param}")
    return str(request.param)


# ------------------------------------------------------------------------- inputs
P_EDGES = [0.0, 1.0, 1e-9, 1e-7, 1 - 1e-7, 1e-3, 0.5, 0.999, 0.3]
X_EDGES = [-1e4, 1e4, -100.0, 100.0, -30.0, 30.0, -17.0, 17.0, -1.0, 1.0, 0.0, 0.3]


def _probabilities(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.concatenate([np.repeat(P_EDGES, 3), rng.uniform(0.0, 1.0, n)])


def _logits(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.concatenate([np.repeat(X_EDGES, 3), rng.normal(0.0, 5.0, n)])


def _targets(rng: np.random.Generator, size: int, edges: int, *, soft: bool) -> np.ndarray:
    """0, 1 and (soft) 0.3 against each edge value, then random targets."""
    edge = np.tile([0.0, 1.0, 0.3 if soft else 1.0], edges)
    rest = rng.uniform(0, 1, size - edge.size) if soft else rng.integers(0, 2, size - edge.size)
    return np.concatenate([edge, rest]).astype(np.float64)


def _host(a: Any) -> torch.Tensor:
    """A JAX / TensorFlow / NumPy result as a CPU tensor (exact, same dtype)."""
    return torch.as_tensor(np.array(a))


def _compare(backend: Backend, got: Any, expected: torch.Tensor, *, scale: Any = None,
             what: str, precision: torch.dtype | None = None) -> None:
    """Namespace, shape, dtype, then values within ``ULPS`` ulps of ``precision`` (default:
    the dtype; Keras' float64 means are float32 values, compared in float32 ulps)."""
    assert backend.is_native(got), f"{what}: result left {backend.name} ({type(got)})"
    actual = backend.to_torch(got)
    if precision is not None:
        assert actual.dtype == expected.dtype, f"{what}: {actual.dtype} != {expected.dtype}"
        actual, expected = actual.to(precision), expected.to(precision)
        scale = None if scale is None else scale.to(precision)
    if backend.flushes_subnormals:
        expected = allow_flushed(actual, expected)
    assert_ulp_close(actual, _jax_flushed(actual, expected), ULPS, scale=scale, what=what)


def _jax_flushed(actual: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """Keras (on JAX) and optax compute with XLA, which flushes subnormal results to 0
    on the CPU: where the reference is 0 and the backend kept a subnormal, take it."""
    if expected.dtype == torch.float16:  # half results are rounded from float32: kept
        return expected
    tiny = torch.finfo(expected.dtype).smallest_normal
    return torch.where((expected == 0) & (actual.abs() < tiny), actual, expected)


# -------------------------------------------------------------------------- Keras
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
def test_keras_values(backend: Backend, dtype: str, keras: Any, label_smoothing: float,
                      from_logits: bool, soft: bool, rng: np.random.Generator) -> None:
    n_edges = len(X_EDGES if from_logits else P_EDGES) * 3
    x = _logits(rng, 564) if from_logits else _probabilities(rng, 573)
    x = x.reshape(-1, 6)  # per-sample means over the last axis
    y = _targets(rng, x.size, n_edges, soft=soft).reshape(x.shape)
    xt, yt = rounded(x, dtype), rounded(y, dtype)
    expected = keras.losses.binary_crossentropy(
        yt.numpy(), xt.numpy(), from_logits=from_logits, label_smoothing=label_smoothing
    )
    terms = keras.ops.binary_crossentropy(yt.numpy(), xt.numpy(), from_logits=from_logits)
    scale = torch.as_tensor(np.abs(np.array(terms, dtype=np.float64)).mean(axis=-1))
    got = conventions.keras_binary_crossentropy(
        backend.asarray(yt, dtype), backend.asarray(xt, dtype),
        from_logits=from_logits, label_smoothing=label_smoothing,
    )
    _compare(backend, got, _host(expected), scale=scale, what="keras",
             precision=torch.float32 if dtype == "float64" else None)


def test_keras_axis_and_edges(backend: Backend, keras: Any) -> None:
    """``axis=0``, 3-d inputs, and the capped values 16.118 / inf (float16, p=1, y=0)."""
    x = np.asarray([[[0.0, 1.0], [1e-9, 1 - 1e-7]], [[0.5, 0.2], [1.0, 0.0]]])
    y = np.asarray([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    for dtype in ("float32", "float64", "float16"):
        if dtype not in backend.dtypes:
            continue
        xt, yt = rounded(x, dtype), rounded(y, dtype)
        for axis in (0, 1, -1):
            expected = keras.losses.binary_crossentropy(yt.numpy(), xt.numpy(), axis=axis)
            got = conventions.keras_binary_crossentropy(
                backend.asarray(yt, dtype), backend.asarray(xt, dtype), axis=axis
            )
            _compare(backend, got, _host(expected), what=f"keras {dtype} axis={axis}",
                     precision=torch.float32 if dtype == "float64" else None)


def test_keras_shape_and_dtype_errors(backend: Backend) -> None:
    p = backend.asarray(np.asarray([0.2, 0.7]), "float32")
    with pytest.raises(ValueError, match="must have the same shape"):
        conventions.keras_binary_crossentropy(backend.asarray(np.asarray([1.0]), "float32"), p)
    if backend.name != "dask":
        ints = backend.xp.asarray([0, 1])
        with pytest.raises(TypeError, match="real floating"):
            conventions.keras_binary_crossentropy(ints, ints)


# ------------------------------------------------------------------- scikit-learn
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("weighted", [False, True], ids=["", "sample_weight"])
def test_sklearn_values(backend: Backend, dtype: str, normalize: bool, weighted: bool,
                        rng: np.random.Generator) -> None:
    metrics = _library("sklearn.metrics")
    x = _probabilities(rng, 400)
    y = _targets(rng, x.size, len(P_EDGES) * 3, soft=False)
    xt, yt = rounded(x, dtype), rounded(y, dtype)
    wt = rounded(rng.uniform(0.0, 3.0, x.size), dtype) if weighted else None
    expected = metrics.log_loss(
        yt.numpy(), xt.numpy(), normalize=normalize,
        sample_weight=None if wt is None else wt.numpy(),
    )
    # the reference is a Python float computed in the dtype: round it back to the dtype;
    # the scale of its rounding error is the sum of |w * terms| (divided by sum w)
    eps = float(np.finfo(xt.numpy().dtype).eps)
    p64, y64 = xt.double().numpy(), yt.double().numpy()
    terms = torch.as_tensor(-(y64 * np.log(np.clip(p64, eps, 1 - eps))
                              + (1 - y64) * np.log(np.clip(1 - p64, eps, 1 - eps))))
    w = torch.ones_like(terms) if wt is None else wt.double()
    scale = (terms * w).sum() / (w.sum() if normalize else 1.0)
    got = conventions.sklearn_log_loss(
        backend.asarray(yt, dtype), backend.asarray(xt, dtype), normalize=normalize,
        sample_weight=None if wt is None else backend.asarray(wt, dtype),
    )
    _compare(backend, got, rounded(expected, dtype).reshape(()), scale=scale.reshape(()),
             what="sklearn")


def test_sklearn_edges_per_sample(backend: Backend, dtype: str) -> None:
    """p = 0, 1, 1e-9, 1 - 1e-7 one at a time (the clip at the dtype's eps)."""
    metrics = _library("sklearn.metrics")
    for p in (0.0, 1.0, 1e-9, 1e-7, 1 - 1e-7, 0.5):
        for label in (0.0, 1.0):
            xt = rounded([p, 0.5], dtype)
            yt = rounded([label, 1.0 - label], dtype)
            expected = metrics.log_loss(yt.numpy(), xt.numpy(), normalize=False)
            got = conventions.sklearn_log_loss(
                backend.asarray(yt, dtype), backend.asarray(xt, dtype), normalize=False
            )
            _compare(backend, got, rounded(expected, dtype).reshape(()),
                     what=f"sklearn p={p} y={label} {dtype}")


def test_sklearn_checks() -> None:
    np_p = np.asarray([0.2, 1.5])
    y = np.asarray([0, 1])
    with pytest.raises(ValueError, match="greater than 1"):
        conventions.sklearn_log_loss(y, np_p)
    with pytest.raises(ValueError, match="lower than 0"):
        conventions.sklearn_log_loss(y, np.asarray([-0.1, 0.5]))
    with pytest.raises(ValueError, match="binary labels"):
        conventions.sklearn_log_loss(np.asarray([0.0, 0.5]), np.asarray([0.2, 0.5]))
    with pytest.raises(ValueError, match="1-d"):
        conventions.sklearn_log_loss(np.asarray([[0.0, 1.0]]), np.asarray([[0.2, 0.5]]))
    with pytest.raises(ValueError, match="sample_weight"):
        conventions.sklearn_log_loss(y, np.asarray([0.2, 0.5]), sample_weight=np.ones(3))


# -------------------------------------------------------------------------- optax
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
def test_optax_values(backend: Backend, dtype: str, jax_x64: Any, soft: bool,
                      rng: np.random.Generator) -> None:
    optax = _library("optax")
    x = _logits(rng, 500)
    y = _targets(rng, x.size, len(X_EDGES) * 3, soft=soft)
    xt, yt = rounded(x, dtype), rounded(y, dtype)
    expected = optax.sigmoid_binary_cross_entropy(xt.numpy(), yt.numpy())
    got = conventions.optax_sigmoid_binary_cross_entropy(
        backend.asarray(xt, dtype), backend.asarray(yt, dtype)
    )
    _compare(backend, got, _host(expected), what="optax")


def test_optax_broadcasts(backend: Backend, jax_x64: Any) -> None:
    """optax broadcasts (3, 1) logits against (3,) labels to (3, 3); so does xbce's."""
    optax = _library("optax")
    x = rounded([[0.5], [-2.0], [3.0]], "float64")
    y = rounded([1.0, 0.0, 1.0], "float64")
    expected = optax.sigmoid_binary_cross_entropy(x.numpy(), y.numpy())
    got = conventions.optax_sigmoid_binary_cross_entropy(
        backend.asarray(x, "float64"), backend.asarray(y, "float64")
    )
    assert tuple(got.shape) == (3, 3)
    _compare(backend, got, _host(expected), what="optax broadcast")


# ---------------------------------------------------------------------- TensorFlow
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
def test_tensorflow_values(backend: Backend, dtype: str, soft: bool,
                           rng: np.random.Generator) -> None:
    tf = _library("tensorflow")
    x = _logits(rng, 500)
    y = _targets(rng, x.size, len(X_EDGES) * 3, soft=soft)
    xt, yt = rounded(x, dtype), rounded(y, dtype)
    expected = tf.nn.sigmoid_cross_entropy_with_logits(labels=yt.numpy(), logits=xt.numpy())
    # relu(x) - x z and log1p(exp(-|x|)) cancel: scale by their magnitudes
    xd, yd = xt.double(), yt.double()
    scale = xd.clamp(min=0) + (xd * yd).abs() + torch.log1p(torch.exp(-xd.abs()))
    got = conventions.tensorflow_sigmoid_cross_entropy_with_logits(
        labels=backend.asarray(yt, dtype), logits=backend.asarray(xt, dtype)
    )
    _compare(backend, got, _host(expected.numpy()), scale=scale.to(xt.dtype), what="tf")


# ---------------------------------------------------------------------- gradients
def _autodiff(backend: Backend, fn: Any, x: torch.Tensor, y: torch.Tensor,
              dtype: str) -> tuple[torch.Tensor, torch.Tensor]:
    """d sum(fn(x, y)) / dx and / dy by the backend's own autodiff."""
    if backend.autodiff == "torch":
        xs = backend.asarray(x, dtype).requires_grad_(True)
        ys = backend.asarray(y, dtype).requires_grad_(True)
        fn(xs, ys).sum().backward()
        return xs.grad.detach().cpu(), ys.grad.detach().cpu()
    if backend.autodiff == "jax":
        import jax

        gx, gy = jax.grad(lambda a, b: fn(a, b).sum(), argnums=(0, 1))(
            backend.asarray(x, dtype), backend.asarray(y, dtype)
        )
        return backend.to_torch(gx), backend.to_torch(gy)
    raise AssertionError(f"{backend.name} has no autodiff")


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_keras_gradients(autodiff_backend: Backend, keras: Any, jax_x64: Any,
                         from_logits: bool, label_smoothing: float,
                         rng: np.random.Generator) -> None:
    backend = autodiff_backend
    import jax
    import jax.numpy as jnp

    for dtype in ("float32", "float64"):
        x = _logits(rng, 92) if from_logits else _probabilities(rng, 93)
        x = x.reshape(-1, 4)
        y = _targets(rng, x.size, len(X_EDGES if from_logits else P_EDGES) * 3,
                     soft=True).reshape(x.shape)
        xt, yt = rounded(x, dtype), rounded(y, dtype)

        def reference(a: Any, b: Any) -> Any:
            return keras.losses.binary_crossentropy(
                b, a, from_logits=from_logits, label_smoothing=label_smoothing).sum()

        ex, ey = jax.grad(reference, argnums=(0, 1))(jnp.asarray(xt.numpy()),
                                                     jnp.asarray(yt.numpy()))
        ex, ey = _host(ex), _host(ey)
        if backend.autodiff == "torch" and not from_logits:
            # at a clip bound, jnp.clip passes half the gradient, torch.clamp all of it
            # (as Keras' own torch and TensorFlow backends): the documented difference
            bounds = rounded([1e-7, 1 - 1e-7], dtype)
            ex = torch.where((xt == bounds[0]) | (xt == bounds[1]), 2 * ex, ex)

        def ours(a: Any, b: Any) -> Any:
            return conventions.keras_binary_crossentropy(
                b, a, from_logits=from_logits, label_smoothing=label_smoothing)

        gx, gy = _autodiff(backend, ours, xt, yt, dtype)
        # logits: sigmoid(x) - y cancels, and autodiff of logaddexp(a, 0) takes
        # exp(a - logaddexp(a, 0)), whose argument carries ~1 ulp of |a|
        scale = (ex.abs() + 1 + xt.abs()) if from_logits else None
        assert_ulp_close(gx, ex, ULPS, scale=scale, what=f"keras d/dpred {dtype}")
        # d/dy = -log(p) + log(1 - p) (scaled by 1 - s): the two logs cancel
        assert_ulp_close(gy, ey, ULPS, scale=ey.abs() + 20, what=f"keras d/dtrue {dtype}")


def test_optax_gradients(autodiff_backend: Backend, jax_x64: Any,
                         rng: np.random.Generator) -> None:
    backend = autodiff_backend
    import jax
    import jax.numpy as jnp

    optax = _library("optax")
    for dtype in ("float32", "float64"):
        x, y = _logits(rng, 200), _targets(rng, 236, len(X_EDGES) * 3, soft=True)
        xt, yt = rounded(x, dtype), rounded(y, dtype)
        ex, ey = jax.grad(lambda a, b: optax.sigmoid_binary_cross_entropy(a, b).sum(),
                          argnums=(0, 1))(jnp.asarray(xt.numpy()), jnp.asarray(yt.numpy()))
        gx, gy = _autodiff(backend, conventions.optax_sigmoid_binary_cross_entropy, xt, yt,
                           dtype)
        # sigmoid(x) - y cancels; autodiff of logaddexp(a, 0) is exp(a - logaddexp(a, 0)),
        # whose argument carries ~1 ulp of |a| (torch's and XLA's alike)
        assert_ulp_close(gx, _host(ex), ULPS, scale=_host(ex).abs() + 1 + xt.abs(),
                         what=f"optax d/dx {dtype}")
        assert_ulp_close(gy, _host(ey), ULPS, scale=xt.abs(), what=f"optax d/dy {dtype}")


def test_tensorflow_gradients(autodiff_backend: Backend, rng: np.random.Generator) -> None:
    backend = autodiff_backend
    tf = _library("tensorflow")
    for dtype in ("float32", "float64"):
        x, y = _logits(rng, 200), _targets(rng, 236, len(X_EDGES) * 3, soft=True)
        xt, yt = rounded(x, dtype), rounded(y, dtype)
        a, b = tf.Variable(xt.numpy()), tf.Variable(yt.numpy())
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=b, logits=a))
        ex, ey = (_host(g.numpy()) for g in tape.gradient(loss, [a, b]))

        def ours(u: Any, v: Any) -> Any:
            return conventions.tensorflow_sigmoid_cross_entropy_with_logits(labels=v, logits=u)

        gx, gy = _autodiff(backend, ours, xt, yt, dtype)
        assert_ulp_close(gx, ex, ULPS, scale=ex.abs() + 1, what=f"tf d/dx {dtype}")
        assert_ulp_close(gy, ey, ULPS, scale=xt.abs(), what=f"tf d/dy {dtype}")


# ------------------------------------------------- explain on the libraries' own values
def test_explain_names_the_real_libraries(keras: Any, jax_x64: Any) -> None:
    """Values computed by Keras, scikit-learn, optax and TensorFlow themselves."""
    import xbce

    metrics = _library("sklearn.metrics")
    optax = _library("optax")
    p = np.asarray([[0.0, 0.3], [0.999, 1e-9], [0.6, 1.0]], np.float32)
    y = np.asarray([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], np.float32)
    keras_value = float(keras.losses.BinaryCrossentropy()(y, p))  # sum_over_batch_size
    e = xbce.explain(p, y, keras_value)
    assert e.matches[0] == "keras", e.matches
    assert "torch" not in e.matches
    smoothed = float(keras.losses.BinaryCrossentropy(label_smoothing=0.1)(y, p))
    assert xbce.explain(p, y, smoothed).matches[0] == "keras, label smoothing 0.1"
    flat_p, flat_y = p.reshape(-1).astype(np.float64), y.reshape(-1).astype(np.float64)
    e = xbce.explain(flat_p, flat_y, metrics.log_loss(flat_y, flat_p))
    assert e.matches[0] == "sklearn", e.matches
    x = np.asarray([-30.0, -2.0, 0.5, 17.0], np.float32)
    t = np.asarray([1.0, 0.0, 1.0, 0.0], np.float32)
    optax_value = float(np.mean(optax.sigmoid_binary_cross_entropy(x, t)))
    assert "optax" in xbce.explain(x, t, optax_value, from_logits=True).matches
    keras_logits = float(keras.losses.BinaryCrossentropy(from_logits=True)(t, x))
    assert "keras" in xbce.explain(x, t, keras_logits, from_logits=True).matches
    tf = _library("tensorflow")
    tf_value = float(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=x)))
    assert "tensorflow" in xbce.explain(x, t, tf_value, from_logits=True).matches
