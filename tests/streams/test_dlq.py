"""`finsentry dlq` and `finsentry dlq redrive` on the embedded broker with real workers: a
document dead-lettered under one configuration is redriven after the fix and stored once,
however often it is redriven."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timezone

import pytest

from finsentry.ingest.producer import DocumentProducer, with_stable_id
from finsentry.records import DeadLetter, Document
from finsentry.settings import Settings
from finsentry.store import open_store
from finsentry.streams.dlq import LetterFilter, NotRedrivable, plan_redrive, read_letters, select
from finsentry.streams.process import WorkerProcess, settings_env

FINSENTRY = [sys.executable, "-m", "finsentry.cli"]


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
    env.update(
        settings_env(
            broker=settings.broker,
            broker_embedded=True,
            topic_prefix=settings.topic_prefix,
            app_id=settings.app_id,
            log_level="WARNING",
        )
    )
    return subprocess.run(FINSENTRY + list(args), capture_output=True, text=True, timeout=180, env=env)


def test_letters_are_listed_filtered_and_planned_without_a_worker(broker, make_settings):
    prefix = f"dlq-{uuid.uuid4().hex[:8]}."
    s = make_settings(broker=broker.url, broker_embedded=True, topic_prefix=prefix, app_id=f"fs-{prefix}")
    letters = [
        DeadLetter.of(
            b'{"source": "x", "text": "cut',
            "malformed JSON: Unterminated string",
            "validate",
            topic=s.topic("docs.raw"),
            partition=0,
            offset=3,
        ),
        DeadLetter.of(b"\xff\xfe", "payload is not valid UTF-8 (byte 0)", "validate", topic=s.topic("docs.raw")),
        DeadLetter.of(b'{"scope": "topic"}', "invalid observation: Field required", "detect"),
    ]
    with DocumentProducer(s, topic=s.topic("dlq")) as producer:
        for letter in letters:
            producer.publish_raw(letter.model_dump_json().encode()).get(timeout=60)
        producer.publish_raw(b"not a letter").get(timeout=60)
    found = list(read_letters(s))
    assert [item.letter.stage if item.letter else None for item in found].count("validate") == 2
    assert sum(item.letter is None for item in found) == 1
    assert [i.letter.reason for i in select(found, LetterFilter(reason="UTF-8"))] == [letters[1].reason]
    utf8 = select(found, LetterFilter(reason="utf-8"))[0]
    assert utf8.preview() == "<2 bytes, not UTF-8>" and plan_redrive(s, utf8).value == b"\xff\xfe"
    with pytest.raises(NotRedrivable, match="detect"):
        plan_redrive(s, select(found, LetterFilter(stage="detect"))[0])
    with pytest.raises(NotRedrivable, match="not a dead letter"):
        plan_redrive(s, next(item for item in found if item.letter is None))

    listed = cli(s, "dlq", "list", "--json", "--stage", "validate")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["reason"] for r in rows] == [letters[0].reason, letters[1].reason]
    assert rows[0]["preview"] == '{"source": "x", "text": "cut' and rows[0]["input_topic"] == s.topic("docs.raw")
    table = cli(s, "dlq")
    assert table.returncode == 0 and "malformed JSON" in table.stdout and "invalid observation" in table.stdout
    refused = cli(s, "dlq", "redrive", "--stage", "detect", "--dry-run")
    assert refused.returncode == 1 and "not redriven" in refused.stderr
    assert cli(s, "dlq", "redrive").returncode == 2  # no selection: refused, nothing sent


def big_document() -> Document:
    return Document(
        source="wire",
        title="Regulator fines bank over reporting failures",
        text="Regulator fines bank over reporting failures. " + "The details of the case follow. " * 30,
        url="https://example.test/fine",
        published_at=datetime(2026, 3, 2, 14, tzinfo=timezone.utc),
    )


def small_document() -> Document:
    return Document(
        source="wire",
        title="Fed holds rates steady",
        text="Fed holds rates steady, signals patience.",
        url="https://example.test/fed",
        published_at=datetime(2026, 3, 2, 14, 1, tzinfo=timezone.utc),
    )


async def stored(settings: Settings, doc_id: str | None = None):
    async with open_store(settings.store, settings, read_only=True) as store:
        return (await store.count(), await store.get(doc_id) if doc_id else None)


def assert_json_log(worker: WorkerProcess) -> None:
    """FINSENTRY_LOG_JSON=true: every line the worker wrote is JSON (no progress bar)."""
    lines = [line for line in worker.log_file.read_text().replace("\r", "\n").splitlines() if line.strip()]
    assert lines
    for line in lines:
        json.loads(line)


@pytest.mark.slow
def test_a_redriven_letter_is_stored_once_after_the_fix(broker, make_settings, tmp_path):
    prefix = f"redrive-{uuid.uuid4().hex[:8]}."
    s = make_settings(broker=broker.url, broker_embedded=True, topic_prefix=prefix, app_id=f"fs-{prefix}")
    common = dict(
        broker=s.broker,
        broker_embedded=True,
        topic_prefix=prefix,
        app_id=s.app_id,
        store=s.store,
        data_dir=s.data_dir,
        outbox_path=s.outbox_path,
        registry_dir=s.registry_dir,
        model_cache_dir=s.model_cache_dir,
        backend="torch",
        broker_session_timeout_s=6,
        broker_heartbeat_s=0.5,
        web_port=s.web_port,
        log_json=True,
        log_level="INFO",
    )
    big = with_stable_id(big_document())

    # Before the fix: a text limit too small for the big document.
    with WorkerProcess(settings_env(**common, max_text_bytes=300), tmp_path / "before.log", s.web_port) as worker:
        with DocumentProducer(s) as producer:
            producer.publish(big_document())
            producer.publish(small_document())
        worker.wait_for(
            lambda: asyncio.run(stored(s))[0] == 1 and list(read_letters(s)),
            timeout=180,
            what="one stored, one dead-lettered",
        )
    assert_json_log(worker)
    [letter] = list(read_letters(s))
    assert letter.letter.stage == "validate" and "over the limit of 300" in letter.letter.reason

    listed = cli(s, "dlq", "list", "--json", "--reason", "over the limit")
    assert [json.loads(line)["letter"] for line in listed.stdout.splitlines()] == [letter.address]

    # After the fix (the default limit), redrive it: stored once, under its own id.
    with WorkerProcess(settings_env(**common), tmp_path / "after.log", s.web_port) as worker:
        out = cli(s, "dlq", "redrive", "--reason", "over the limit")
        assert out.returncode == 0, out.stderr
        assert f"redriven {letter.address} (validate) → {s.topic('docs.raw')}" in out.stdout
        worker.wait_for(lambda: asyncio.run(stored(s, big.id))[1] is not None, timeout=180, what="redriven stored")
        count, doc = asyncio.run(stored(s, big.id))
        assert count == 2 and doc["text"] == big.text
        assert doc["published_at"].startswith("2026-03-02T14:00:00")

        # Redriven again: the worker stores it again, onto the same record.
        before = worker.metrics().get("finsentry_documents_stored_total", 0)
        again = cli(s, "dlq", "redrive", "--letter", letter.address)
        assert again.returncode == 0, again.stderr
        worker.wait_for(
            lambda: worker.metrics().get("finsentry_documents_stored_total", 0) > before,
            timeout=180,
            what="second redrive stored",
        )
        assert asyncio.run(stored(s))[0] == 2
        assert len(list(read_letters(s))) == 1  # nothing new was dead-lettered
    assert_json_log(worker)


def test_letters_are_selected_oldest_first_across_partitions():
    """Letters are keyed, so reading partition by partition is not time order; the listing
    and its limit go by the time each was dead-lettered."""
    from datetime import timedelta

    from finsentry.streams.dlq import Letter, LetterFilter, select

    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
    read = [
        Letter(
            partition=p,
            offset=o,
            letter=DeadLetter.of(b"{", f"letter {minutes}", "validate", at=t0 + timedelta(minutes=minutes)),
        )
        for p, o, minutes in [(0, 0, 30), (0, 1, 40), (1, 0, 10), (2, 0, 20)]
    ]
    read.append(Letter(partition=3, offset=0, letter=None, problem="not a dead letter"))
    assert [i.letter.reason if i.letter else None for i in select(read, LetterFilter())] == [
        "letter 10",
        "letter 20",
        "letter 30",
        "letter 40",
        None,
    ]
    assert [i.letter.reason for i in select(read, LetterFilter(), limit=2)] == ["letter 10", "letter 20"]
