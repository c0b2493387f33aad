import re
from pathlib import Path

import pytest

from finsentry.labels import SENTIMENT_LABELS, TFNS_TO_SENTIMENT, TOPIC_LABELS, sentiment_index, topic_index
from finsentry.models.classifier import ModelCard
from finsentry.models.engine import SHIPPED_MODEL
from finsentry.textnorm import model_input, normalize

SOURCES = Path(__file__).resolve().parents[2] / "data" / "tfn" / "SOURCES.md"


def topics_in_sources() -> list[str]:
    """The topic list of the data's SOURCES.md ("Topic ids: 0 Analyst Update, 1 ..."), by id."""
    block = SOURCES.read_text(encoding="utf-8").split("Topic ids:", 1)[1].split("\n\n", 1)[0]
    pairs = re.findall(r"(\d+) ([^,]+)", " ".join(block.split()))
    assert [int(i) for i, _ in pairs] == list(range(len(pairs)))
    return [name.strip().rstrip(".") for _, name in pairs]


def test_label_order_is_the_output_order():
    assert SENTIMENT_LABELS == ("negative", "neutral", "positive")
    assert list(TOPIC_LABELS) == topics_in_sources()
    assert len(TOPIC_LABELS) == 20
    card = ModelCard.read(SHIPPED_MODEL)  # the shipped heads were trained in this order
    assert (card.sentiment_labels, card.topic_labels) == (list(SENTIMENT_LABELS), list(TOPIC_LABELS))
    # TFNS: 0 bearish, 1 bullish, 2 neutral
    assert [SENTIMENT_LABELS[TFNS_TO_SENTIMENT[i]] for i in range(3)] == ["negative", "positive", "neutral"]


def test_label_parsing():
    assert sentiment_index("Bearish") == 0 and sentiment_index("positive") == 2 and sentiment_index(1) == 1
    assert topic_index("energy / oil") == 6
    with pytest.raises(ValueError):
        sentiment_index("meh")
    with pytest.raises(ValueError):
        topic_index(20)


def test_normalize_strips_tweet_artefacts_but_keeps_content():
    raw = "RT @CNBC: $AAPL &amp; $MSFT slide after #earnings miss https://t.co/abc123 via @Reuters"
    assert normalize(raw) == "AAPL & MSFT slide after earnings miss via Reuters"
    assert normalize("Oil falls\x00 3%\n\n  on  supply") == "Oil falls 3% on supply"


def test_normalize_is_idempotent():
    for text in ["$TSLA up 5% https://x.co/1", "Plain formal sentence about bonds.", "@a #b $c"]:
        once = normalize(text)
        assert normalize(once) == once


def test_model_input_title_plus_lead():
    body = "Exxon reported lower profit. " + "More detail. " * 500
    joined = model_input("Exxon profit falls", body, max_chars=200)
    assert joined.startswith("Exxon profit falls. Exxon reported lower profit.")
    assert len(joined) < 260
    assert model_input("Same title", "Same title and body") == "Same title. and body"
    assert model_input(None, "only text") == "only text"
