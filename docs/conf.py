"""Sphinx configuration for the xbce documentation.

Build (what ``nox -s docs`` runs)::

    sphinx-build -W --keep-going -b html docs docs/_build/html
    sphinx-build -W -b doctest docs docs/_build/doctest

Intersphinx inventories (Python, NumPy, PyTorch, JAX, the array API standard) are
fetched from the web. ``XBCE_DOCS_INTERSPHINX`` decides what happens without network:

``auto`` (default)
    try to fetch; an inventory that cannot be reached is reported as an *info* line,
    not a warning, so an offline ``-W`` build still passes (its links to those
    projects render as plain text instead).
``strict``
    an unreachable inventory is a warning (so ``-W`` fails): for release builds.
``off``
    do not fetch at all (fast offline builds).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # the checkout's xbce, even if not installed

os.environ.setdefault("KERAS_BACKEND", "jax")  # xbce.keras's page imports Keras

import xbce  # noqa: E402

# -- project ---------------------------------------------------------------------
project = "xbce"
author = "The xbce developers"
copyright = "The xbce developers"
version = release = xbce.__version__

# -- extensions ------------------------------------------------------------------
extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
]
# No math extension and no math markup: formulas are plain text and Unicode, so the pages
# need no MathJax from a CDN and read the same offline (docs/_check_html.py checks that no
# page has a math node or loads anything from the network).

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# Generated tables are pulled into pages with MyST's {include}; they are not pages.
exclude_patterns = ["_build", "parity/*.md", "benchmarks/*.md", "Thumbs.db", ".DS_Store"]
# Generated tables may start at any heading level inside the page including them.
suppress_warnings = ["myst.header"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- autodoc / numpydoc ----------------------------------------------------------
autodoc_typehints = "none"  # the numpydoc "Parameters" sections carry the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False

# -- doctest ---------------------------------------------------------------------
# Runs the ```{doctest} blocks of the pages. The ">>>" examples of the docstrings (shown
# on the API page) are run by pytest instead (nox -s numpy: --doctest-modules xbce).
doctest_test_doctest_blocks = ""

# -- intersphinx -----------------------------------------------------------------
intersphinx_mapping = {
    "python": ("https://docs.python.org/3/", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "torch": ("https://pytorch.org/docs/stable/", None),
    "jax": ("https://jax.readthedocs.io/en/latest/", None),
    "array-api": ("https://data-apis.org/array-api/latest/", None),
}
intersphinx_timeout = 10

_INTERSPHINX = os.environ.get("XBCE_DOCS_INTERSPHINX", "auto").strip().lower()
if _INTERSPHINX not in ("auto", "strict", "off"):
    raise ValueError(f"XBCE_DOCS_INTERSPHINX must be auto, strict or off, not {_INTERSPHINX!r}")
if _INTERSPHINX == "off":
    intersphinx_mapping = {}


class _UnreachableInventoryIsInfo(logging.Filter):
    """Turn intersphinx's 'failed to reach any of the inventories' warning into info.

    Sphinx gives that warning no type, so ``suppress_warnings`` cannot silence it;
    a filter on intersphinx's own logger runs before ``-W`` counts the warning.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and "failed to reach any of the inventories" in str(
            record.msg
        ):
            details = " ".join(str(a) for a in record.args or ())
            urls = re.findall(r"inventory '([^']+)' not fetchable", details)
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.nonl = False  # warnings carry nonl=True; their handler adds the newline
            record.msg = "intersphinx: could not fetch %s; its links stay plain text"
            record.args = (", ".join(urls) or "an inventory",)
        return True


# -- HTML ------------------------------------------------------------------------
html_theme = "furo"
html_title = f"xbce {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]  # wide tables scroll, the heat map keeps its size


# -- the tolerance table, read from tests/tolerances.py at build time ---------------
def _tolerance_table() -> list[list[str]]:
    import importlib.util

    path = DOCS.parent / "tests" / "tolerances.py"
    spec = importlib.util.spec_from_file_location("_xbce_docs_tolerances", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = []
    for key, (ulps, reason) in module.TABLE.items():
        quantity, dtype, *backend = key
        rows.append([quantity, dtype, backend[0] if backend else "all", str(ulps), reason])
    return rows


def _table(css: str, header: list[str], rows: list[list[str]], widths: Any) -> Any:
    """A docutils table: a header row, then ``rows``, plain text cells."""
    from docutils import nodes

    table = nodes.table(classes=[css])
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)

    def row(cells: list[str]) -> nodes.row:
        r = nodes.row()
        for text in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=text)
            r += entry
        return r

    head = nodes.thead()
    head += row(header)
    body = nodes.tbody()
    for cells in rows:
        body += row(cells)
    group += head
    group += body
    return table


def _make_tolerance_directive() -> type:
    from docutils import nodes
    from sphinx.util.docutils import SphinxDirective

    class TolerancesDirective(SphinxDirective):
        """``xbce-tolerances``: the ulp table of ``tests/tolerances.py`` as a table."""

        has_content = False

        def run(self) -> list[nodes.Node]:
            path = DOCS.parent / "tests" / "tolerances.py"
            self.env.note_dependency(str(path))
            try:
                rows = _tolerance_table()
            except Exception as err:  # reported as a warning, which -W makes an error
                msg = f"cannot read the tolerance table from {path}: {err!r}"
                return [self.state.document.reporter.warning(msg, line=self.lineno)]
            header = ["quantity", "dtype", "backend", "ulps", "why"]
            return [_table("xbce-tolerances", header, rows, (12, 9, 16, 5, 58))]

    return TolerancesDirective


def _make_conventions_directive() -> type:
    """``xbce-conventions``: docs/_conventions_table.py's rows, computed at build time."""
    import importlib.util

    from docutils import nodes
    from sphinx.util.docutils import SphinxDirective

    class ConventionsDirective(SphinxDirective):
        has_content = False

        def run(self) -> list[nodes.Node]:
            path = DOCS / "_conventions_table.py"
            self.env.note_dependency(str(path))
            self.env.note_dependency(str(DOCS.parent / "xbce" / "conventions.py"))
            try:
                spec = importlib.util.spec_from_file_location("_xbce_docs_conventions", path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                header, rows, widths = module.HEADER, module.rows(), module.WIDTHS
            except Exception as err:  # a warning, which -W makes an error
                msg = f"cannot compute the conventions table ({path}): {err!r}"
                return [self.state.document.reporter.warning(msg, line=self.lineno)]
            return [_table("xbce-conventions", header, rows, widths)]

    return ConventionsDirective


def setup(app: object) -> None:
    app.add_directive("xbce-tolerances", _make_tolerance_directive())  # type: ignore[attr-defined]
    app.add_directive("xbce-conventions", _make_conventions_directive())  # type: ignore[attr-defined]
    if _INTERSPHINX == "auto":
        # Sphinx's loggers are the standard ones, prefixed with "sphinx."
        logging.getLogger("sphinx.sphinx.ext.intersphinx").addFilter(_UnreachableInventoryIsInfo())
