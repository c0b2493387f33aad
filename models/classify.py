"""`finsentry classify`: text lines or JSONL on stdin → one JSONL prediction per line, in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Iterator

from tqdm.auto import tqdm

from finsentry.models.engine import Engine
from finsentry.models.entities import extract_entities


def _text_of(line: str) -> str:
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError:
            return stripped
        if isinstance(obj, dict):
            title, text = obj.get("title"), obj.get("text")
            return ". ".join(p for p in (title, text) if p) or ""
    return stripped


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
                    batch_size: int = 256, explain_words: bool = False, cache_dir: Path = Path("var/model-cache")) -> int:
    engine = Engine.load(model, backend=backend, cache_dir=cache_dir)
    n = 0
    with tqdm(unit="doc", desc="classify", file=__import__("sys").stderr, disable=None) as bar:
        for batch in _batches(iter(src), batch_size):
            texts = [_text_of(line) for line in batch]
            preds = engine.predict(texts)
            for text, pred in zip(texts, preds):
                record = {"text": text, **pred.as_record(), "entities": extract_entities(text)}
                if explain_words:
                    from finsentry.models.explain import explain

                    record["explanation"] = explain(engine, text)
                dst.write(json.dumps(record, ensure_ascii=False) + "\n")
            dst.flush()
            n += len(batch)
            bar.update(len(batch))
    return n
