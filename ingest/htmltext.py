"""HTML fragments (feed summaries, review bodies) as plain text, with the standard library."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = {
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "blockquote",
    "section",
    "article",
    "header",
    "footer",
    "pre",
    "table",
}
_SKIP = {"script", "style", "noscript", "template"}
_SPACES = re.compile(r"[ \t\f\v\r]+")
_LINES = re.compile(r"\s*\n\s*")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP:
            self._skipping += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skipping:
            self.parts.append(data)


def html_to_text(fragment: str | None) -> str:
    """Visible text; block elements become line breaks, runs of spaces one space."""
    if not fragment:
        return ""
    if "<" not in fragment and "&" not in fragment:
        return _LINES.sub("\n", _SPACES.sub(" ", fragment)).strip()
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    return _LINES.sub("\n", _SPACES.sub(" ", "".join(parser.parts))).strip()
