"""`finsentry classify`: text lines or JSONL on stdin → one JSONL prediction per line, in order.

A line is scored as the pipeline scores a document: the model sees `model_input(title, text)`
(title + lead, normalised) and entities come from the title and text through the same alias
list (FINSENTRY_ENTITY_ALIASES when set)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Iterator

from tqdm.auto import tqdm

from finsentry.models.engine import Engine
from finsentry.models.entities import extractor
from finsentry.models.textnorm import model_input


def _document_of(line: str) -> tuple[str | None, str]:
    """(title, text) of one input line: a JSON object's fields, else the line itself."""
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError:
            return None, stripped
        if isinstance(obj, dict):
            title, text = obj.get("title"), obj.get("text")
            return (str(title) if title else None), (str(text) if text else "")
    return None, stripped


def _batches(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for line in lines:
        batch.append(line.rstrip("\n"))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def classify_stream(src: IO[str], dst: IO[str], model: Path | None = None, backend: str = "auto",
                    batch_size: int = 256, explain_words: bool = False, cache_dir: Path = Path("var/model-cache"),
                    entities_csv: Path | None = None, engine: Engine | None = None) -> int:
    engine = engine or Engine.load(model, backend=backend, cache_dir=cache_dir)
    entities = extractor(str(entities_csv) if entities_csv else None)
    n = 0
    with tqdm(unit="doc", desc="classify", file=__import__("sys").stderr, disable=None) as bar:
        for batch in _batches(iter(src), batch_size):
            docs = [_document_of(line) for line in batch]
            texts = [model_input(title, text) for title, text in docs]
            preds = engine.predict(texts)
            for (title, body), text, pred in zip(docs, texts, preds):
                record = {"text": text, **pred.as_record(), "entities": entities.extract(title, body)}
                if explain_words:
                    from finsentry.models.explain import explain

                    record["explanation"] = explain(engine, text)
                dst.write(json.dumps(record, ensure_ascii=False) + "\n")
            dst.flush()
            n += len(batch)
            bar.update(len(batch))
    return n
