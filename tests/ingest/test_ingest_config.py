"""The source list: loading, validation messages, building sources; the shipped example."""

from __future__ import annotations

from pathlib import Path

import pytest

from finsentry.ingest.config import ConfigError, build_source, load_sources
from finsentry.ingest.feeds import FeedSource
from finsentry.ingest.fetcher import PoliteFetcher
from finsentry.ingest.replay import ReplaySource
from finsentry.ingest.reviews import ReviewSource
from finsentry.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "sources.example.yml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yml"
    path.write_text(text)
    return path


def test_the_shipped_example_loads_and_builds():
    configs = load_sources(EXAMPLE)
    assert [c.name for c in configs] == ["example-markets", "example-filings", "example-bank-app"]  # enabled only
    assert [c.interval for c in configs] == [300, 900, 3600]
    fetcher = PoliteFetcher(Settings(_env_file=None))
    built = [build_source(c, fetcher, Settings(_env_file=None)) for c in configs]
    assert [type(s) for s in built] == [FeedSource, FeedSource, ReviewSource]
    assert built[0].options.full_text is False and built[1].options.kind == "filing"


def test_a_bare_list_and_replay_paths_relative_to_the_file(tmp_path):
    path = write(tmp_path, "- {type: replay, name: file, url: data/x.jsonl, interval: 30s, options: {speed: 2}}\n")
    (config,) = load_sources(path)
    source = build_source(config, None, Settings(_env_file=None))
    assert isinstance(source, ReplaySource)
    assert source.path == tmp_path / "data" / "x.jsonl" and source.options.speed == 2 and source.interval_s == 30


@pytest.mark.parametrize(
    "text, message",
    [
        ("sources:\n - {type: rss, name: a, url: u, options: {full_txt: true}}\n", "source 'a' options: full_txt"),
        ("sources:\n - {type: gopher, name: a, url: u}\n", "type"),
        ("sources:\n - {type: rss, name: a, url: u}\n - {type: rss, name: a, url: v}\n", "repeated: a"),
        ("sources:\n - {type: rss, name: 'has space', url: u}\n", "name"),
        ("sources:\n - {type: rss, name: a, url: u, interval: soon}\n", "not a duration"),
        ("sources:\n - {type: reviews, name: r, url: u, options: {fields: {title: t}}}\n", "'text' field is required"),
        ("sources: [\n", "not valid YAML"),
        ("just a string\n", "expected a `sources:` list"),
    ],
)
def test_mistakes_are_reported_with_where_and_why(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_sources(write(tmp_path, text))


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_sources(tmp_path / "nope.yml")
