"""File replay: reading JSONL/CSV, pacing, rebasing, and `finsentry ingest` on the real broker."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest
import typer
from ingest_helpers import read_topic
from typer.testing import CliRunner

from finsentry.cli.ingest import ingest_command
from finsentry.ingest.producer import DocumentProducer
from finsentry.ingest.replay import (
    Pacer,
    Rebaser,
    ReplayFormatError,
    pacing_schedule,
    read_csv,
    read_documents,
    read_jsonl,
    replay,
)
from finsentry.records import Document, parse_document
from finsentry.settings import get_settings

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def jsonl(*objects) -> bytes:
    return b"".join((o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n" for o in objects)


# --- pacing -------------------------------------------------------------------------------


def test_pacing_follows_gaps_divided_by_speed():
    stamps = [at(0), at(10), at(10), at(40), at(35), None, at(100)]
    assert pacing_schedule(stamps, speed=10) == [0, 1, 0, 3, 0, 0, 6]
    assert pacing_schedule(stamps, speed=0.5) == [0, 20, 0, 60, 0, 0, 120]


def test_pacing_is_anchored_so_publish_time_is_not_added():
    stamps = [at(0), at(10), at(10), at(40), at(35), None, at(100)]
    assert pacing_schedule(stamps, speed=10, work_s=0.5) == pytest.approx([0, 0.5, 0, 2.0, 0, 0, 4.5])


@pytest.mark.parametrize("speed", [0, None])
def test_no_speed_means_no_waiting(speed):
    assert pacing_schedule([at(0), at(3600), at(7200)], speed) == [0, 0, 0]


def test_negative_speed_is_refused():
    with pytest.raises(ValueError):
        Pacer(-1)


def test_replay_sleeps_the_schedule(settings):
    """replay() with a virtual clock: the sleeps it asks for are exactly the schedule."""
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    docs = [Document(source="s", text=f"t{i}", published_at=at(s)) for i, s in enumerate([0, 30, 30, 90])]
    lines = read_jsonl(io.BytesIO(jsonl(*[d.model_dump(mode="json") for d in docs])), 1000)
    with DocumentProducer(settings) as producer:
        summary = replay(lines, producer, speed=15, sleep=sleep, clock=lambda: now[0])
    assert slept == [2.0, 4.0]  # the zero waits are not slept
    assert summary.published == 4 and summary.failed == 0


def test_rebase_moves_the_first_document_to_now_and_keeps_gaps_and_ids():
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    rebase = Rebaser(now)
    docs = [
        Document(source="s", text="a", published_at=at(0)),
        Document(source="s", text="b"),
        Document(source="s", text="c", published_at=at(90)),
    ]
    shifted = [rebase(d) for d in docs]
    assert shifted[0].published_at == now
    assert shifted[1].published_at is None
    assert shifted[2].published_at == now + timedelta(seconds=90)
    assert [d.with_defaults().id for d in shifted] == [d.with_defaults().id for d in docs]


# --- reading ------------------------------------------------------------------------------


def test_jsonl_lines_are_documents_or_reasons_with_line_numbers():
    data = jsonl(
        {"source": "s", "text": "fine"},
        b"",
        b"{broken",
        {"source": "s", "text": ""},
        b"\xff\xfe",
        {"source": "s", "text": "ok", "rating": "bad"},
        ["not", "an", "object"],
    )
    lines = list(read_jsonl(io.BytesIO(data), 1000))
    assert [line.number for line in lines] == [1, 3, 4, 5, 6, 7]  # the blank line 2 is no document
    assert lines[0].ok and lines[0].doc.text == "fine"
    reasons = {line.number: line.reason for line in lines if not line.ok}
    assert reasons[3].startswith("malformed JSON")
    assert "text is empty" in reasons[4]
    assert "UTF-8" in reasons[5]
    assert reasons[6].startswith("rating")
    assert "JSON object" in reasons[7]
    assert lines[1].raw == b"{broken"


def test_text_over_the_limit_is_a_bad_line():
    (line,) = read_jsonl(io.BytesIO(jsonl({"source": "s", "text": "x" * 50})), max_text_bytes=10)
    assert not line.ok and "over the limit" in line.reason


def test_csv_columns_are_document_fields():
    data = (
        "\ufeffsource,kind,title,text,published_at,rating,meta\n"
        'app,review,Great,"Fast, cheap ""app""",2024-05-01T09:30:00Z,4.5,"{""author"": ""ann""}"\n'
        "app,review,,needs more,,,\n"
        "app,review,,,,,\n"
        "app,review,x,y,,,{oops\n"
    ).encode()
    lines = list(read_csv(io.BytesIO(data), 1000))
    first, second, empty, bad_meta = lines
    assert first.doc.text == 'Fast, cheap "app"' and first.doc.rating == 4.5
    assert first.doc.meta == {"author": "ann"} and first.doc.published_at == T0
    assert second.doc.title is None and second.doc.published_at is None
    assert not empty.ok and "text" in empty.reason and empty.number == 4
    assert not bad_meta.ok and bad_meta.reason.startswith("meta")
    # what the worker receives for a good row parses to the same document
    assert parse_document(first.raw, 1000) == first.doc


def test_csv_with_unknown_column_is_refused_as_a_whole():
    with pytest.raises(ReplayFormatError, match="unknown CSV column"):
        list(read_csv(io.BytesIO(b"source,text,colour\ns,t,red\n"), 1000))


def test_csv_row_with_extra_cells_or_bad_bytes_is_a_bad_line():
    data = b"source,text\ns,one,two\ns,\xff\xfe\ns,fine\n"
    lines = list(read_csv(io.BytesIO(data), 1000))
    assert "more than the header" in lines[0].reason
    assert "UTF-8" in lines[1].reason and b"\xff\xfe" in lines[1].raw
    assert lines[2].doc.text == "fine"


def test_format_is_detected_from_name_or_first_byte():
    as_jsonl = jsonl({"source": "s", "text": "j"})
    assert next(read_documents(io.BytesIO(as_jsonl))).doc.text == "j"
    assert next(read_documents(io.BytesIO(b"source,text\ns,c\n"))).doc.text == "c"
    assert next(read_documents(io.BytesIO(b"source,text\ns,c\n"), name="x.csv")).doc.text == "c"


# --- the command --------------------------------------------------------------------------


@pytest.fixture
def cli():
    app = typer.Typer()
    app.command("ingest")(ingest_command)
    app.command("noop")(lambda: None)  # keeps `ingest` a named subcommand
    get_settings.cache_clear()
    yield app
    get_settings.cache_clear()


def test_ingest_publishes_a_jsonl_file_and_reports_counts(cli, settings, broker, tmp_path):
    good = [{"source": "wire", "title": f"Headline {i}", "text": f"Story {i}"} for i in range(5)]
    path = tmp_path / "docs.jsonl"
    path.write_bytes(jsonl(good[0], good[1], b"{oops", good[2], {"source": "wire"}, good[3], good[4]))
    topic = settings.topic("docs.raw")
    result = CliRunner().invoke(
        cli, ["ingest", str(path), "--broker", broker.address, "--embedded", "--topic", topic, "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert (
        result.stdout.strip().splitlines()[-1]
        == "published 7, failed 0 (2 malformed line(s) sent raw to be dead-lettered)"
    )
    records = read_topic(broker.address, topic)
    assert len(records) == 7
    texts = sorted(json.loads(r.value)["text"] for r in records if r.value.startswith(b'{"id"'))
    assert texts == [f"Story {i}" for i in range(5)]
    assert b"{oops" in {r.value for r in records}


def test_ingest_strict_stops_at_the_first_bad_line(cli, settings, broker, tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(
        jsonl(
            {"source": "s", "text": "one"},
            {"source": "s", "text": "two"},
            {"source": "s"},
            {"source": "s", "text": "four"},
        )
    )
    topic = settings.topic("docs.raw")
    result = CliRunner().invoke(
        cli,
        ["ingest", str(path), "--broker", broker.address, "--embedded", "--topic", topic, "--strict", "--no-progress"],
    )
    assert result.exit_code == 2
    assert "line 3: text: Field required" in result.stderr
    assert sorted(json.loads(r.value)["text"] for r in read_topic(broker.address, topic)) == ["one", "two"]


def test_ingest_reads_csv_from_stdin(cli, settings, broker):
    topic = settings.topic("docs.raw")
    csv_text = "source,kind,text,rating\napp,review,Love it,5\napp,review,Crashes daily,1\n"
    result = CliRunner().invoke(
        cli,
        ["ingest", "-", "--broker", broker.address, "--embedded", "--topic", topic, "--no-progress"],
        input=csv_text,
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "published 2, failed 0"
    ratings = sorted(json.loads(r.value)["rating"] for r in read_topic(broker.address, topic))
    assert ratings == [1.0, 5.0]


def test_ingest_refuses_a_missing_file(cli, tmp_path):
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "nope.jsonl"), "--no-progress"])
    assert result.exit_code == 2 and "no such file" in result.stderr
