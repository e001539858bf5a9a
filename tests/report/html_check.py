"""A strict-enough HTML check for the reports: balanced tags, no broken relative link, images embedded."""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote_to_bytes

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class PageCheck(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.links: list[str] = []
        self.images: list[dict[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_page(path: Path) -> PageCheck:
    """Parse ``path`` (must be UTF-8); assert balanced tags, every relative link's file exists, every image
    is a data URI, and the page has the doctype."""
    raw = Path(path).read_bytes()
    page = raw.decode("utf-8")  # raises on invalid UTF-8
    assert page.startswith("<!DOCTYPE html>")
    parser = PageCheck()
    parser.feed(page)
    parser.close()
    assert not parser.errors, parser.errors[:5]
    assert not parser.stack, parser.stack
    for link in parser.links:
        if link.startswith(("http:", "https:", "data:", "#")):
            continue
        target = Path(path).parent / os.fsdecode(unquote_to_bytes(link))
        assert target.exists(), f"broken link {link!r} in {path}"
    for image in parser.images:
        assert image["src"].startswith("data:image/png;base64,"), image["src"][:40]
        assert image.get("alt") is not None
    return parser
