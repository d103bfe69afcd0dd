"""``xbce.explain``: which convention produced this binary cross-entropy value?

Every variant is evaluated with NumPy on the host (inputs of other libraries are
copied there first): ``explain`` is a diagnostic, not a loss, so it needs NumPy
but never runs on a device or under a transform. NumPy is imported when
``explain`` is called, not when xbce is imported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from . import conventions
from ._functional import binary_cross_entropy, binary_cross_entropy_with_logits

__all__ = ["CLAMPS", "MATCH_ULPS", "Candidate", "Explanation", "explain"]

Array = Any

#: A candidate matches when it is within this many ulps of its evaluation dtype (or
#: within half a unit of the last digit of the value, whichever is larger).
MATCH_ULPS = 8

#: The clip bounds of the hand-written variants (``"eps"``: the dtype's epsilon).
CLAMPS: tuple[float | str, ...] = (1e-15, 1e-12, 1e-8, 1e-7, "eps")
#: The epsilons of the ``log(p+eps)`` hand-written variants.
ADDED_EPSILONS = (1e-15, 1e-12, 1e-8, 1e-7)
#: The label smoothing of the ``keras, label smoothing 0.1`` variant.
LABEL_SMOOTHING = 0.1
#: ``torch, terms rounded to K decimals`` for these K.
ROUNDED_DECIMALS = (1, 2, 3, 4)


@dataclass(frozen=True)
class Candidate:
    """One variant ``explain`` tried.

    Attributes
    ----------
    name : str
        The stable name (see :func:`explain`), without the evaluation dtype.
    value : float
        What it gives on the inputs.
    dtype : str
        The dtype it was evaluated in: ``"float32"`` or ``"float64"`` (or ``"float16"``
        for float16 inputs).
    formula : str
        The formula part of the name (``"torch"``, ``"keras"``, ``"log(1-p), clamp 1e-7"``).
    reduction : str
        ``"mean"``, ``"sum"``, ``"sum of row means"``, ``"mean of row sums"``,
        ``"weighted mean"``, or (with ``batch_size``) ``"mean of batch means"`` or
        ``"sum of batch means"``.
    """

    name: str
    value: float
    dtype: str
    formula: str
    reduction: str


@dataclass(frozen=True)
class Explanation:
    """What :func:`explain` found; ``str()`` of it is a few plain sentences.

    Attributes
    ----------
    value : float
        The value to explain.
    torch : float
        PyTorch's value on the inputs: ``binary_cross_entropy`` (or ``..._with_logits``),
        ``reduction="mean"``, with ``weight``, in the inputs' dtype (float64 for lists).
    matches : list of str
        The names of the candidates that reproduce ``value``, simplest first. A name gets
        ``", float32"`` or ``", float64"`` appended when it matches only in that dtype,
        not in the inputs' own.
    candidates : list of Candidate
        Every variant tried, each in each evaluation dtype.
    closest : Candidate
        The candidate nearest to ``value`` (relative distance).
    input_dtype : str
        The dtype the inputs were read in (float64 for lists and integers).
    from_logits : bool
        Whether the inputs were logits.
    batch_size : int or None
        The batch size passed to :func:`explain` (``None``: no epoch-loss candidates).
    samples : int
        The number of samples: the length of the inputs' first axis (batches split it).
    """

    value: float
    torch: float
    matches: list[str]
    candidates: list[Candidate] = field(repr=False)
    closest: Candidate = field(repr=False)
    input_dtype: str = "float64"
    from_logits: bool = False
    batch_size: int | None = None
    samples: int = 0
    digits: int | None = field(default=None, repr=False)
    _matched: tuple[Candidate, ...] = field(default=(), repr=False)
    _exact: frozenset[str] = field(default=frozenset(), repr=False)

    def __str__(self) -> str:
        return _describe(self)


# ----------------------------------------------------------------- NumPy conversion
def _to_numpy(a: Any, what: str) -> Any:
    """``a`` (a list, a number, or any library's array) as a NumPy array on the host."""
    import numpy as np

    if isinstance(a, np.ndarray):
        out = a
    elif hasattr(a, "detach") and hasattr(a, "cpu"):  # torch
        out = a.detach().cpu().numpy()
    elif hasattr(a, "compute") and hasattr(a, "dtype"):  # dask
        out = np.asarray(a.compute())
    elif hasattr(a, "get") and type(a).__module__.startswith("cupy"):
        out = a.get()
    else:
        try:
            out = np.asarray(a)
        except Exception:  # array-api-strict and others without __array__
            try:
                out = np.from_dlpack(a)
            except Exception as err:
                raise TypeError(f"{what}: cannot read {type(a).__name__} as numbers") from err
    if out.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold real numbers, not {out.dtype} ({type(a).__name__})")
    return out


def _value_and_digits(value: Any) -> tuple[float, int | None, str | None]:
    """The value as a float, its decimal exponent (of its last digit) and its dtype."""
    text: str | None = None
    dtype: str | None = None
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = repr(float(value))
    else:
        arr = _to_numpy(value, "value")
        if arr.size != 1:
            raise ValueError(
                f"value must be one number (a reduced loss), got an array of shape {arr.shape}"
            )
        scalar = arr.reshape(())[()]
        if arr.dtype.kind == "f":
            dtype = str(arr.dtype)
            text = str(scalar)  # NumPy's shortest repr in the value's own dtype
        else:
            text = str(scalar)
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"value must be a number, not {text!r}") from None
    if not math.isfinite(number):
        return number, None, dtype
    try:
        exponent = Decimal(text).as_tuple().exponent
    except InvalidOperation:
        exponent = None
    return number, exponent if isinstance(exponent, int) else None, dtype


# ------------------------------------------------------------------------- formulas
Formula = Callable[[Array, Array], Array]


def _short(x: float) -> str:
    """``1e-7``, not Python's ``1e-07``: the spelling of the names."""
    return f"{x:g}".replace("e-0", "e-")


def _probability_formulas(hard_targets: bool) -> list[tuple[str, Formula]]:
    """Elementwise losses of probabilities ``p`` and targets ``y`` (same dtype)."""

    def torch(p: Array, y: Array) -> Array:
        return binary_cross_entropy(p, y, reduction="none")

    def keras(p: Array, y: Array, smoothing: float = 0.0) -> Array:
        # Keras' per-element losses (the mean over a trailing axis of length 1)
        return conventions.keras_binary_crossentropy(
            y[..., None], p[..., None], label_smoothing=smoothing
        )

    formulas: list[tuple[str, Formula]] = [
        ("torch", torch),
        ("keras", keras),
        (f"keras, label smoothing {LABEL_SMOOTHING:g}",
         lambda p, y: keras(p, y, LABEL_SMOOTHING)),
    ]
    if hard_targets:
        formulas.append(("sklearn", _sklearn_elementwise))
    for log1p in (False, True):
        form = "log1p(-p)" if log1p else "log(1-p)"
        formulas.append((form, _handwritten(log1p, None)))
        for clamp in CLAMPS:
            spelled = _short(clamp) if isinstance(clamp, float) else clamp
            formulas.append((f"{form}, clamp {spelled}", _handwritten(log1p, clamp)))
    for eps in ADDED_EPSILONS:
        formulas.append((f"log(p+{_short(eps)})", _added_epsilon(eps)))
    return formulas


def _sklearn_elementwise(p: Array, y: Array) -> Array:
    from ._compat import array_namespace

    return conventions._sklearn_terms(y, p, array_namespace(p))


def _handwritten(log1p: bool, clamp: float | str | None) -> Formula:
    def formula(p: Array, y: Array) -> Array:
        return conventions.handwritten_binary_cross_entropy(p, y, log1p=log1p, clip=clamp)

    return formula


def _added_epsilon(eps: float) -> Formula:
    def formula(p: Array, y: Array) -> Array:
        import numpy as np

        with np.errstate(divide="ignore", invalid="ignore"):
            return -(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))

    return formula


def _logit_formulas(hard_targets: bool) -> list[tuple[str, Formula]]:
    """Elementwise losses of logits ``x`` and targets ``y`` (same dtype)."""

    def torch(x: Array, y: Array) -> Array:
        return binary_cross_entropy_with_logits(x, y, reduction="none")

    def keras(x: Array, y: Array, smoothing: float = 0.0) -> Array:
        return conventions.keras_binary_crossentropy(
            y[..., None], x[..., None], from_logits=True, label_smoothing=smoothing
        )

    formulas: list[tuple[str, Formula]] = [
        ("torch", torch),
        ("optax", conventions.optax_sigmoid_binary_cross_entropy),
        ("tensorflow", lambda x, y: conventions.tensorflow_sigmoid_cross_entropy_with_logits(
            labels=y, logits=x)),
        ("keras", keras),
        (f"keras, label smoothing {LABEL_SMOOTHING:g}",
         lambda x, y: keras(x, y, LABEL_SMOOTHING)),
    ]
    for name, formula in _probability_formulas(hard_targets):
        formulas.append((f"sigmoid, then {name}", _after_sigmoid(formula)))
    return formulas


def _after_sigmoid(formula: Formula) -> Formula:
    def composed(x: Array, y: Array) -> Array:
        import numpy as np

        with np.errstate(over="ignore"):
            p = 1 / (1 + np.exp(-x))
        return formula(p, y)

    return composed


# ------------------------------------------------------------------------ reductions
def _reductions(terms: Array, weight: Array | None) -> list[tuple[str, float]]:
    import numpy as np

    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        w = terms * weight if weight is not None else terms
        out = [("mean", float(np.mean(w))), ("sum", float(np.sum(w)))]
        if weight is not None:
            out.append(("weighted mean", float(np.sum(w) / np.sum(np.broadcast_to(
                weight, terms.shape).astype(terms.dtype)))))
        if terms.ndim >= 2 and terms.shape[-1] > 1:
            out.append(("sum of row means", float(np.sum(np.mean(w, axis=-1)))))
            out.append(("mean of row sums", float(np.mean(np.sum(w, axis=-1)))))
    return out


def _batch_reductions(terms: Array, weight: Array | None,
                      batch_size: int) -> list[tuple[str, float]]:
    """An epoch's loss of the usual loop: torch's mean on each batch of ``batch_size``
    samples (the first axis; the last batch smaller when the size does not divide), each
    read with ``loss.item()`` and added up in a Python float, then divided by the number
    of batches or not."""
    import numpy as np

    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        w = terms * weight if weight is not None else terms
        means = [float(np.mean(w[i:i + batch_size]))
                 for i in range(0, w.shape[0], batch_size)]
    total = 0.0
    for m in means:  # epoch_loss += loss.item()
        total += m
    return [("mean of batch means", total / len(means)), ("sum of batch means", total)]


def _batches(samples: int, batch_size: int) -> str:
    """``3 batches of 4 (the last of 2)``."""
    full, last = divmod(samples, batch_size)
    count = full + (last > 0)
    if count == 1:
        return f"1 batch of {samples}"
    if last == 0:
        return f"{count} batches of {batch_size}"
    return f"{count} batches of {batch_size} (the last of {last})"


def _name(formula: str, reduction: str) -> str:
    if reduction == "mean":
        return formula
    return f"{formula}, {reduction}" if "," in formula or " " in formula else (
        f"{formula} {reduction}")


# ------------------------------------------------------------------------- matching
def _ulp(x: float, dtype: str) -> float:
    import numpy as np

    return float(np.spacing(np.asarray(abs(x), dtype=dtype)))


def _distance(value: float, candidate: float) -> float:
    """Relative distance (inf when one is finite and the other is not, 0 for equal)."""
    if math.isnan(value) or math.isnan(candidate):
        return 0.0 if math.isnan(value) and math.isnan(candidate) else math.inf
    if math.isinf(value) or math.isinf(candidate):
        return 0.0 if value == candidate else math.inf
    if value == candidate:
        return 0.0
    return abs(value - candidate) / max(abs(value), abs(candidate))


def _matches(value: float, digits: int | None, c: Candidate) -> tuple[bool, bool]:
    """(matches at all, matches within ulps of the candidate's dtype)."""
    if math.isnan(value) or math.isinf(value) or not math.isfinite(c.value):
        same = _distance(value, c.value) == 0.0
        return same, same
    diff = abs(value - c.value)
    exact = diff <= MATCH_ULPS * _ulp(max(abs(value), abs(c.value)), c.dtype)
    half_unit = 0.5 * 10.0**digits if digits is not None else 0.0
    return exact or diff <= half_unit * (1 + 1e-9), exact


# -------------------------------------------------------------------------- explain
def explain(
    input: Any,
    target: Any,
    value: Any,
    *,
    weight: Any = None,
    from_logits: bool = False,
    batch_size: int | None = None,
) -> Explanation:
    """Which convention turns ``input`` and ``target`` into ``value``?

    Evaluates PyTorch's binary cross-entropy and the other frameworks' and hand-written
    variants on the inputs, in float32 and float64, with each reduction, and reports
    which reproduce ``value``: to within ``MATCH_ULPS`` (8) ulps of the evaluation dtype,
    or to within half a unit of the last decimal digit of ``value`` as written (so
    ``0.6053`` matches 0.6052853, and ``str()`` says that the difference is rounding).

    Parameters
    ----------
    input : array_like
        Probabilities (or logits with ``from_logits=True``): a list, a number, a NumPy
        array or any array library's array (copied to NumPy: ``explain`` is a host-side
        diagnostic and needs NumPy).
    target : array_like
        Targets, same shape as ``input``.
    value : float, str or 0-d array
        The loss to explain. A string (or a float32 / float16 scalar) keeps the digits
        as written, which sets how close a match has to be.
    weight : array_like, optional
        Per-element weights (broadcast to ``input``'s shape), as ``torch``'s ``weight``;
        every variant multiplies its elementwise losses by it, and the ``weighted mean``
        reduction divides by their sum (scikit-learn's and Keras' weighted mean).
    from_logits : bool, default False
        Whether ``input`` holds logits.
    batch_size : int, optional
        The batch size of an epoch's loss: ``value`` may then also be the mean or the sum
        of PyTorch's batch means over batches of ``batch_size`` samples taken in order
        along the first axis (the last batch smaller when the size does not divide), as
        the usual loop ``epoch_loss += loss.item()`` computes (divided by the number of
        batches, or not). ``.torch`` stays the dataset's BCE: PyTorch's mean over all
        elements at once.

    Returns
    -------
    Explanation
        ``.torch``, ``.matches``, ``.candidates``, ``.closest``; ``str()`` says which
        convention the value matches, what PyTorch gives and why they differ.

    Raises
    ------
    ValueError
        If the shapes differ, ``weight`` does not broadcast, ``value`` is not one number,
        a probability lies outside [0, 1] (with ``from_logits=False``), or ``batch_size``
        is not a positive integer.
    TypeError
        If an argument does not hold real numbers.

    Notes
    -----
    The names in ``.matches`` are stable. A name is a formula, then the reduction if it is
    not the mean over all elements, then the evaluation dtype if only that one matches:

    - probabilities: ``torch``; ``keras`` (Keras 3: clip to ``[1e-7, 1 - 1e-7]``,
      ``log(1-p)``); ``keras, label smoothing 0.1``; ``sklearn`` (``log_loss``: clip at
      the dtype's epsilon; only for 0/1 targets); hand-written ``log(1-p)`` and
      ``log1p(-p)`` without clipping, or with ``p`` clipped to ``[c, 1 - c]``:
      ``log(1-p), clamp 1e-7``, ``log1p(-p), clamp 1e-12``, ``log(1-p), clamp eps``
      (c = 1e-15, 1e-12, 1e-8, 1e-7 or the dtype's epsilon); ``log(p+1e-7)`` (an epsilon
      added inside both logs; also 1e-15, 1e-12, 1e-8); ``torch, terms rounded to 2
      decimals`` (the element losses rounded before reducing, as in a hand calculation;
      1 to 4 decimals);
    - logits: ``torch``, ``optax``, ``tensorflow``, ``keras``, ``keras, label smoothing
      0.1``, and ``sigmoid, then NAME`` for each probability formula above (``sigmoid,
      then log(1-p), clamp 1e-7`` is Keras' NumPy backend);
    - reductions: nothing for the mean over all elements (Keras' default for equal-length
      rows); ``sum``; ``weighted mean`` (with ``weight``: Σwℓ / Σw); for inputs of 2 or
      more dimensions, ``sum of row means`` (Keras' ``reduction="sum"``) and ``mean of
      row sums``; with ``batch_size``, ``torch mean of batch means`` and ``torch sum of
      batch means`` (an epoch's loss). Single-word formulas take a space (``torch
      sum``), others a comma (``log(1-p), clamp 1e-7, sum``);
    - dtype: ``, float32`` or ``, float64`` (e.g. ``torch sum, float32``) when the
      evaluation in the inputs' own dtype (float64 for lists) does not reproduce the value
      and the one in that dtype does.

    Examples
    --------
    >>> import xbce
    >>> e = xbce.explain([0.5401, 0.4482], [1, 0], 1.2105706)
    >>> e.matches[:3]
    ['torch sum', 'keras sum', 'sklearn sum']
    >>> round(e.torch, 7)
    0.6052853

    An epoch's loss: the mean of the batch means over batches of 2, 2 and 1 (0.434, 0.570
    and 2.303), where the dataset's BCE is 0.862:

    >>> p, y = [0.6, 0.3, 0.2, 0.4, 0.1], [1, 0, 0, 1, 1]
    >>> e = xbce.explain(p, y, "1.1020", batch_size=2)
    >>> e.matches
    ['torch mean of batch means']
    >>> round(e.torch, 4)
    0.8619
    """
    import numpy as np

    p = _to_numpy(input, "input")
    y = _to_numpy(target, "target")
    w = None if weight is None else _to_numpy(weight, "weight")
    number, digits, _ = _value_and_digits(value)
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
        or batch_size <= 0
    ):
        # torch.utils.data.DataLoader's message
        raise ValueError("batch_size should be a positive integer value, but got "
                         f"batch_size={batch_size}")
    if p.size == 0:
        raise ValueError("input is empty: there is no loss to explain")
    if p.shape != y.shape:
        raise ValueError(
            f"target shape {y.shape} differs from input shape {p.shape}: PyTorch (and "
            "explain) need equal shapes"
        )
    if w is not None:
        try:
            np.broadcast_to(w, p.shape)
        except ValueError:
            raise ValueError(
                f"weight of shape {w.shape} does not broadcast to the input shape {p.shape}"
            ) from None
    native = str(p.dtype) if p.dtype.kind == "f" else "float64"
    if not from_logits:
        with np.errstate(invalid="ignore"):
            inside = bool(np.all((p >= 0) & (p <= 1)))
        if not inside:
            raise ValueError(
                "input must hold probabilities in [0, 1]; for logits pass "
                "from_logits=True (--logits on the command line)"
            )
    with np.errstate(invalid="ignore"):
        hard = bool(np.all((y == 0) | (y == 1)))
        if not bool(np.all((y >= 0) & (y <= 1))):
            raise ValueError("target must hold values in [0, 1]")

    dtypes = ["float64", "float32"] if native == "float64" else [native, "float64"]
    if native == "float16":
        dtypes = ["float16", "float32", "float64"]
    formulas = _logit_formulas(hard) if from_logits else _probability_formulas(hard)
    candidates: list[Candidate] = []
    torch_value = math.nan
    for dtype in dtypes:
        pd, yd = p.astype(dtype), y.astype(dtype)
        wd = None if w is None else w.astype(dtype)
        for formula, fn in formulas:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                terms = np.asarray(fn(pd, yd))
            for reduction, v in _reductions(terms, wd):
                candidates.append(Candidate(_name(formula, reduction), v, dtype, formula,
                                            reduction))
            if formula == "torch":
                if dtype == native:
                    weighted = terms * wd if wd is not None else terms
                    torch_value = float(np.mean(weighted))
                if dtype == dtypes[0]:
                    candidates.extend(_rounded_terms(terms, wd, dtype))
                if batch_size is not None:
                    flat = terms.reshape(1) if terms.ndim == 0 else terms
                    bw = None if wd is None else np.broadcast_to(wd, terms.shape).reshape(
                        flat.shape)
                    for reduction, v in _batch_reductions(flat, bw, int(batch_size)):
                        candidates.append(Candidate(_name(formula, reduction), v, dtype,
                                                    formula, reduction))
    return _explanation(number, digits, torch_value, candidates, native, from_logits,
                        None if batch_size is None else int(batch_size),
                        1 if p.ndim == 0 else p.shape[0])


def _rounded_terms(terms: Array, weight: Array | None, dtype: str) -> list[Candidate]:
    """``torch, terms rounded to K decimals``: a hand calculation's rounded intermediates."""
    import numpy as np

    out = []
    for decimals in ROUNDED_DECIMALS:
        formula = f"torch, terms rounded to {decimals} decimal{'s' if decimals > 1 else ''}"
        rounded = np.round(terms.astype(np.float64), decimals)
        if weight is not None:
            rounded = rounded * weight
        for reduction, v in (("mean", float(np.mean(rounded))), ("sum", float(np.sum(rounded)))):
            out.append(Candidate(_name(formula, reduction), v, dtype, formula, reduction))
    return out


def _explanation(value: float, digits: int | None, torch_value: float,
                 candidates: list[Candidate], native: str, from_logits: bool,
                 batch_size: int | None = None, samples: int = 0) -> Explanation:
    matched: list[Candidate] = []
    exact: set[str] = set()
    for c in candidates:
        ok, within_ulps = _matches(value, digits, c)
        if ok:
            matched.append(c)
            if within_ulps:
                exact.add(c.name)
    by_name: dict[str, list[Candidate]] = {}
    for c in matched:
        by_name.setdefault(c.name, []).append(c)
    names: list[str] = []
    for name, found in by_name.items():
        tried = {c.dtype for c in candidates if c.name == name}
        got = {c.dtype for c in found}
        if native in got or len(tried) == 1:
            names.append(name)
        else:  # only an evaluation in another dtype than the inputs' reproduces the value
            names.extend(f"{name}, {d}" for d in sorted(got))
    closest = min(candidates, key=lambda c: (_distance(value, c.value), _rank(c, native)))
    return Explanation(
        value=value,
        torch=torch_value,
        matches=sorted(names, key=lambda n: _rank_name(n, by_name, native)),
        candidates=candidates,
        closest=closest,
        input_dtype=native,
        from_logits=from_logits,
        batch_size=batch_size,
        samples=samples,
        digits=digits,
        _matched=tuple(sorted(matched, key=lambda c: _rank(c, native))),
        _exact=frozenset(exact),
    )


_FORMULA_ORDER = ("torch", "keras", "sklearn", "optax", "tensorflow")
_REDUCTION_ORDER = ("mean", "mean of batch means", "sum of batch means", "sum", "weighted mean",
                    "sum of row means", "mean of row sums")


def _rank(c: Candidate, native: str) -> tuple[int, int, int, int]:
    """Simplest explanation first: in the inputs' dtype; PyTorch, then frameworks, then
    hand-written forms, then rounded intermediates; the mean before other reductions."""
    formula = c.formula
    if formula.startswith("torch, terms rounded"):
        family = 9
    elif formula in _FORMULA_ORDER:
        family = _FORMULA_ORDER.index(formula)
    elif formula.startswith("keras, label"):
        family = 5
    elif formula.startswith("sigmoid, then"):
        family = 8
    else:
        family = 6
    return (0 if c.dtype == native else 1, family, _REDUCTION_ORDER.index(c.reduction),
            len(formula))


def _rank_name(name: str, by_name: dict[str, list[Candidate]], native: str) -> tuple[Any, ...]:
    base = name.removesuffix(", float32").removesuffix(", float64")
    return (*min(_rank(c, native) for c in by_name[base]), name)


# ------------------------------------------------------------------------ sentences
_WHY_FORMULA = {
    "keras": "Keras clips p to [1e-7, 1 - 1e-7] and uses log(1 - p), so a confident "
             "mistake costs at most 16.1 (PyTorch clamps each log at -100: 100)",
    "sklearn": "scikit-learn's log_loss clips p to [eps, 1 - eps] with eps the dtype's "
               "machine epsilon (a cap of 36.0 in float64, 15.9 in float32; PyTorch: 100)",
    "optax": "optax's sigmoid_binary_cross_entropy evaluates the same function as PyTorch "
             "another way (-y log σ(x) - (1 - y) log σ(-x)), a few ulps apart",
    "tensorflow": "TensorFlow's sigmoid_cross_entropy_with_logits evaluates the same "
                  "function as PyTorch another way (max(x, 0) - x z + log1p(exp(-|x|))), "
                  "a few ulps apart",
}


def _why(c: Candidate, e: Explanation) -> str:
    parts = []
    formula = c.formula
    sigmoid = formula.startswith("sigmoid, then ")
    if sigmoid:
        formula = formula.removeprefix("sigmoid, then ")
        parts.append("the logits went through a sigmoid first (PyTorch's "
                     "binary_cross_entropy_with_logits works on the logits directly)")
    if formula.startswith("torch, terms rounded to"):
        parts.append(f"the element losses were {formula.removeprefix('torch, terms ')} "
                     "before reducing, so the difference is rounding")
    elif formula in _WHY_FORMULA:
        parts.append(_WHY_FORMULA[formula])
    elif formula.startswith("keras, label smoothing"):
        parts.append(f"Keras smooths the targets to y (1 - {LABEL_SMOOTHING:g}) + "
                     f"{LABEL_SMOOTHING / 2:g} (PyTorch has no label smoothing) and clips p "
                     "to [1e-7, 1 - 1e-7]")
    elif formula.startswith(("log(1-p)", "log1p(-p)")):
        log = "log(1 - p), which loses precision for small p (PyTorch: log1p(-p))" if (
            formula.startswith("log(1-p)")) else "log1p(-p) as PyTorch does"
        if ", clamp " in formula:
            clamp = formula.split(", clamp ")[1]
            parts.append(f"it clips p to [{clamp}, 1 - {clamp}] (PyTorch does not clip p, "
                         f"it clamps each log at -100) and computes {log}")
        else:
            parts.append(f"it computes {log} without any clamp, so p = 0 or 1 gives inf or "
                         "nan (PyTorch clamps each log at -100)")
    elif formula.startswith("log(p+"):
        eps = formula[len("log(p+"):-1]
        parts.append(f"it adds {eps} inside both logs, which biases every term (PyTorch "
                     "adds nothing and clamps each log at -100)")
    reduction = {
        "sum": "it sums the element losses where PyTorch's default reduction is the mean "
               "(divides by the number of elements)",
        "weighted mean": "it divides the weighted sum by the sum of the weights, where "
                         "PyTorch divides by the number of elements",
        "sum of row means": "it averages each row, then sums over the rows (Keras' "
                            "reduction='sum'), where PyTorch averages over all elements",
        "mean of row sums": "it sums each row, then averages over the rows, where PyTorch "
                            "averages over all elements",
    }.get(c.reduction)
    if c.reduction in ("mean of batch means", "sum of batch means") and e.batch_size:
        batches = _batches(e.samples, e.batch_size).replace(" (the last", ", the last")
        batches = batches.removesuffix(")")
        if c.reduction.startswith("mean"):
            reduction = (f"it is an epoch's loss: the mean of PyTorch's batch means over "
                         f"{batches} (`epoch_loss += loss.item()`, then divided by the "
                         "number of batches), where the dataset's BCE averages all "
                         "elements at once")
            if e.samples % e.batch_size:
                reduction += ": the last, smaller batch weighs as much as a full one"
        else:
            reduction = (f"it is an epoch's loss: the sum of PyTorch's batch means over "
                         f"{batches} (`epoch_loss += loss.item()`, not divided by the "
                         "number of batches), where the dataset's BCE averages all "
                         "elements at once")
    if reduction:
        parts.append(reduction)
    if c.dtype != e.input_dtype and c.name not in {m for m in e.matches}:
        parts.append(f"it was computed in {c.dtype}, the inputs are {e.input_dtype}")
    return "; ".join(parts)


def _fmt(x: float) -> str:
    return f"{x:.8g}"


def _describe(e: Explanation, more: str = "see .matches") -> str:
    """``str(e)``; ``more`` says where the matches not named are (the CLI lists them)."""
    sentences = []
    kind = "binary_cross_entropy_with_logits" if e.from_logits else "binary_cross_entropy"
    torch_sentence = (f"PyTorch ({kind}, reduction='mean') gives {_fmt(e.torch)} "
                      f"in {e.input_dtype}.")
    if e.batch_size is not None:  # beside an epoch's loss: say that this is the dataset's
        torch_sentence = torch_sentence[:-1] + (
            ": the dataset's BCE, over all its elements at once.")
    if e.matches:
        shown = e.matches[:6]
        hidden = len(e.matches) - len(shown)
        listed = ", ".join(f"'{m}'" for m in shown) + (
            f" and {hidden} more ({more})" if hidden > 0 else "")
        sentences.append(f"{_fmt(e.value)} matches {listed}.")
        sentences.append(torch_sentence)
        best = e._matched[0]
        rounded = best.name not in e._exact
        if best.formula == "torch" and best.reduction == "mean":
            if rounded:
                sentences.append(
                    f"Your value is PyTorch's, rounded to {_decimals(e.digits)}: the "
                    "difference is rounding.")
            else:
                sentences.append("Your value is PyTorch's.")
                other = [m for m in e.matches if not m.startswith("torch")]
                if other:
                    sentences.append("The other conventions listed agree with PyTorch on "
                                     "these inputs.")
            if e.batch_size is not None:
                sentences.append(_epoch_sentence(e))
        else:
            why = _why(best, e)
            sentences.append(f"It differs from PyTorch because {why}." if why else
                             "It differs from PyTorch in how it is computed.")
            if rounded:
                sentences.append(f"(It matches '{best.name}' = {_fmt(best.value)} rounded to "
                                 f"{_decimals(e.digits)}.)")
    else:
        c = e.closest
        sentences.append(f"No convention tried reproduces {_fmt(e.value)}.")
        sentences.append(torch_sentence)
        diff = e.value - c.value if math.isfinite(e.value - c.value) else math.nan
        sentences.append(
            f"The closest is '{c.name}' ({c.dtype}) = {_fmt(c.value)}, off by {diff:.3g} "
            f"({_distance(e.value, c.value):.2g} relative).")
        why = _why(c, e)
        if why:
            sentences.append(f"That variant differs from PyTorch because {why}.")
    return " ".join(sentences)


def _epoch_sentence(e: Explanation) -> str:
    """With ``batch_size``, what the epoch's losses would have been."""
    found = {c.reduction: c.value for c in e.candidates if c.formula == "torch" and
             c.dtype == e.input_dtype and c.reduction.endswith("of batch means")}
    batches = _batches(e.samples, e.batch_size or 1)
    return (f"Over {batches}, the mean of PyTorch's batch means would be "
            f"{_fmt(found['mean of batch means'])} and their sum "
            f"{_fmt(found['sum of batch means'])}.")


def _decimals(digits: int | None) -> str:
    if digits is None:
        return "fewer digits"
    if digits < 0:
        return f"{-digits} decimal{'s' if digits != -1 else ''}"
    return f"a multiple of 1e{digits}"
