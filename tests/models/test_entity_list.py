"""The company list is current and can be refreshed from a listing with one command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from finsentry.models.entities import DEFAULT_ALIASES, EntityExtractor
from finsentry.models.entity_list import company_key, read_rows

FINSENTRY = str(Path(sys.executable).with_name("finsentry"))

LISTING = """ticker,name,sector
XYZ,"Block, Inc.",Financials
AAPL,Apple Inc.,Technology
TGT,Target Corporation,Retail
"""

OLD_LIST = """ticker,name,aliases
SQ,Block,Block Inc;Square
AAPL,Apple,Apple Inc;Apple
ATVI,Activision Blizzard,Activision Blizzard;Activision
TSM,TSMC,TSMC;Taiwan Semiconductor
"""


def test_the_shipped_list_has_no_ticker_that_stopped_trading():
    tickers = {row.ticker for row in read_rows(DEFAULT_ALIASES)}
    assert {"SQ", "ATVI", "WBA", "X", "PARA"} & tickers == set()
    assert {"XYZ", "PSKY", "AAPL"} <= tickers
    extractor = EntityExtractor()
    assert extractor.extract("Square and Block Inc report earnings") == ["XYZ"]


def test_the_shipped_list_records_its_source_and_date():
    head = DEFAULT_ALIASES.read_text().splitlines()[:2]
    assert head[1].startswith("# Refreshed 20") and "from " in head[1]
    assert "finsentry models entities refresh" in head[1]


def test_company_names_match_without_legal_suffixes():
    assert company_key("Block") == company_key("Block, Inc.")
    assert company_key("Target") == company_key("Target Corporation")
    assert company_key("Paramount") != company_key("Paramount Skydance")


def run_refresh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FINSENTRY, "models", "entities", "refresh", *args], capture_output=True, text=True, timeout=120
    )


def test_refresh_moves_renamed_tickers_and_reports_the_rest(tmp_path):
    listing, companies = tmp_path / "listing.csv", tmp_path / "companies.csv"
    listing.write_text(LISTING)
    companies.write_text(OLD_LIST)
    result = run_refresh("--from", str(listing), "--list", str(companies))
    assert result.returncode == 0, result.stderr
    assert "SQ -> XYZ" in result.stdout and "ATVI" in result.stdout
    rows = {row.ticker: row for row in read_rows(companies)}
    assert set(rows) == {"XYZ", "AAPL", "ATVI", "TSM"}  # not in the listing: kept, reported
    assert rows["XYZ"].aliases == ["Block Inc", "Square"]  # curated aliases travel with the company
    head = companies.read_text().splitlines()[1]
    assert "listing.csv" in head and head.startswith("# Refreshed ")
    assert EntityExtractor(companies).extract("Square beats estimates") == ["XYZ"]

    result = run_refresh("--from", str(listing), "--list", str(companies), "--drop-missing", "--add-new")
    assert result.returncode == 0, result.stderr
    rows = {row.ticker: row for row in read_rows(companies)}
    assert set(rows) == {"XYZ", "AAPL", "TGT"}
    assert rows["TGT"].aliases == ["Target Corporation"]  # the full name only, never "Target"


def test_dry_run_writes_nothing_and_a_bad_listing_is_an_error(tmp_path):
    listing, companies = tmp_path / "listing.csv", tmp_path / "companies.csv"
    listing.write_text(LISTING)
    companies.write_text(OLD_LIST)
    result = run_refresh("--from", str(listing), "--list", str(companies), "--dry-run")
    assert result.returncode == 0 and "SQ -> XYZ" in result.stdout
    assert companies.read_text() == OLD_LIST
    listing.write_text("code,label\nXYZ,Block\n")
    result = run_refresh("--from", str(listing), "--list", str(companies))
    assert result.returncode == 2 and "ticker" in result.stderr
    assert companies.read_text() == OLD_LIST


def test_an_unwritable_list_is_a_clear_error(tmp_path, monkeypatch):
    """The shipped list inside an installed (read-only) package: no traceback, a way out."""
    from typer.testing import CliRunner

    from finsentry.cli.training import app

    listing, companies = tmp_path / "listing.csv", tmp_path / "companies.csv"
    listing.write_text(LISTING)
    companies.write_text(OLD_LIST)

    def read_only(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", read_only)
    result = CliRunner().invoke(
        app, ["models", "entities", "refresh", "--from", str(listing), "--list", str(companies)]
    )
    assert result.exit_code == 2, result.output
    assert "FINSENTRY_ENTITY_ALIASES" in result.output
    assert not isinstance(result.exception, PermissionError)
    assert companies.read_text() == OLD_LIST
