"""Near-duplicate stories: syndicated copies with small edits are found, different stories
(on the same company, or templated on another) are not."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from finsentry.alerting.dedup import NearDuplicateIndex

STORY = "Oil prices slump 6% as OPEC talks collapse and US crude inventories swell to a record high"
T0 = 1_767_000_000.0


@pytest.fixture
def index() -> NearDuplicateIndex:
    return NearDuplicateIndex(threshold=0.8, horizon_s=6 * 3600)


@pytest.mark.parametrize(
    "copy",
    [
        "BREAKING: " + STORY,
        STORY + " - Reuters",
        STORY + " https://t.co/Xy12ab",
        "RT @energydesk: " + STORY + " via @markets",
        "$XOM " + STORY + " (wire-b)",
        STORY.replace("slump", "slide"),
        STORY.upper(),
        "Oil Prices Slump 6% As OPEC Talks Collapse And US Crude Inventories Swell To A Record High",
        STORY + ". Analysts expect further declines next week.",
    ],
)
def test_a_syndicated_copy_points_at_the_original(index, copy):
    assert index.check("original", STORY, T0) is None
    assert index.check("copy", copy, T0 + 60) == "original"


@pytest.mark.parametrize(
    "other",
    [
        "Exxon shares rise 2% as refining margins improve in the third quarter",
        "Exxon to cut 2,000 jobs in restructuring of its chemicals unit",
        "Exxon beats quarterly profit estimates on higher output from Guyana and the Permian",
        "Oil prices rise 3% as OPEC agrees on deeper output cuts through March",
    ],
)
def test_a_different_story_on_the_same_company_or_subject_is_not_a_duplicate(index, other):
    assert index.check("a", "Exxon shares fall 3% after quarterly profit misses analyst estimates", T0) is None
    assert index.check("b", STORY, T0 + 1) is None
    assert index.check("c", other, T0 + 60) is None


def test_templated_headlines_on_different_companies_are_different_stories(index):
    assert index.check("xom", "Exxon shares fall 3% after quarterly profit misses analyst estimates", T0) is None
    assert index.check("aapl", "Apple shares fall 3% after quarterly profit misses analyst estimates", T0 + 5) is None
    assert index.check("xom-4", "Exxon shares fall 4% after quarterly profit misses analyst estimates", T0 + 9) is None


def test_copies_of_copies_point_at_the_first_seen_story(index):
    assert index.check("a", STORY, T0) is None
    assert index.check("b", "BREAKING: " + STORY, T0 + 10) == "a"
    assert index.check("c", "BREAKING: " + STORY + " - Reuters", T0 + 20) == "a"
    assert index.check("d", "BREAKING: " + STORY, T0 + 30) == "a"  # exact copy of a copy


def test_asking_again_about_a_known_id_gives_the_same_answer(index):
    assert index.check("a", STORY, T0) is None
    assert index.check("b", STORY + " - Reuters", T0 + 10) == "a"
    assert index.check("a", STORY, T0) is None  # a re-delivered original stays an original
    assert index.check("b", STORY + " - Reuters", T0 + 10) == "a"
    assert len(index) == 2


def test_stories_are_forgotten_after_the_horizon_of_event_time():
    index = NearDuplicateIndex(threshold=0.8, horizon_s=3600)
    assert index.check("a", STORY, datetime.fromtimestamp(T0, timezone.utc)) is None
    assert index.check("b", STORY + " - Reuters", T0 + 1800) == "a"
    index.check("other", "Gold climbs to a two-week high as the dollar weakens before payrolls", T0 + 2 * 3600)
    assert len(index) == 1  # a and b are past the horizon
    assert index.check("c", STORY + " - Reuters", T0 + 2 * 3600 + 60) is None


def test_memory_is_bounded_by_max_stories():
    index = NearDuplicateIndex(max_stories=50)
    for i in range(200):
        index.check(f"s{i}", f"Story number {i} about company {i * 7} and its plant {i * 13}", T0 + i)
    assert len(index) == 50


def test_a_text_without_words_is_never_a_duplicate(index):
    assert index.check("a", "https://t.co/abc", T0) is None
    assert index.check("b", "https://t.co/def", T0 + 1) is None
    assert len(index) == 0


def test_short_headlines_need_an_exact_match(index):
    assert index.check("a", "Oil falls", T0) is None
    assert index.check("b", "Oil falls as OPEC meets in Vienna on Monday", T0 + 1) is None
    assert index.check("c", "oil falls", T0 + 2) == "a"


def test_invalid_parameters_are_refused():
    with pytest.raises(ValueError, match="threshold"):
        NearDuplicateIndex(threshold=1.5)
    with pytest.raises(ValueError, match="horizon"):
        NearDuplicateIndex(horizon_s=0)
