"""Index names, the index template and the explicit mappings of the Elasticsearch store.

Documents go to one index per UTC day of `published_at` (`<prefix>-docs-YYYY.MM.DD`),
all behind the alias `<prefix>-docs` that reads and Grafana use. Daily indices make
retention a cheap index deletion and keep a re-delivered document in the index its first
copy went to, since the day is a function of the document itself.

Mappings are explicit and the root is `dynamic: false`: a field nobody mapped is kept in
`_source` but not indexed, so a surprising record cannot grow the mapping. Only `meta`
(free-form scraper metadata) maps dynamically, which is why a meta value of a conflicting
type is the one content error a valid record can meet (it is dead-lettered with the reason).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

TEXT_ANALYZER = "finsentry_text"

# Words as the SQLite store (FTS5 unicode61) and shape.search_terms see them: runs of letters,
# digits and combining marks, anything else a separator ("don't" → don, t; "3.5" → 3, 5;
# "oil_price" → oil, price). The standard tokenizer would keep "don't" and "3.5" whole, so a
# search for "don" or "3" would find them on SQLite only. The char filter blanks every other
# character and the whitespace tokenizer splits there: the same words as a pattern tokenizer,
# and an analysis the in-memory test server applies as well. The template only shapes daily
# indices created after it is put: days indexed with an earlier analysis keep it until they
# are pruned (or reindexed).
ANALYSIS = {
    "char_filter": {
        "finsentry_non_word": {
            "type": "pattern_replace",
            "pattern": "[^\\p{L}\\p{N}\\p{M}]+",
            "replacement": " ",
        }
    },
    "analyzer": {
        TEXT_ANALYZER: {
            "type": "custom",
            "char_filter": ["finsentry_non_word"],
            "tokenizer": "whitespace",
            "filter": ["lowercase", "asciifolding"],  # "Crédit" matches "credit", as in the SQLite store
        }
    },
}


def _keyword(ignore_above: int = 1024) -> dict[str, Any]:
    return {"type": "keyword", "ignore_above": ignore_above}


def _text_with_keyword() -> dict[str, Any]:
    return {"type": "text", "analyzer": TEXT_ANALYZER, "fields": {"raw": _keyword(512)}}


DOCUMENT_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "date_detection": False,  # meta strings that look like dates stay strings
    "properties": {
        "id": _keyword(),
        "source": {
            "type": "keyword",
            "ignore_above": 256,
            "fields": {"text": {"type": "text", "analyzer": TEXT_ANALYZER}},
        },
        "kind": _keyword(),
        "title": _text_with_keyword(),
        "text": {"type": "text", "analyzer": TEXT_ANALYZER},
        "url": _keyword(4096),
        "published_at": {"type": "date"},
        "lang": _keyword(),
        "rating": {"type": "float"},
        "meta": {"type": "object", "dynamic": True},
        "ingested_at": {"type": "double"},  # epoch seconds, as in the record
        "scored_at": {"type": "double"},
        "stored_at": {"type": "date"},
        "sentiment": {
            "properties": {
                "label": _keyword(),
                "score": {"type": "double"},
                "probabilities": {
                    "properties": {
                        "negative": {"type": "float"},
                        "neutral": {"type": "float"},
                        "positive": {"type": "float"},
                    }
                },
            }
        },
        "topic": {"properties": {"label": _keyword(), "probability": {"type": "float"}}},
        "entities": _keyword(64),
        "model_version": _keyword(),
        "dup_of": _keyword(),
        "explanation": {"type": "object", "enabled": False},  # [word, weight] pairs: kept, not indexed
    },
}

_EVIDENCE_KEPT = {"type": "object", "enabled": False}

ALERT_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "id": _keyword(),
        "scope": _keyword(),
        "key": _keyword(),
        "severity": _keyword(),
        "status": _keyword(),
        "change": _keyword(),
        "method": _keyword(),
        "model_version": _keyword(),
        "update": {"type": "long"},
        "duplicates": {"type": "long"},
        "ended_at": {"type": "date"},
        "episode_start": {"type": "date"},
        "window_start": {"type": "date"},
        "window_end": {"type": "date"},
        "updated_at": {"type": "date"},
        "negative_share": {"type": "double"},
        "baseline": {"type": "double"},
        "statistic": {"type": "double"},
        "volume": {"type": "long"},
        "baseline_volume": {"type": "double"},
        "late_records": {"type": "long"},
        "evidence": _EVIDENCE_KEPT,
    },
}

LABEL_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "id": _keyword(),
        "doc_id": _keyword(),
        "sentiment": _keyword(),
        "topic": _keyword(),
        "analyst": _keyword(),
        "at": {"type": "date"},
        "text": {"type": "text"},
    },
}


class IndexNames:
    """Every name the store uses, from one prefix (several deployments can share a cluster)."""

    def __init__(self, prefix: str):
        if not prefix or prefix != prefix.lower() or any(c in prefix for c in ' ,"*\\<|>/?#:'):
            raise ValueError(f'index prefix {prefix!r} must be lowercase without spaces or , " * \\ < | > / ? # :')
        self.prefix = prefix
        self.docs_alias = f"{prefix}-docs"
        self.docs_pattern = f"{prefix}-docs-*"
        self.docs_template = f"{prefix}-docs"
        self.alerts = f"{prefix}-alerts"
        self.labels = f"{prefix}-labels"

    def daily(self, when: datetime) -> str:
        return f"{self.prefix}-docs-{when:%Y.%m.%d}"

    def day_of(self, index: str) -> datetime | None:
        """The day of a daily index name, or None for any other name."""
        head = f"{self.prefix}-docs-"
        if not index.startswith(head):
            return None
        suffix = index[len(head) :]
        try:
            return datetime.strptime(suffix, "%Y.%m.%d").replace(tzinfo=timezone.utc)
        except ValueError:
            return None


def docs_template(
    names: IndexNames, shards: int, replicas: int, extra_settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Arguments of indices.put_index_template for the daily document indices
    (`extra_settings`: the retention policy's, see es_retention)."""
    settings = {"number_of_shards": shards, "number_of_replicas": replicas, "analysis": ANALYSIS}
    return {
        "index_patterns": [names.docs_pattern],
        "priority": 200,  # above catch-all templates a cluster may have
        "template": {
            "settings": settings | (extra_settings or {}),
            "mappings": DOCUMENT_MAPPING,
            "aliases": {names.docs_alias: {}},
        },
        "meta": {"managed_by": "finsentry"},
    }


def single_index(mapping: dict[str, Any], replicas: int) -> dict[str, Any]:
    """Settings and mappings of the alerts and labels indices (small: one shard)."""
    return {"settings": {"number_of_shards": 1, "number_of_replicas": replicas}, "mappings": mapping}
