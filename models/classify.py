"""`finsentry classify`: text lines or JSONL on stdin → one JSONL prediction per line, in order.

A line is scored as the pipeline scores a document: the model sees `model_input(title, text)`
(title + lead, normalised) and entities come from the title and text through the same alias
list (FINSENTRY_ENTITY_ALIASES when set)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Callable, Iterator

from tqdm.auto import tqdm

from finsentry.errors import FinsentryError
from finsentry.models.engine import Engine
from finsentry.models.entities import extractor
from finsentry.models.explain import explain
from finsentry.textnorm import model_input


class MalformedLine(FinsentryError, ValueError):
    def __init__(self, number: int, reason: str):
        super().__init__(f"line {number}: {reason}")
        self.number = number


def _document_of(line: str) -> tuple[str | None, str]:
    """(title, text) of one input line: a JSON object's fields, else the line itself;
    ValueError(reason) for a line that looks like JSON but is not a usable document."""
    stripped = line.strip()
    if not stripped.startswith(("{", "[")):
        return None, stripped
    try:
        obj = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON: {exc.msg} (column {exc.colno})") from None
    except (RecursionError, ValueError) as exc:
        raise ValueError(f"malformed JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f'a JSON line must be an object with "text", got {type(obj).__name__}')
    title, text = obj.get("title"), obj.get("text")
    for name, value in (("title", title), ("text", text)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f'"{name}" must be a string, got {type(value).__name__}')
    if not (text or "").strip() and not (title or "").strip():
        raise ValueError('no "text" (or "title") to score')
    return title or None, text or ""


def _batches(
    lines: Iterator[str], size: int, on_error: Callable[[MalformedLine], None], strict: bool
) -> Iterator[list[tuple[str | None, str]]]:
    """Documents in batches; each malformed line goes to `on_error` (and, when `strict`,
    ends the input there, after the documents before it)."""
    batch: list[tuple[str | None, str]] = []
    for number, line in enumerate(lines, start=1):
        try:
            batch.append(_document_of(line.rstrip("\n")))
        except ValueError as exc:
            on_error(MalformedLine(number, str(exc)))
            if strict:
                break
            continue
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def classify_stream(
    src: IO[str],
    dst: IO[str],
    model: Path | None = None,
    backend: str = "auto",
    batch_size: int = 256,
    explain_words: bool = False,
    cache_dir: Path = Path("var/model-cache"),
    entities_csv: Path | None = None,
    engine: Engine | None = None,
    on_error: Callable[[MalformedLine], None] | None = None,
    strict: bool = False,
) -> int:
    """Score every line; returns how many were scored. Malformed lines are not scored: each
    goes to `on_error` (default: raise it)."""

    def raise_it(error: MalformedLine) -> None:
        raise error

    engine = engine or Engine.load(model, backend=backend, cache_dir=cache_dir)
    entities = extractor(str(entities_csv) if entities_csv else None)
    n = 0
    with tqdm(unit="doc", desc="classify", file=__import__("sys").stderr, disable=None) as bar:
        for docs in _batches(iter(src), batch_size, on_error or raise_it, strict):
            texts = [model_input(title, text) for title, text in docs]
            preds = engine.predict(texts)
            for (title, body), text, pred in zip(docs, texts, preds):
                record = {"text": text, **pred.as_record(), "entities": entities.extract(title, body)}
                if explain_words:
                    record["explanation"] = explain(engine, text)
                dst.write(json.dumps(record, ensure_ascii=False) + "\n")
            dst.flush()
            n += len(docs)
            bar.update(len(docs))
    return n
