"""``python -m reprobook.sitecheck``: read the built book in a real browser, offline.

Serves ``_build/html`` on localhost and drives headless Chromium (the system's, through
Playwright) over every page, with every request outside localhost refused, as a reader without a
network would see the book. Per page it checks: no console error and no failed request, every
image loaded (``naturalWidth > 0``), every internal link resolves to a file of the site, every
formula typeset by MathJax (no raw TeX left), and the page's weight (HTML and everything it
loads) under a limit. It saves a screenshot of the first screen of the landing page and of
every chapter under ``_build/screenshots/``; a redirect page (the site's index) is checked for
its target only. Exit status 1 lists every problem found.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import http.server
import re
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from reprobook.chapters import repo_root

MAX_PAGE_MB = 8.0
# Console errors of the themes themselves, seen on every page and harmless, reported as notes.
KNOWN_THEME_ERRORS = {
    "Identifier 'THEBE_JS_URL' has already been declared": "Jupyter Book 1.0.4 writes "
    "sphinx-thebe's configuration script twice into every page (thebe itself is off)",
    "Got invalid theme mode": "pydata-sphinx-theme on a fresh browser profile, before a light "
    "or dark mode is stored",
}
SKIPPED = ("genindex.html", "search.html", "_static/", "_sources/", "_images/", "_sphinx_design")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# Waits until MathJax 3 has typeset the page (or at once when the page loads no MathJax).
MATH_READY = """async () => {
  if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
    await window.MathJax.startup.promise;
  }
  return true;
}"""
PAGE_FACTS = """() => {
  const images = Array.from(document.images)
    .map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'));
  const maths = Array.from(document.querySelectorAll('.math'));
  const raw = maths.filter(m => !m.querySelector('mjx-container')).length;
  return {images, links, n_math: maths.length, raw_math: raw};
}"""


@dataclass
class PageReport:
    """What one page showed: problems (empty when the page is fine) and its weight."""

    path: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bytes: int = 0
    n_math: int = 0


def find_chromium() -> str:
    """The system Chromium's path, or a ValueError saying how to install it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise ValueError(
        "no Chromium found on PATH: install Debian's package (apt-get install chromium), "
        "or run `make check-site`, which installs it when missing"
    )


def site_pages(site: Path) -> list[str]:
    """Every HTML page of the built site, as paths relative to it (indexes and search skipped)."""
    if not (site / "index.html").is_file():
        raise ValueError(f"{site} holds no built book (no index.html): run `make book` first")
    pages = []
    for page in sorted(site.rglob("*.html")):
        rel = page.relative_to(site).as_posix()
        if not any(rel.startswith(s) or rel.endswith(s) for s in SKIPPED):
            pages.append(rel)
    return pages


def link_target(site: Path, page: str, href: str) -> Path | None:
    """The file an internal link points to (None for external, mail and pure-anchor links)."""
    parsed = urlparse(href)
    if parsed.scheme or parsed.netloc or not parsed.path:
        return None
    target = ((site / page).parent / unquote(parsed.path)).resolve()
    return target / "index.html" if target.is_dir() else target


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request log
        pass


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``site`` on a free localhost port in a daemon thread; returns the server and URL."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def check_site(
    site: Path, shots: Path | None = None, max_page_mb: float = MAX_PAGE_MB, only: str = "*"
) -> list[PageReport]:
    """Check every page of ``site`` (or those matching the glob ``only``) in headless Chromium;
    returns one report per page."""
    from playwright.sync_api import sync_playwright

    pages = [p for p in site_pages(site) if fnmatch.fnmatch(p, only)]
    if not pages:
        raise ValueError(f"no page of {site} matches {only!r}")
    server, base = serve(site)
    reports = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url.startswith(base) else route.abort()
                ),
            )
            for rel in pages:
                reports.append(_check_page(context, base, site, rel, shots, max_page_mb))
            browser.close()
    finally:
        server.shutdown()
    return reports


REFRESH = re.compile(r'http-equiv="refresh"[^>]*url=([^"\s>]+)', re.IGNORECASE)


def _check_page(
    context, base: str, site: Path, rel: str, shots: Path | None, max_mb: float
) -> PageReport:
    report = PageReport(rel)
    redirect = REFRESH.search((site / rel).read_text(errors="replace"))
    if redirect:  # a redirect page (the site's index): its target must exist
        target = link_target(site, rel, redirect.group(1))
        if target is None or not target.is_file():
            report.problems.append(f"redirect to a missing page: {redirect.group(1)}")
        return report
    page = context.new_page()
    errors: list[str] = []

    def on_console(message) -> None:
        if message.type == "error":
            errors.append(f"console error: {message.text}")

    sizes: list[int] = []
    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(f"script error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.on("requestfinished", lambda r: sizes.append(max(0, r.sizes()["responseBodySize"])))
    page.goto(f"{base}/{rel}", wait_until="load")
    page.evaluate(MATH_READY)
    page.wait_for_load_state("networkidle")
    facts = page.evaluate(PAGE_FACTS)
    for error in errors:
        known = [why for text, why in KNOWN_THEME_ERRORS.items() if text in error]
        (report.notes if known else report.problems).append(error)
    report.problems += [f"image not loaded: {src}" for src, ok in facts["images"] if not ok]
    for href in facts["links"]:
        target = link_target(site, rel, href)
        if target is not None and not target.is_file():
            report.problems.append(f"broken internal link: {href}")
    report.n_math = facts["n_math"]
    if facts["raw_math"]:
        report.problems.append(f"{facts['raw_math']} formulas left as raw TeX")
    report.bytes = sum(sizes)
    if report.bytes > max_mb * 2**20:
        report.problems.append(f"page weighs {report.bytes / 2**20:.1f} MB (limit {max_mb:g} MB)")
    if shots is not None and (rel == "book/intro.html" or rel.startswith("notebooks/")):
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / (rel.replace("/", "_").removesuffix(".html") + ".png")))
    page.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=repo_root() / "_build" / "html")
    parser.add_argument("--shots", type=Path, default=repo_root() / "_build" / "screenshots")
    parser.add_argument("--only", default="*", help="a glob of pages to check (default: all)")
    args = parser.parse_args(argv)
    try:
        reports = check_site(args.site, args.shots, only=args.only)
    except ValueError as err:
        print(f"check-site: {err}", file=sys.stderr)
        return 2
    bad = [r for r in reports if r.problems]
    for r in reports:
        status = "ok" if not r.problems else f"{len(r.problems)} problem(s)"
        print(f"{r.path:60s} {r.bytes / 2**20:6.2f} MB  {r.n_math:4d} formulas  {status}")
        for problem in r.problems[:20]:
            print(f"    {problem}")
    seen = {note for r in reports for note in r.notes}
    for text, why in KNOWN_THEME_ERRORS.items():
        if any(text in note for note in seen):
            print(f"known theme message, not counted: {text!r} ({why})")
    print(
        f"check-site: {len(reports)} pages, {len(bad)} with problems; screenshots in {args.shots}"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
