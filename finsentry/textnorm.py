"""Input normalisation, applied identically in training and serving.

The training data are tweets from news accounts; production text is also formal news and
reviews. Stripping tweet artefacts (links, '$' on cashtags, '@', HTML entities, RT
prefixes) keeps the model from keying on style instead of content. Casing is left to the
uncased tokenizer.
"""

from __future__ import annotations

import html
import re
import unicodedata

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_RT = re.compile(r"^\s*RT\s+@\w+:?\s*", re.IGNORECASE)
_CASHTAG = re.compile(r"\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)\b")
_MENTION = re.compile(r"@(\w+)")
_HASHTAG = re.compile(r"#(\w+)")
_SPACE = re.compile(r"\s+")
_CONTROL = {c: " " for c in range(32) if chr(c) not in "\t\n\r"}


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = html.unescape(text).translate(_CONTROL)
    text = _RT.sub("", text)
    text = _URL.sub(" ", text)
    text = _CASHTAG.sub(r"\1", text)
    text = _MENTION.sub(r"\1", text)
    text = _HASHTAG.sub(r"\1", text)
    text = _SPACE.sub(" ", text).strip(" -:|")
    return text.strip()


def model_input(title: str | None, text: str | None, max_chars: int = 1200) -> str:
    """The string the model sees for one document: title + lead.

    Long articles are cut to their title and first ``max_chars`` characters of body (the
    lead), where financial news states its point; the model card says so.
    """
    title = (title or "").strip()
    body = (text or "").strip()
    if title and body.startswith(title):
        body = body[len(title) :].lstrip(" .:-\n")
    if len(body) > max_chars:
        cut = body.rfind(" ", 0, max_chars)
        body = body[: cut if cut > max_chars // 2 else max_chars]
    joined = f"{title}. {body}" if title and body else (title or body)
    return normalize(joined)
