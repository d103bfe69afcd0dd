"""The one place xbce reaches ``array_api_compat``.

A library that vendors xbce (and possibly ``array-api-extra``) can ship a module
``_array_api_compat_vendor.py`` next to the vendored ``xbce/`` folder that re-exports
``array_api_compat`` from wherever it vendored it. The hook has the same name and
contents as the one ``array-api-extra`` looks for, so one file serves both.
Without a hook, the installed ``array_api_compat`` is used.
"""

from __future__ import annotations

import importlib
from typing import Any

try:  # a vendoring library's hook, e.g. ``mylib/_array_api_compat_vendor.py``
    compat: Any = importlib.import_module(".._array_api_compat_vendor", __package__)
except ImportError:
    compat = importlib.import_module("array_api_compat")

# the names xbce uses (``tests/test_vendoring.py`` hands the hook exactly these)
array_namespace = compat.array_namespace
device = compat.device
is_lazy_array = compat.is_lazy_array
is_numpy_namespace = compat.is_numpy_namespace
is_torch_namespace = compat.is_torch_namespace
is_jax_namespace = compat.is_jax_namespace
is_dask_namespace = compat.is_dask_namespace
