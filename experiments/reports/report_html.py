"""report.html: the same report as report.md, self-contained (plots embedded as base64 PNG, no network)."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

STYLE = """body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:78em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em}
td{text-align:right}td:first-child{text-align:left}img{max-width:100%}code{background:#f3f3f3}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:1.6em}h3{font-size:1.05em}"""


def _inline(text: str, images: dict[str, str]) -> str:
    """Escape, then the inline marks report.md uses: images, **bold**, *italic*, `code`."""
    out = html.escape(text, quote=False)

    def image(m: re.Match[str]) -> str:
        src = images.get(m.group(2), m.group(2))
        return f'<img alt="{html.escape(m.group(1))}" src="{src}">'

    out = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", image, out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![\w*])\*(?!\s)(.+?)\*(?!\w)", r"<em>\1</em>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def to_html(markdown: str, images: dict[str, str]) -> str:
    """The subset of Markdown report.md is written in: headings, lists (two levels), tables, paragraphs."""
    out: list[str] = []
    lists = 0
    for block in markdown.split("\n\n"):
        lines = block.strip("\n").splitlines()
        if not lines:
            continue
        if lines[0].startswith("#"):
            level = len(lines[0]) - len(lines[0].lstrip("#"))
            out.append(f"<h{level}>{_inline(lines[0][level:].strip(), images)}</h{level}>")
            lines = lines[1:]
            if not lines:
                continue
        if lines[0].startswith("|"):
            rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if not set(line) <= set("|-: ")]
            head, *body = rows
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c, images)}</th>" for c in head) + "</tr></thead>")
            out.append(
                "<tbody>"
                + "".join("<tr>" + "".join(f"<td>{_inline(c, images)}</td>" for c in row) + "</tr>" for row in body)
                + "</tbody></table>"
            )
        elif lines[0].lstrip().startswith("- "):
            items, depth = [], 0
            for line in lines:
                indent = 1 if line.startswith("  ") else 0
                while depth < indent:
                    items.append("<ul>")
                    depth += 1
                while depth > indent:
                    items.append("</ul>")
                    depth -= 1
                items.append(f"<li>{_inline(line.strip()[2:], images)}</li>")
            items += ["</ul>"] * depth
            out.append("<ul>" + "".join(items) + "</ul>")
            lists += 1
        else:
            out.append(f"<p>{_inline(' '.join(lines), images)}</p>")
    return "\n".join(out)


def write_html(results: dict[str, Any], markdown: str, out_dir: Path) -> Path:
    """Write report.html from the report's Markdown, next to report.md and the plots it embeds."""
    images = {
        name: "data:image/png;base64," + base64.b64encode((out_dir / name).read_bytes()).decode()
        for name in ("tps.png", "latency.png", "rtt.png")
        if (out_dir / name).exists()
    }
    body = to_html(markdown, images)
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        f"<title>coupon-rush lab: run {html.escape(str(results['run_id']))}</title><style>{STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
