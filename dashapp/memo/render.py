"""Rendering the memo: Markdown, self-contained HTML and PDF (WeasyPrint).

Safety: every piece of user text goes through Jinja2 autoescaping (HTML) or
:func:`markdown_escape`; the PDF renderer's URL fetcher allows only ``data:`` URLs
and files inside this package's ``static`` folder, follows no redirects, and
rendering runs with a time limit so it cannot hang the caller.
"""

from __future__ import annotations

import concurrent.futures
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import jinja2

from dashapp.memo.chart import effect_chart_svg, svg_data_uri
from dashapp.memo.model import MemoModel

__all__ = [
    "STATIC_DIR",
    "RenderTimeoutError",
    "SafeURLFetcher",
    "markdown_escape",
    "render_html",
    "render_markdown",
    "render_pdf",
]

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATES_DIR = Path(__file__).parent / "templates"
PDF_TIMEOUT_SECONDS = 20.0
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|])")


class RenderTimeoutError(RuntimeError):
    """Rendering the PDF took longer than the time limit."""


def markdown_escape(text: object) -> str:
    """Escape Markdown syntax and HTML so user text shows literally in any Markdown viewer."""
    value = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = _MARKDOWN_SPECIAL.sub(r"\\\1", value)
    return value.replace("\r", " ").replace("\n", " ")


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )
    environment.filters["md"] = markdown_escape
    return environment


_ENVIRONMENT = _environment()


def render_markdown(memo: MemoModel) -> str:
    return _ENVIRONMENT.get_template("memo.md.j2").render(m=memo)


def render_html(memo: MemoModel, policy: dict[str, Any]) -> str:
    """Self-contained HTML: inline CSS, the chart as a ``data:`` SVG, no external requests."""
    css = (STATIC_DIR / "memo.css").read_text(encoding="utf-8")
    svg = effect_chart_svg(memo, worsened_pp=policy["guardrail_worsened"] * 100, severe_pp=policy["guardrail_severe"] * 100)
    return _ENVIRONMENT.get_template("memo.html.j2").render(m=memo, css=css, chart=svg_data_uri(svg) if svg else None)


def _weasy_fetcher_base() -> type:
    from weasyprint.urls import URLFetcher

    return URLFetcher


class SafeURLFetcher:
    """Allows ``data:`` URLs and files under :data:`STATIC_DIR`; refuses everything else.

    ``requested`` records every URL asked for and ``refused`` those it refused, so tests
    can spy on it.
    """

    def __init__(self) -> None:
        base = _weasy_fetcher_base()
        self._inner = base(timeout=2, allowed_protocols=("data", "file"), allow_redirects=False)
        self.requested: list[str] = []
        self.refused: list[str] = []

    def _allowed(self, url: str) -> bool:
        parsed = urlparse(url)
        if parsed.scheme == "data":
            return True
        if parsed.scheme == "file":
            path = Path(unquote(parsed.path)).resolve()
            return path.is_file() and STATIC_DIR.resolve() in path.parents
        return False

    def fetch(self, url: str, headers: Any = None) -> Any:
        self.requested.append(url)
        if not self._allowed(url):
            self.refused.append(url)
            raise ValueError(f"ExperimentOS memos may not load {url[:80]!r}")
        return self._inner.fetch(url, headers)

    def __call__(self, url: str, headers: Any = None) -> Any:
        return self.fetch(url, headers)


def _write_pdf(html: str, fetcher: SafeURLFetcher) -> bytes:
    from weasyprint import HTML

    document = HTML(string=html, base_url=STATIC_DIR.as_uri() + "/", url_fetcher=fetcher)
    content = document.write_pdf()
    assert isinstance(content, bytes)
    return content


def render_pdf(memo: MemoModel, policy: dict[str, Any], *, fetcher: SafeURLFetcher | None = None,
               timeout: float = PDF_TIMEOUT_SECONDS) -> bytes:
    """An A4 PDF of the memo. Raises :class:`RenderTimeoutError` after ``timeout`` seconds."""
    html = render_html(memo, policy)
    # A pool per call: a module-level pool would be unusable in a forked worker (Dash's
    # background callbacks fork), and a render that overruns is abandoned, not awaited.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="memo-pdf")
    future = pool.submit(_write_pdf, html, fetcher or SafeURLFetcher())
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise RenderTimeoutError(f"the PDF took longer than {timeout:g} s to render") from None
    finally:
        pool.shutdown(wait=False)
