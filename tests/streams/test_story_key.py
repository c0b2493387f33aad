"""Copies of one story share a story key (the partition key of docs.valid), whatever tags
the outlets put around the headline; different stories do not."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from finsentry.ingest.samples import build_demo
from finsentry.records import story_headline, story_key

HEADLINE = "Oil prices slump as OPEC talks collapse in Vienna"
LONG = "Oil prices slump to a six month low as OPEC talks collapse in Vienna without any output deal"


@pytest.mark.parametrize(
    "copy",
    [
        "BREAKING: " + HEADLINE,
        "Breaking News - " + HEADLINE,
        "UPDATE 1-" + HEADLINE,
        "RPT-UPDATE 2-" + HEADLINE,
        "EXCLUSIVE: " + HEADLINE,
        HEADLINE + " - Reuters",
        HEADLINE + " (Bloomberg)",
        HEADLINE + " [Reuters]",
        HEADLINE + " | Zero Hedge",
        HEADLINE + " — Financial Times",
        HEADLINE + " - Reuters (wire-b)",
        "UPDATE 1-" + HEADLINE + " - Reuters",
        "Markets: " + HEADLINE + " via @desk",
        HEADLINE + " https://t.co/abc123",
        HEADLINE.upper(),
        HEADLINE.lower() + "!",
        '"' + HEADLINE + '."',
        "  " + HEADLINE + "  ",
    ],
)
def test_an_outlet_copy_gets_the_key_of_the_original(copy):
    assert story_key(copy, "body") == story_key(HEADLINE, "other body")


@pytest.mark.parametrize("copy", ["BREAKING: " + LONG, "UPDATE 3-" + LONG + " (Bloomberg)", LONG + " - Reuters"])
def test_a_long_headline_keeps_its_first_words_after_a_leading_tag(copy):
    assert story_key(copy, "") == story_key(LONG, "")


def test_without_a_title_the_text_is_keyed_the_same_way():
    assert story_key(None, "BREAKING: " + HEADLINE) == story_key(HEADLINE, "")


@pytest.mark.parametrize(
    "other",
    [
        "Oil prices surge as OPEC agrees output cut in Vienna",
        "Gas prices slump as OPEC talks collapse in Vienna",
        "Oil prices slump as OPEC talks collapse in Doha",
    ],
)
def test_different_stories_get_different_keys(other):
    assert story_key(other, "") != story_key(HEADLINE, "")


@pytest.mark.parametrize("title", ["UPDATE 1-Oil slumps", "Apple - Q3", "(Reuters)"])
def test_a_tag_is_kept_when_too_little_headline_would_remain(title):
    assert story_headline(title) == title


def test_only_the_opening_of_a_long_text_is_searched_for_tags():
    """The key is computed for every raw payload, hostile ones too: the tag search sees a
    bounded opening, never the whole text."""
    hostile = "a - " * 50_000 + "end"
    assert len(story_headline(hostile)) <= 400
    assert story_key(None, hostile) == story_key(None, "a - " * 100)


def test_every_syndicated_copy_in_the_demo_sample_shares_the_key_of_its_original():
    """build_demo.py syndicates a story as "<headline> (<outlet>)" from other outlets."""
    rows = []
    with gzip.open(build_demo.OUT, "rt", encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # the sample's deliberately malformed records
            if isinstance(row, dict) and row.get("title"):
                rows.append(row)
    originals = {row["title"]: row for row in rows}
    tagged = re.compile(r"^(.*) \((%s)\)$" % "|".join(map(re.escape, build_demo.SOURCES)), re.DOTALL)
    copies = [
        (row, originals[m.group(1)]) for row in rows if (m := tagged.match(row["title"])) and m.group(1) in originals
    ]
    assert len(copies) >= 40  # 48 in the shipped sample
    apart = [
        copy["title"]
        for copy, original in copies
        if story_key(copy["title"], copy["text"]) != story_key(original["title"], original["text"])
    ]
    assert apart == []
