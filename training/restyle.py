"""Rewrite a finance tweet as a plain news sentence.

The training sets are tweets from news accounts; the model is used on wire headlines,
press releases and reviews. `restyle` removes what only tweets carry (links, "RT", cashtags
and bare tickers, trailing hashtags, @-handles, emoji, "…" cut-offs, "- Source" bylines),
and ends the text as a sentence. Casing is left alone: the model's tokenizer is uncased, and
lower-casing Title Case headlines would also lower-case the names in them. It returns
None for a tweet that has no news sentence left (a retweet, a list of tickers, a fragment).

Used twice: to build the out-of-style dev slice (training/devslice.py) and, as an option of
a run, to add restyled copies of training examples (TrainArguments.style_augment).
"""

from __future__ import annotations

import html
import re
import unicodedata

MIN_WORDS = 5

_RT = re.compile(r"^\s*RT\b", re.IGNORECASE)
_URL = re.compile(r"(?:https?://|www\.)\S*", re.IGNORECASE)
_PAREN_TICKER = re.compile(r"\s*\((?:[A-Z]{1,8}:\s*)?\$?[A-Z]{1,5}(?:\.[A-Z]{1,2})?\)")
_PAREN_VIA = re.compile(r"\s*\(via @?\w+\)", re.IGNORECASE)
_CASHTAG = re.compile(r"\$[A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?\b")
_LEADING_TICKERS = re.compile(r"^(?:\s*\$[A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?\b[\s,:-]*)+")
# a ticker label left by normalisation ("$AAPL: ..." → "AAPL: ..."), not a place name
_TICKER_LABEL = re.compile(r"^(?!(?:US|UK|EU|ECB|FED|IMF|GDP|CEO|IPO)\b)[A-Z]{2,5}(?:\.[A-Z]{1,2})?:\s+")
_TRAILING_TAGS = re.compile(r"(?:\s*(?:#\w+|\$\w+|@\w+|…|\.\.\.|[|,]))+\s*$")
_TAG = re.compile(r"[#@](\w+)")
_CUT = re.compile(r"\s*\S*(?:…|\.\.\.)\s*$")
_BYLINE = re.compile(r"\s+(?:[-|–—]|via)\s+(?:[A-Z][\w.&']*(?:\s+|$)){1,3}$")
_MOJIBAKE = re.compile(r"â€|Ã.|Â")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’.&-]*")


def _is_symbol(ch: str) -> bool:
    return unicodedata.category(ch) in ("So", "Sk", "Cs", "Co") or 0x1F000 <= ord(ch) <= 0x1FAFF or ch == "\ufe0f"


def restyle(text: str) -> str | None:
    """The tweet as a news sentence, or None when nothing news-like is left."""
    text = unicodedata.normalize("NFKC", html.unescape(text or ""))
    if _RT.match(text) or _MOJIBAKE.search(text):
        return None
    text = "".join(" " if _is_symbol(c) else c for c in text)
    text = _SPACE.sub(" ", _URL.sub(" ", text)).strip()
    text = _TRAILING_TAGS.sub("", text)
    text = _CUT.sub("", text) if text.endswith(("…", "...")) else text
    text = _PAREN_VIA.sub("", _PAREN_TICKER.sub("", text))
    text = _TICKER_LABEL.sub("", _LEADING_TICKERS.sub("", text))
    text = _CASHTAG.sub(" ", text)
    text = _TAG.sub(r"\1", text)
    text = _BYLINE.sub("", text)
    text = _SPACE.sub(" ", text).strip(" -:|,;")
    if len(_WORD.findall(text)) < MIN_WORDS:
        return None
    if not text.endswith((".", "!", "?", '"', "”")):
        text += "."
    return text


_SENTENCE_END = re.compile(r"(?<=[a-z0-9%)][.!?])\s+(?=[A-Z])")


def first_sentence(text: str) -> str | None:
    """The first sentence of a multi-sentence text (None for one sentence): headlines and
    press releases state their point first."""
    parts = _SENTENCE_END.split(text, maxsplit=1)
    if len(parts) < 2 or len(_WORD.findall(parts[0])) < MIN_WORDS:
        return None
    return parts[0]
