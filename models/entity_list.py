"""Refreshing the company list (models/data/companies.csv) from a current listing.

A listing says which tickers trade now and under which name: a CSV with `ticker` (or
`symbol`) and `name` columns, or the US index members the PyPI package `pytickersymbols`
ships (`--from pytickersymbols`, when it is installed). A listing is not exhaustive (an
index leaves out ADRs and small caps), so the refresh is conservative:

- a ticker the listing has keeps its row and curated aliases;
- a ticker the listing lacks, whose company the listing has under another ticker (same
  name once legal suffixes are ignored: "Block" and "Block, Inc."), moves to that ticker
  with its aliases (SQ → XYZ);
- any other ticker the listing lacks is reported, and removed only with `drop_missing`;
- tickers only the listing has are added only with `add_new`, with the listing's full
  name as their one alias (a safe form: "Target Corporation", never "Target").

The file's first lines record the source and the date of the last refresh.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

PYTICKERSYMBOLS = "pytickersymbols"
US_INDICES = ("S&P 500", "NASDAQ 100", "DOW JONES", "S&P 600")
_SUFFIXES = {
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "plc",
    "ltd",
    "limited",
    "holdings",
    "holding",
    "group",
    "the",
    "sa",
    "ag",
    "nv",
    "se",
    "class",
    "a",
    "b",
    "c",
}


@dataclass
class Row:
    ticker: str
    name: str
    aliases: list[str]


@dataclass
class Refresh:
    rows: list[Row]
    renamed: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # not in the listing (kept unless dropped)
    dropped: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{len(self.rows)} companies"]
        if self.renamed:
            lines.append("renamed: " + ", ".join(f"{old} -> {new}" for old, new in self.renamed))
        if self.dropped:
            lines.append("removed (not in the listing): " + ", ".join(self.dropped))
        if self.missing:
            lines.append(
                "not in the listing, kept (check them; --drop-missing removes them): " + ", ".join(self.missing)
            )
        if self.added:
            lines.append(f"added: {len(self.added)}")
        return "\n".join(lines)


def company_key(name: str) -> str:
    words = re.findall(r"[a-z0-9]+", name.lower().replace("&", " and "))
    return " ".join(w for w in words if w not in _SUFFIXES)


def read_rows(path: Path) -> list[Row]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(line for line in fh if not line.startswith("#"))
        return [
            Row(
                r["ticker"].strip().upper(),
                r["name"].strip(),
                [a.strip() for a in (r.get("aliases") or "").split(";") if a.strip()],
            )
            for r in reader
        ]


def read_listing(source: str) -> dict[str, str]:
    """Ticker → company name, from a CSV file or `pytickersymbols`."""
    if source == PYTICKERSYMBOLS:
        return listing_from_pytickersymbols()
    with open(source, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(line for line in fh if not line.startswith("#"))
        fields = {f.lower(): f for f in reader.fieldnames or []}
        ticker_col = fields.get("ticker") or fields.get("symbol")
        if not ticker_col or "name" not in fields:
            raise ValueError(f"{source}: a listing needs a `ticker` (or `symbol`) and a `name` column")
        return {r[ticker_col].strip().upper(): r[fields["name"]].strip() for r in reader if r[ticker_col].strip()}


def listing_from_pytickersymbols(indices: tuple[str, ...] = US_INDICES) -> dict[str, str]:
    try:
        from pytickersymbols import PyTickerSymbols
    except ImportError:
        raise ValueError("`--from pytickersymbols` needs that package: pip install pytickersymbols") from None
    symbols = PyTickerSymbols()
    listing: dict[str, str] = {}
    for index in indices:
        for stock in symbols.get_stocks_by_index(index):
            listing.setdefault(stock["symbol"].upper(), stock["name"])
    return listing


def refresh(rows: list[Row], listing: dict[str, str], *, drop_missing: bool = False, add_new: bool = False) -> Refresh:
    by_company: dict[str, list[str]] = {}
    for ticker, name in listing.items():
        by_company.setdefault(company_key(name), []).append(ticker)
    known = {row.ticker for row in rows}
    result = Refresh(rows=[])
    for row in rows:
        if row.ticker in listing:
            result.rows.append(row)
            continue
        successors = [t for t in by_company.get(company_key(row.name), []) if t not in known]
        if len(successors) == 1:
            result.renamed.append((row.ticker, successors[0]))
            known.add(successors[0])
            result.rows.append(Row(successors[0], row.name, row.aliases))
        elif drop_missing:
            result.dropped.append(row.ticker)
        else:
            result.missing.append(row.ticker)
            result.rows.append(row)
    if add_new:
        for ticker, name in sorted(listing.items()):
            if ticker not in known:
                result.added.append(ticker)
                result.rows.append(Row(ticker, name, [name]))
    return result


def render(rows: list[Row], source: str, when: date) -> str:
    out = io.StringIO()
    out.write(
        f"# Company list for entity extraction (models/entities.py).\n"
        f"# Refreshed {when.isoformat()} from {source}: finsentry models entities refresh --from SOURCE\n"
    )
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["ticker", "name", "aliases"])
    for row in rows:
        writer.writerow([row.ticker, row.name, ";".join(row.aliases)])
    return out.getvalue()
