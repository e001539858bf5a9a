"""HTML building blocks of the reports: escaping, embedded images, sortable tables and the page itself.

Every string that reaches a page goes through :func:`text` (HTML-escaped; the undecodable bytes of OS names,
lone surrogates, written as ``\\xNN``) and every link to a file through :func:`href` (its exact bytes,
percent-encoded), so any name the OS allows gives a valid UTF-8 page with working links. Written by hand
rather than with a template engine: the pages are a few tables and images, and the project has no template
dependency.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import quote

from .._utils import escaped_text

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:0 1.2em 3em;
color:#1b1f24;line-height:1.4}
h1{font-size:1.5em;margin:.8em 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .5em;border-bottom:1px solid #d0d7de}
.headline{display:flex;flex-wrap:wrap;gap:.6em;margin:.6em 0}
.headline div{background:#f3f6f9;border:1px solid #d0d7de;border-radius:6px;padding:.4em .8em}
.headline b{display:block;font-size:1.4em}
table{border-collapse:collapse;font-size:.9em;margin:.4em 0}
th,td{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top;white-space:nowrap}
td{max-width:32em;overflow-wrap:anywhere;white-space:normal}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th.sortable{cursor:pointer;background:#f3f6f9;user-select:none}th.sortable:after{content:" \\2195";color:#8c959f}
td.diag{background:#dafbe1;font-weight:600}td.off{background:#ffebe9}
.scroll{overflow-x:auto;max-width:100%}
figure{display:inline-block;margin:.4em .8em .8em 0;vertical-align:top}
figure img.figure{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#57606a}
.thumbs{display:flex;flex-wrap:wrap;gap:.6em}
.thumb{width:236px;border:1px solid #d0d7de;border-radius:6px;padding:.4em;font-size:.8em}
.thumb img{width:112px;height:112px;object-fit:contain;image-rendering:pixelated;background:#f6f8fa}
.thumb .name{color:#57606a;overflow-wrap:anywhere}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.85em}
code{background:#f6f8fa;padding:.1em .3em}
.muted{color:#57606a}.bad{color:#cf222e}.good{color:#1a7f37}
"""

# Sorts a table by a clicked header (numbers by data-sort or their value, text otherwise; ``?sort=COLUMN`` in the
# URL sorts on load) and marks the body with data-images="ok" once every image has decoded (naturalWidth > 0):
# the browser tests read both.
_JS = """
function tlSort(th){const table=th.closest('table'),i=[...th.parentNode.children].indexOf(th),
body=table.tBodies[0],rows=[...body.rows],asc=th.dataset.dir!=='asc';
const key=r=>{const c=r.cells[i];if(!c)return '';const v=c.dataset.sort!==undefined?c.dataset.sort:c.textContent;
const n=parseFloat(v);return v!==''&&!isNaN(n)&&isFinite(v)?n:v.toLowerCase();};
rows.sort((a,b)=>{const x=key(a),y=key(b);if(typeof x===typeof y)return (x<y?-1:x>y?1:0)*(asc?1:-1);
return (typeof x==='number'?-1:1)*(asc?1:-1);});rows.forEach(r=>body.appendChild(r));
table.querySelectorAll('th').forEach(h=>delete h.dataset.dir);th.dataset.dir=asc?'asc':'desc';}
window.addEventListener('load',()=>{const by=new URLSearchParams(location.search).get('sort'),
th=[...document.querySelectorAll('th.sortable')].find(t=>t.textContent.trim()===by);if(th)tlSort(th);
const imgs=[...document.images],
ok=imgs.filter(im=>im.complete&&im.naturalWidth>0).length;
document.body.dataset.images=ok===imgs.length?'ok':'broken';document.body.dataset.imagesLoaded=ok;
document.body.dataset.imagesTotal=imgs.length;});
"""


def text(value: Any) -> str:
    """Any value as escaped HTML text; lone surrogates (undecodable bytes of a file name) as ``\\xNN``."""
    if value is None:
        return ""
    if isinstance(value, float):
        value = fmt_number(value)
    return html.escape(escaped_text(str(value)), quote=True)


def fmt_number(value: float) -> str:
    """A float for a table: 4 significant decimals, no trailing noise (``0.9833``, ``1e-04``, ``nan``)."""
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.3g}"
    return f"{value:.4f}".rstrip("0").rstrip(".") if not float(value).is_integer() else str(int(value))


def href(path: Path | str) -> str:
    """A relative link to a file, from its exact bytes (any name the OS allows), escaped for an attribute."""
    raw = os.fsencode(Path(path).as_posix() if isinstance(path, Path) else path)
    return html.escape(quote(raw, safe=b"/"), quote=True)


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def img(data: bytes, alt: str, cls: str = "figure", mime: str = "image/png", width: int | None = None) -> str:
    """An ``<img>`` with the image embedded (the page stays one self-contained file)."""
    size = f' width="{width}"' if width else ""
    return f'<img class="{cls}" src="{data_uri(data, mime)}" alt="{text(alt)}"{size}>'


def figure(png: Path, caption: str | None = None) -> str:
    """A PNG of the folder, embedded, with its caption (the file name by default)."""
    caption = caption if caption is not None else png.name
    return f"<figure>{img(png.read_bytes(), caption)}<figcaption>{text(caption)}</figcaption></figure>"


def cell(value: Any) -> str:
    """One ``<td>``: numbers right-aligned with an exact ``data-sort`` key."""
    if isinstance(value, bool) or value is None or not isinstance(value, (int, float)):
        shown = json.dumps(value) if isinstance(value, (dict, list)) else value
        return f"<td>{text(shown)}</td>"
    key = repr(float(value)) if math.isfinite(value) else ""
    return f'<td class="num" data-sort="{key}">{text(value)}</td>'


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, sortable: bool = True,
          raw: Iterable[str] = ()) -> str:
    """An HTML table of dict rows; header clicks sort it (plain JavaScript). Columns in ``raw`` hold HTML."""
    if not rows:
        return '<p class="muted">(no rows)</p>'
    if columns is None:
        columns = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
    raw = set(raw)
    cls = ' class="sortable" onclick="tlSort(this)"' if sortable else ""
    head = "".join(f"<th{cls}>{text(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{row.get(c, '')}</td>" if c in raw else cell(row.get(c))
                                    for c in columns) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def headline(items: dict[str, Any]) -> str:
    """The few numbers a reader looks at first, as tiles."""
    tiles = "".join(f"<div>{text(k)}<b>{text(v)}</b></div>" for k, v in items.items() if v is not None)
    return f'<div class="headline">{tiles}</div>'


def section(title: str, body: str) -> str:
    return f"<h2>{text(title)}</h2>\n{body}\n" if body else ""


def page(title: str, body: str) -> str:
    """A complete HTML5 document (inline CSS and JavaScript: no network, no CDN)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{text(title)}</title>\n<style>{_CSS}</style>\n<script>{_JS}</script>\n</head>\n"
            f"<body>\n<h1>{text(title)}</h1>\n{body}\n</body>\n</html>\n")
