"""The one place xbce reaches ``array_api_compat``.

A library that vendors xbce (and possibly ``array-api-extra``) can ship a module
``_array_api_compat_vendor.py`` next to the vendored ``xbce/`` folder that re-exports
``array_api_compat`` from wherever it vendored it. The hook has the same name and
contents as the one ``array-api-extra`` looks for, so one file serves both.
Without a hook, the installed ``array_api_compat`` is used.
"""

from __future__ import annotations

try:  # a vendoring library's hook, e.g. ``mylib/_array_api_compat_vendor.py``
    from .._array_api_compat_vendor import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
        array_namespace,
        device,
        is_dask_namespace,
        is_jax_namespace,
        is_lazy_array,
        is_numpy_namespace,
        is_torch_namespace,
    )
except ImportError:
    from array_api_compat import (
        array_namespace,
        device,
        is_dask_namespace,
        is_jax_namespace,
        is_lazy_array,
        is_numpy_namespace,
        is_torch_namespace,
    )

__all__ = [
    "array_namespace",
    "device",
    "is_dask_namespace",
    "is_jax_namespace",
    "is_lazy_array",
    "is_numpy_namespace",
    "is_torch_namespace",
]

