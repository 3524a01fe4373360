"""Rendering the memo: Markdown, self-contained HTML and PDF (WeasyPrint).

Safety: every piece of user text goes through Jinja2 autoescaping (HTML) or
:func:`markdown_escape`; the PDF renderer's URL fetcher allows only ``data:`` URLs
and files inside this package's ``static`` folder, follows no redirects, and
rendering runs with a time limit so it cannot hang the caller.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import jinja2

from dashapp.errors import RenderFailedError, RenderTimeoutError
from dashapp.memo.chart import effect_chart_svg, svg_data_uri, timeline_chart_svg
from dashapp.memo.model import MemoModel

__all__ = [
    "CHART_HEIGHTS",
    "DENSITIES",
    "FIT_STEPS",
    "NOTES_MARKER",
    "PDF_TIMEOUT_ENV",
    "PDF_TIMEOUT_SECONDS",
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "TIMELINE_HEIGHTS",
    "FitStep",
    "SafeURLFetcher",
    "markdown_escape",
    "markdown_lines",
    "pdf_timeout",
    "render_html",
    "render_markdown",
    "render_pdf",
    "shorten",
]

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATES_DIR = Path(__file__).parent / "templates"
PDF_TIMEOUT_SECONDS = 20.0
PDF_TIMEOUT_ENV = "EXPERIMENTOS_PDF_TIMEOUT_SECONDS"
DENSITIES = (0, 1, 2, 3, 4, 5)  # body type 8.4, 7.7, 7.1, 6.6, 6.2 and 6.2 pt (memo.css)
CHART_HEIGHTS = {0: 2.5, 1: 2.2, 2: 1.9, 3: 1.6, 4: 1.5, 5: 1.4}  # inches, per density
TIMELINE_HEIGHTS = {0: 1.6, 1: 1.45, 2: 1.3, 3: 1.15, 4: 1.05, 5: 1.0}
NOTES_MARKER = "… (full notes in the dashboard / Markdown)"
# Markdown syntax that can change how user text reads. `_` only at a word's edge (CommonMark never
# reads snake_case as emphasis), `<` only where it could open a tag, `&` only where it could be an
# entity, so "sample_srm" and "p < 0.0001" stay as typed.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|]|(?<!\w)_|_(?!\w))")
_MARKDOWN_TAG = re.compile(r"<(?=[A-Za-z/!?])")
_MARKDOWN_ENTITY = re.compile(r"&(?=#?\w+;)")


@dataclass(frozen=True)
class FitStep:
    """One layout tried by the PDF renderer: ``density`` (see :data:`DENSITIES`), and how many
    characters of notes and how many risks the page shows (``None``: all)."""

    density: int
    notes_limit: int | None = None
    risks_limit: int | None = None


#: Tried in order until the memo fits on one page: smaller type first, then shorter notes, then
#: fewer risks; each cut is marked on the page and the full text stays in the HTML and Markdown.
FIT_STEPS = (
    FitStep(0), FitStep(1), FitStep(2), FitStep(3, notes_limit=1500), FitStep(4, notes_limit=800),
    FitStep(5, notes_limit=400, risks_limit=8), FitStep(5, notes_limit=150, risks_limit=5),
    FitStep(5, notes_limit=0, risks_limit=3),
)


def markdown_escape(text: object) -> str:
    """Escape Markdown syntax and HTML so user text shows literally in any Markdown viewer, on one line."""
    value = _MARKDOWN_ENTITY.sub("&amp;", str(text))
    value = _MARKDOWN_TAG.sub("&lt;", value)
    value = _MARKDOWN_SPECIAL.sub(r"\\\1", value)
    return value.replace("\r", " ").replace("\n", " ")


def markdown_lines(text: object) -> str:
    """:func:`markdown_escape` keeping the writer's line breaks (as Markdown hard breaks)."""
    return "  \n".join(markdown_escape(line) for line in str(text).replace("\r\n", "\n").split("\n"))


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a word boundary when there is one nearby."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.7 else cut).rstrip(" ,;:.—-")


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )
    environment.filters["md"] = markdown_escape
    environment.filters["md_lines"] = markdown_lines
    environment.filters["shorten"] = shorten
    return environment


_ENVIRONMENT = _environment()


def render_markdown(memo: MemoModel) -> str:
    return _ENVIRONMENT.get_template("memo.md.j2").render(m=memo)


def _html(memo: MemoModel, step: FitStep) -> str:
    css = (STATIC_DIR / "memo.css").read_text(encoding="utf-8")
    svg = effect_chart_svg(memo, max_height=CHART_HEIGHTS[step.density])
    timeline = timeline_chart_svg(memo, height=TIMELINE_HEIGHTS[step.density])
    return _ENVIRONMENT.get_template("memo.html.j2").render(
        m=memo, css=css, chart=svg_data_uri(svg) if svg else None, density=step.density,
        timeline_chart=svg_data_uri(timeline) if timeline else None,
        notes_limit=step.notes_limit, risks_limit=step.risks_limit)


def render_html(memo: MemoModel, policy: dict[str, Any] | None = None, *, density: int = 0) -> str:
    """Self-contained HTML: inline CSS, the chart as a ``data:`` SVG, no external requests.

    ``density`` (see :data:`DENSITIES`) selects smaller type and a smaller chart; the HTML always
    shows the full notes and every risk. ``policy`` is accepted for older callers and unused: every
    margin the memo shows is in ``memo`` (one per metric since rules v2).
    """
    if density not in DENSITIES:
        raise ValueError(f"density must be one of {DENSITIES}, got {density!r}")
    return _html(memo, FitStep(density))


def _weasy_fetcher_base() -> type:
    from weasyprint.urls import URLFetcher

    base: type = URLFetcher
    return base


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


def _write_pdf(memo: MemoModel, fetcher: SafeURLFetcher) -> bytes:
    """The first of :data:`FIT_STEPS` at which the memo lays out on one page, else the last.

    Each step is at least as compact as the one before, so after the first (which most memos
    fit) a binary search finds it in three or four layouts instead of up to eight.
    """
    from weasyprint import HTML

    documents: dict[int, Any] = {}

    def fits(index: int) -> bool:
        html = _html(memo, FIT_STEPS[index])
        documents[index] = HTML(string=html, base_url=STATIC_DIR.as_uri() + "/", url_fetcher=fetcher).render()
        return len(documents[index].pages) == 1

    chosen = len(FIT_STEPS) - 1
    if fits(0):
        chosen = 0
    else:
        low, high = 1, len(FIT_STEPS) - 1  # invariant: steps below `low` do not fit
        while low < high:
            middle = (low + high) // 2
            if fits(middle):
                high = middle
            else:
                low = middle + 1
        chosen = low
        if chosen not in documents:
            fits(chosen)
    document = documents[chosen]
    content = document.write_pdf()
    assert isinstance(content, bytes)
    return content


def _pdf_job(memo: MemoModel, fetcher_type: type[SafeURLFetcher]) -> tuple[bytes, list[str], list[str]]:
    """What the render worker runs: the PDF and the URLs its fetcher was asked for and refused."""
    fetcher = fetcher_type()
    return _write_pdf(memo, fetcher), fetcher.requested, fetcher.refused


def pdf_timeout() -> float:
    """The PDF time limit: ``EXPERIMENTOS_PDF_TIMEOUT_SECONDS``, else :data:`PDF_TIMEOUT_SECONDS`."""
    text = os.environ.get(PDF_TIMEOUT_ENV, "").strip()
    try:
        value = float(text) if text else PDF_TIMEOUT_SECONDS
    except ValueError:
        raise ValueError(f"{PDF_TIMEOUT_ENV} must be a number of seconds, got {text!r}") from None
    return value if value > 0 else PDF_TIMEOUT_SECONDS


def render_pdf(memo: MemoModel, policy: dict[str, Any] | None = None, *, fetcher: SafeURLFetcher | None = None,
               timeout: float | None = None) -> bytes:
    """An A4 PDF of the memo, on one page, rendered in a worker process (:mod:`dashapp.isolation`).

    Raises :class:`RenderTimeoutError` after ``timeout`` seconds (default :func:`pdf_timeout`; the
    worker, busy or not, is killed then) and :class:`RenderFailedError` when the worker crashed or
    ran out of memory. ``fetcher``'s class fetches in the worker; what it was asked for and refused
    is added to ``fetcher``'s ``requested`` and ``refused``.

    A memo too long for one page at the normal size is laid out again at the :data:`FIT_STEPS`
    (smaller type and chart, then notes and risks cut with a visible marker) until it fits; a memo
    that does not fit even then keeps the most compact layout, on more pages, never overlapping.
    """
    from dashapp.errors import IsolationError, WorkerTimeoutError
    from dashapp.isolation import Limits, run_isolated

    seconds = timeout if timeout is not None else pdf_timeout()
    spy = fetcher or SafeURLFetcher()
    try:
        content, requested, refused = run_isolated(_pdf_job, memo, type(spy),
                                                   limits=Limits.from_environment(wall_seconds=seconds))
    except WorkerTimeoutError:
        raise RenderTimeoutError(f"the PDF took longer than {seconds:g} s to render") from None
    except IsolationError as error:
        raise RenderFailedError(f"the PDF could not be rendered ({error})") from None
    spy.requested.extend(requested)
    spy.refused.extend(refused)
    return content
