"""Reading the store never writes to it: `finsentry store count|search|export` (and
`prune --dry-run`) create no database file, schema, index template or index, work with
read-only credentials, and call a store that is not there an error."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from es_fault_proxy import ReadOnlyProxy
from store_helpers import store_settings
from test_store_cli import fill
from typer.testing import CliRunner

from finsentry.cli.store import app
from finsentry.store import StoreMissing, open_store, ops
from finsentry.store.base import SearchQuery

runner = CliRunner()


def test_sqlite_reads_of_a_missing_store_fail_and_create_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/typo/finsentry.db"
    for command in (["count"], ["search", "--text", "bank"], ["export"], ["prune", "--dry-run"]):
        result = runner.invoke(app, [*command, "--store", url])
        assert result.exit_code == 1, (command, result.output)
        assert "no SQLite store at" in result.output and "typo/finsentry.db" in result.output
    assert not (tmp_path / "typo").exists()


def test_sqlite_reads_refuse_a_file_that_is_not_a_store(tmp_path):
    (tmp_path / "empty.db").write_bytes(b"")
    result = runner.invoke(app, ["count", "--store", f"sqlite:///{tmp_path}/empty.db"])
    assert result.exit_code == 1 and "holds no finsentry store" in result.output
    assert (tmp_path / "empty.db").read_bytes() == b""


def test_sqlite_reads_leave_the_file_as_it_was(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    fill(url)
    before = (tmp_path / "store.db").read_bytes()
    assert runner.invoke(app, ["count", "--store", url]).stdout.strip() == "4"
    assert runner.invoke(app, ["prune", "--dry-run", "--store", url, "--days", "30"]).exit_code == 0
    assert runner.invoke(app, ["count", "--store", url]).stdout.strip() == "4"
    # The database file is untouched (SQLite's WAL index files may appear beside it).
    assert (tmp_path / "store.db").read_bytes() == before


def templates(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_index_template", timeout=10) as resp:
        return {t["name"] for t in json.load(resp).get("index_templates", [])}


def indices(url: str) -> set[str]:
    with urllib.request.urlopen(f"{url}/_cat/indices?format=json", timeout=10) as resp:
        return {row["index"] for row in json.load(resp)}


@pytest.fixture
def osmem_url(osmem_server, request):
    clone = osmem_server.clone()
    request.addfinalizer(clone.close)
    return clone.url


async def test_elasticsearch_reads_work_with_read_only_credentials(osmem_url):
    await asyncio.to_thread(fill, f"{osmem_url}?compat=opensearch")
    before_templates, before_indices = templates(osmem_url), indices(osmem_url)
    proxy = await ReadOnlyProxy(osmem_url).start()
    try:
        url, settings = f"{proxy.url}?compat=opensearch", store_settings()
        assert await ops.count(url, settings, SearchQuery()) == 4
        found = await ops.search(url, settings, SearchQuery(text="bank", limit=10))
        assert {d["id"] for d in found} == {"doc-00000", "doc-00001", "doc-00003"}

        class Sink:
            lines: list[str] = []

            def write(self, line: str) -> None:
                self.lines.append(line)

        assert await ops.export_jsonl(url, settings, None, Sink()) == 4
        report = await ops.prune(url, settings, days=30, alert_days=30, dry_run=True)
        assert (report.documents, report.alerts, len(report.days)) == (1, 1, 1)
        assert proxy.refused == []
    finally:
        await proxy.close()
    assert templates(osmem_url) == before_templates and indices(osmem_url) == before_indices
    assert await ops.count(f"{osmem_url}?compat=opensearch", store_settings(), None) == 4  # nothing pruned


async def test_elasticsearch_reads_of_a_missing_store_fail_and_create_nothing(osmem_url):
    url = f"{osmem_url}?compat=opensearch&prefix=typo"
    for call in (
        lambda: ops.count(url, store_settings(), None),
        lambda: ops.search(url, store_settings(), SearchQuery(text="bank")),
    ):
        with pytest.raises(StoreMissing, match="no finsentry store .* index prefix 'typo'"):
            await call()
    assert templates(osmem_url) == set() and indices(osmem_url) == set()


async def test_a_store_opened_for_reading_refuses_writes(tmp_path):
    from store_helpers import scored

    from finsentry.store import ReadOnlyStore

    url = f"sqlite:///{tmp_path}/store.db"
    async with open_store(url, store_settings()):
        pass
    async with open_store(url, store_settings(), read_only=True) as store:
        with pytest.raises(ReadOnlyStore):
            await store.upsert_many([scored(0)])
