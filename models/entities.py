"""Tickers a document mentions: cashtags ($AAPL) plus company names from an editable list.

The alias list (models/data/companies.csv: ticker, display name, the aliases that count,
separated by ";" — ambiguous words like "Target" only in a safe form, "Target Corp") is
matched case-sensitively on word boundaries, so "Apple cuts guidance" counts for AAPL but
"apple pie" does not. Point FINSENTRY_ENTITY_ALIASES at your own CSV to extend it. Lines
starting with '#' are comments (the list's source and date); `finsentry models entities
refresh --from SOURCE` brings a list up to date (models/entity_list.py).
Per-entity sentiment is the document's sentiment.
"""

from __future__ import annotations

import csv
import re
from functools import lru_cache
from pathlib import Path

DEFAULT_ALIASES = Path(__file__).resolve().parent / "data" / "companies.csv"

_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,5}(?:\.[A-Za-z])?)(?![\w])")


class EntityExtractor:
    def __init__(self, aliases_csv: Path = DEFAULT_ALIASES):
        self.alias_to_ticker: dict[str, str] = {}
        self.names: dict[str, str] = {}
        with open(aliases_csv, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(line for line in fh if not line.startswith("#")):  # '#': source, date
                ticker = row["ticker"].strip().upper()
                self.names[ticker] = row["name"].strip()
                for alias in row.get("aliases", "").split(";"):
                    alias = alias.strip()
                    if alias:
                        self.alias_to_ticker[alias] = ticker
        # Longest aliases first so "Bank of America" wins over a shorter overlapping name.
        ordered = sorted(self.alias_to_ticker, key=len, reverse=True)
        self._names = re.compile(r"(?<![\w&.-])(" + "|".join(re.escape(a) for a in ordered) + r")(?:'s)?(?![\w&-])")

    def extract(self, *texts: str | None) -> list[str]:
        found: dict[str, None] = {}
        for text in texts:
            if not text:
                continue
            for match in _CASHTAG.finditer(text):
                found.setdefault(match.group(1).upper(), None)
            for match in self._names.finditer(text):
                found.setdefault(self.alias_to_ticker[match.group(1)], None)
        return list(found)


@lru_cache(maxsize=4)
def extractor(path: str | None = None) -> EntityExtractor:
    return EntityExtractor(Path(path) if path else DEFAULT_ALIASES)


def extract_entities(*texts: str | None) -> list[str]:
    return extractor().extract(*texts)
