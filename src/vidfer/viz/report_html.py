"""HTML building blocks of the report: sections, escaped tables, embedded PNGs, the page.

Every piece of text that comes from a file (class names, video ids, paths, config values) goes
through :func:`html.escape`; only markup built here is marked :class:`Raw`. The page carries a
Content-Security-Policy that allows nothing but inline styles and ``data:`` images, so a report
that tried to load anything from outside would show it as a browser error.
"""

from __future__ import annotations

import base64
import html
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class Raw(str):
    """Markup built by the report itself: inserted as is, never escaped again."""


@dataclass
class Section:
    """One titled part of the report.

    Attributes:
        title: Heading text (escaped on output).
        anchor: The element id, unique in the page (see :func:`anchor`).
        body: Markup of the content; an absent piece is a :func:`note`.
        skipped: True when the folder lacks what the section shows (the body says what).
        children: Sub-sections, rendered one heading level lower.
    """

    title: str
    anchor: str
    body: Raw = field(default_factory=Raw)
    skipped: bool = False
    children: list[Section] = field(default_factory=list)


def anchor(*parts: str) -> str:
    """An element id from ``parts``: lower case letters, digits and dashes."""
    text = "-".join(part for part in parts if part)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def skipped(title: str, anchor_id: str, why: str) -> Section:
    """A section whose content is absent from the folder; ``why`` says what is missing."""
    return Section(title, anchor_id, note(why), skipped=True)


def esc(value: object) -> str:
    """Escaped text of ``value``; :class:`Raw` markup passes unchanged."""
    return value if isinstance(value, Raw) else html.escape(str(value))


def number(value: object, digits: int = 4) -> str:
    """A float with ``digits`` decimals, ``—`` for None, other values as text."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def note(text: str) -> Raw:
    """A short remark, e.g. why a piece of the report is absent."""
    return Raw(f'<p class="note">{esc(text)}</p>')


def paragraph(text: str) -> Raw:
    """A paragraph of escaped text."""
    return Raw(f"<p>{esc(text)}</p>")


def link(text: str, target: str) -> Raw:
    """A link to an element id of the page."""
    return Raw(f'<a href="#{esc(target)}">{esc(text)}</a>')


def table(
    header: Sequence[object],
    rows: Iterable[Sequence[object]],
    *,
    caption: str = "",
    footer: Sequence[object] | None = None,
) -> Raw:
    """A table; cells are escaped unless :class:`Raw`, numbers formatted by :func:`number`.

    ``footer`` is a last, highlighted row (e.g. a mean over the rows).
    """

    def cell(tag: str, value: object) -> str:
        text = value if isinstance(value, Raw) else esc(number(value))
        return f"<{tag}>{text}</{tag}>"

    head = "".join(cell("th", name) for name in header)
    body = "".join("<tr>" + "".join(cell("td", v) for v in row) + "</tr>" for row in rows)
    title = f"<caption>{esc(caption)}</caption>" if caption else ""
    foot = (
        '<tfoot><tr class="summary">' + "".join(cell("td", v) for v in footer) + "</tr></tfoot>"
        if footer is not None
        else ""
    )
    return Raw(f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody>{foot}</table>")


def image(png: bytes, alt: str) -> Raw:
    """An ``<img>`` holding ``png`` as a base64 ``data:`` URL."""
    data = base64.b64encode(png).decode("ascii")
    return Raw(f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">')


def rendered(draw: Callable[[Path], None]) -> bytes:
    """The PNG that ``draw`` writes to the path it is given (e.g. a :mod:`vidfer.viz.plots`
    function), read back from a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="vidfer-report-") as folder:
        path = Path(folder) / "plot.png"
        draw(path)
        return path.read_bytes()


def preformatted(text: str, summary: str) -> Raw:
    """Collapsible preformatted text (e.g. a whole config file)."""
    return Raw(f"<details><summary>{esc(summary)}</summary><pre>{esc(text)}</pre></details>")


_STYLE = """
body { font-family: sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 2em;
       color: #1d1d1f; line-height: 1.4; }
h1 { border-bottom: 2px solid #3a6ea5; padding-bottom: .2em; }
section { margin: 1.2em 0; }
section section { margin-left: 1em; }
section.skipped > h2, section.skipped > h3, section.skipped > h4 { color: #888; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #ccd; padding: .25em .6em; text-align: left; }
th { background: #eef2f7; }
tr.summary td { font-weight: bold; background: #f6f6f0; }
caption { text-align: left; font-weight: bold; padding: .2em 0; }
img { max-width: 100%; height: auto; display: block; margin: .5em 0; }
p.note { color: #777; font-style: italic; }
nav ul { columns: 2; }
pre { background: #f5f5f5; padding: .6em; overflow-x: auto; font-size: .85em; }
"""

# Inline styles and data: images only; the empty icon keeps browsers from asking for favicon.ico.
_HEAD = (
    '<meta charset="utf-8">'
    '<meta http-equiv="Content-Security-Policy" '
    "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<link rel="icon" href="data:,">'
)


def _render(section: Section, level: int) -> str:
    tag = f"h{min(level, 6)}"
    kind = ' class="skipped"' if section.skipped else ""
    inner = "".join(_render(child, level + 1) for child in section.children)
    return (
        f'<section id="{esc(section.anchor)}"{kind}><{tag}>{esc(section.title)}</{tag}>'
        f"{section.body}{inner}</section>"
    )


def _contents(sections: Sequence[Section]) -> str:
    items = "".join(f"<li>{link(s.title, s.anchor)}</li>" for s in sections)
    return f'<nav id="contents"><h2>Contents</h2><ul>{items}</ul></nav>'


def page(title: str, lead: str, sections: Sequence[Section]) -> str:
    """The whole HTML document: title, a lead paragraph, contents, then the sections."""
    body = "".join(_render(section, 2) for section in sections)
    return (
        f'<!DOCTYPE html><html lang="en"><head>{_HEAD}<title>{esc(title)}</title>'
        f"<style>{_STYLE}</style></head><body><header><h1>{esc(title)}</h1>"
        f"{paragraph(lead)}{_contents(sections)}</header><main>{body}</main></body></html>\n"
    )
