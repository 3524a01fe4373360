"""The decision memo: one model, three renderers (Markdown, HTML, PDF)."""

from __future__ import annotations

from typing import Any, Literal

from dashapp.memo.model import MAX_NOTES_CHARS, Charter, MemoModel, build_memo, experiment_charter
from dashapp.memo.render import (
    SafeURLFetcher,
    markdown_escape,
    render_html,
    render_markdown,
    render_pdf,
)

__all__ = [
    "MAX_NOTES_CHARS",
    "Charter",
    "MemoModel",
    "SafeURLFetcher",
    "build_memo",
    "experiment_charter",
    "markdown_escape",
    "render_html",
    "render_markdown",
    "render_pdf",
    "render_report",
]


def render_report(report: dict[str, Any], fmt: Literal["md", "html", "pdf"] | str, *, charter: Charter | None = None,
                  notes: str | None = None, date: str | None = None) -> str | bytes:
    """Render a report dict (JSON contract) as ``md``, ``html`` or ``pdf``."""
    memo = build_memo(report, charter=charter, notes=notes, date=date)
    if fmt == "md":
        return render_markdown(memo)
    if fmt == "html":
        return render_html(memo, report["policy"])
    if fmt == "pdf":
        return render_pdf(memo, report["policy"])
    raise ValueError(f"format must be md, html or pdf, got {fmt!r}")
