"""The error raised when an optional library that an xbce module needs is missing.

``import xbce.torch`` without PyTorch (and ``import xbce.keras`` without Keras,
``xbce.checkify`` without JAX) raises a ``ModuleNotFoundError`` that says what to
install, with ``name`` still the missing library's (as Python's own has), raised
``from`` Python's own error.
"""

from __future__ import annotations

#: The torch release xbce is compared with (noxfile.py's ``TORCH`` pin).
REFERENCE_TORCH = "2.13.0"

_HOW = {
    "torch": (
        "PyTorch",
        "torch",
        f'pip install "torch=={REFERENCE_TORCH}" --index-url '
        "https://download.pytorch.org/whl/cpu (the CPU-only build; xbce's reference "
        f"version is torch=={REFERENCE_TORCH}), or xbce's extra: pip install \".[torch]\" "
        "in xbce's checkout",
    ),
    "jax": ("JAX", "jax", 'pip install jax, or xbce\'s extra: pip install ".[jax]" in '
                          "xbce's checkout"),
    "keras": ("Keras 3", "keras", 'pip install keras jax (or torch), or xbce\'s extra: '
                                  'pip install ".[keras]" in xbce\'s checkout, and set '
                                  "KERAS_BACKEND=jax (or torch) before importing keras"),
}


def missing(what: str, library: str) -> ModuleNotFoundError:
    """The error for ``what`` (e.g. ``"xbce.torch"``) needing ``library``, which is not
    installed; raise it ``from`` Python's own error."""
    title, name, how = _HOW[library]
    return ModuleNotFoundError(f"{what} needs {title}, which is not installed: {how}",
                               name=name)


def keras_without_backend(err: ModuleNotFoundError) -> ModuleNotFoundError:
    """The error for ``import keras`` failing on its default backend, TensorFlow, when
    ``KERAS_BACKEND`` is not set (``err.name`` is kept: ``"tensorflow"``)."""
    return ModuleNotFoundError(
        f"xbce.keras: Keras could not import {err.name}, the module of its default backend "
        "(TensorFlow, which xbce.keras cannot use): set KERAS_BACKEND=jax or torch before "
        'keras is imported (os.environ["KERAS_BACKEND"] = "jax" in Python)',
        name=err.name,
    )
