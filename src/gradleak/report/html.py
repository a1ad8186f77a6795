"""Self-contained static HTML pages: inline CSS, relative links, no external assets.

A page is a title and a list of :class:`Section` objects; each section may hold a paragraph,
a key/value or row table, images (PNG/GIF next to the page) and links to files.

Example:
    >>> from gradleak.report.html import Section, render_page
    >>> page = render_page("run", [Section("metrics", table={"psnr": 21.4})])
    >>> "<table" in page
    True
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradleak.errors import ConfigError
from gradleak.safeio import write_text

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em;
border-bottom:1px solid #ddd;padding-bottom:.2em}
.sub{color:#666;margin-top:0}figure{display:inline-block;margin:.5em 1em .5em 0;
vertical-align:top}figcaption{font-size:.85em;color:#555;max-width:600px}
img{image-rendering:pixelated;max-width:100%;border:1px solid #eee}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
ul.links{padding-left:1.2em}code{background:#f4f4f4;padding:0 .25em}
"""


@dataclass
class Section:
    """One block of a page.

    Attributes:
        title: the heading.
        text: a paragraph (plain text, escaped; blank lines start new paragraphs).
        table: a ``{key: value}`` mapping (two columns) or a list of row mappings.
        images: ``(relative path, caption)`` pairs shown as figures.
        links: ``(relative path, label)`` pairs shown as a list.
        html: trusted extra HTML appended as is (for callers that build their own markup).
    """

    title: str
    text: str = ""
    table: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    images: list[tuple[str, str]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    html: str = ""


def relative_href(path: str) -> str:
    """Checks that ``path`` is relative (the page must work when its folder is moved)."""
    p = str(path).replace("\\", "/")
    if p.startswith("/") or "://" in p or p.startswith("data:") or ".." in p.split("/"):
        raise ConfigError(f"report links must be relative paths inside the run folder: {p!r}")
    return p


def fmt(value: Any) -> str:
    """A short human form of a metric value (4 significant digits for floats)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, list | tuple) and len(value) > 12:
        return f"[{', '.join(fmt(v) for v in value[:12])}, ...] ({len(value)} values)"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def _cell(value: Any) -> str:
    cls = ' class="num"' if isinstance(value, int | float) and not isinstance(value, bool) else ""
    return f"<td{cls}>{html.escape(fmt(value))}</td>"


def render_table(table: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    """A ``{key: value}`` mapping as two columns, or a list of row mappings as a grid."""
    if isinstance(table, Mapping):
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th>{_cell(v)}</tr>" for k, v in table.items()
        )
        return f"<table>{rows}</table>"
    rows_list = list(table)
    if not rows_list:
        return ""
    cols: list[str] = []
    for r in rows_list:
        cols += [str(c) for c in r if str(c) not in cols]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(_cell(r.get(c, "")) for c in cols) + "</tr>" for r in rows_list
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_section(sec: Section) -> str:
    """The HTML of one section."""
    parts = [f"<section><h2>{html.escape(sec.title)}</h2>"]
    for para in (p for p in sec.text.split("\n\n") if p.strip()):
        parts.append(f"<p>{html.escape(para.strip())}</p>")
    if sec.table:
        parts.append(render_table(sec.table))
    for src, caption in sec.images:
        href = html.escape(relative_href(src), quote=True)
        parts.append(
            f'<figure><a href="{href}"><img src="{href}" alt="{html.escape(caption, quote=True)}">'
            f"</a><figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    if sec.links:
        items = "".join(
            f'<li><a href="{html.escape(relative_href(h), quote=True)}">'
            f"{html.escape(label)}</a></li>"
            for h, label in sec.links
        )
        parts.append(f'<ul class="links">{items}</ul>')
    if sec.html:
        parts.append(sec.html)
    parts.append("</section>")
    return "\n".join(parts)


def render_page(title: str, sections: Sequence[Section], *, subtitle: str = "") -> str:
    """A complete, self-contained HTML document."""
    sub = f'<p class="sub">{html.escape(subtitle)}</p>' if subtitle else ""
    body = "\n".join(render_section(s) for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1>{sub}\n{body}\n"
        '<p class="sub">Written by gradleak.</p></body></html>\n'
    )


def write_page(
    path: str | Path, title: str, sections: Sequence[Section], *, subtitle: str = ""
) -> Path:
    """Writes :func:`render_page` to ``path`` (folders are created) and returns it."""
    return write_text(path, render_page(title, sections, subtitle=subtitle))
