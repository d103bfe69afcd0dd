"""Check the built HTML docs: every page exists, every local link and image resolves.

Run after the HTML build (``nox -s docs`` does)::

    python docs/_check_html.py docs/_build/html

Fails (exit 1, one line per problem) when

- a page of the toctree is missing (every source page, ``docs/**/*.md`` and ``*.rst``
  except ``exclude_patterns``' generated tables, must have its ``.html``);
- a relative ``href``/``src`` (links, images, scripts, style sheets) names a file that is
  not in the build, or an ``#anchor`` that the target page does not define;
- a page loads anything from the network (a ``<script src>``, ``<link href>`` or
  ``<img src>`` with a scheme): the docs must read the same offline, so no MathJax or
  fonts from a CDN;
- a page contains a math node (``class="math"``): formulas are plain text (there is no
  math renderer, which would need MathJax from a CDN).

Links to other sites (``https://...``) are not fetched: that is Sphinx's ``linkcheck``
builder's job, and it needs the network.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

DOCS = Path(__file__).resolve().parent
# Generated tables included by pages, and files that are not pages (see conf.py).
NOT_PAGES = ("_build", "parity/", "benchmarks/")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.math = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for key in ("id", "name"):
            if a.get(key) and (key == "id" or tag == "a"):
                self.ids.add(a[key])
        if "math" in a.get("class", "").split():
            self.math += 1
        for key in ("href", "src"):
            if key in a:
                self.refs.append((tag, key, a[key]))


def _parse(path: Path, cache: dict[Path, _Page]) -> _Page:
    if path not in cache:
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = page
    return cache[path]


def check(build: Path, source: Path = DOCS) -> list[str]:
    problems: list[str] = []
    build = build.resolve()
    if not (build / "index.html").is_file():
        return [f"{build}: no index.html (was the HTML build run?)"]

    for src in sorted([*source.rglob("*.md"), *source.rglob("*.rst")]):
        rel = src.relative_to(source).as_posix()
        if rel.startswith(NOT_PAGES):
            continue
        page = build / Path(rel).with_suffix(".html")
        if not page.is_file():
            problems.append(f"missing page: {rel} was not built ({page.relative_to(build)})")

    cache: dict[Path, _Page] = {}
    pages = sorted(p for p in build.rglob("*.html") if "_sources" not in p.parts)
    for path in pages:
        where = path.relative_to(build).as_posix()
        page = _parse(path, cache)
        if page.math:
            problems.append(f"{where}: {page.math} math node(s): write the formula as text")
        for tag, attr, value in page.refs:
            url = urlsplit(value.strip())
            if url.scheme or value.startswith("//"):
                if url.scheme in ("http", "https", "") and (
                    tag in ("script", "img", "iframe") or (tag == "link" and attr == "href")
                ):
                    problems.append(f"{where}: <{tag} {attr}={value!r}> loads from the network")
                continue  # links to other sites, mailto:, data:, ...
            if not url.path:
                target = path
            else:
                target = (path.parent / unquote(url.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
                if build not in target.parents and target != build:
                    problems.append(f"{where}: {value!r} points outside the build")
                    continue
                if not target.is_file():
                    problems.append(f"{where}: broken link {value!r} (no such file)")
                    continue
            frag = unquote(url.fragment)
            if frag and target.suffix == ".html" and frag not in _parse(target, cache).ids:
                shown = target.relative_to(build).as_posix()
                problems.append(f"{where}: broken anchor {value!r} (no id {frag!r} in {shown})")
    return list(dict.fromkeys(problems))  # a link repeated on a page is reported once


def main(argv: list[str]) -> int:
    build = Path(argv[0]) if argv else DOCS / "_build" / "html"
    problems = check(build)
    for p in problems:
        print(p)
    n = len(list(build.rglob("*.html")))
    if problems:
        print(f"{len(problems)} problem(s) in the built docs ({build})")
        return 1
    print(f"{build}: {n} HTML files, every local link, anchor and image resolves, nothing remote")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
