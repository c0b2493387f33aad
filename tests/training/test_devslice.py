"""The out-of-style dev slice and the recipe options measured on it: the restyling rule,
the slice rebuilt byte for byte from the training files' dev split (never a test split),
AUROC against a pairwise count, augmentation that leaves the dev split alone, cross-task
distillation that only teaches the unlabelled head, and checkpoint averaging."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from finsentry.textnorm import normalize
from finsentry.training import devslice
from finsentry.training.data import MISSING, Example, read_tfns, read_tfnt, stratified_split
from finsentry.training.finetune import add_to_average, distill_loss, masked_distill_loss, style_augmented
from finsentry.training.restyle import first_sentence, restyle

REPO_DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.parametrize(
    "tweet, news",
    [
        (
            "$COP - ConocoPhillips seeking sales of Alaska assets https://t.co/abc",
            "ConocoPhillips seeking sales of Alaska assets.",
        ),
        (
            "Bass Metals : increases graphite resource by 54% #BassMetals #Stock… https://t.co/x",
            "Bass Metals : increases graphite resource by 54%.",
        ),
        (
            "Hedge Funds Are Selling Covanta Holding Corporation (CVA)",
            "Hedge Funds Are Selling Covanta Holding Corporation.",
        ),
        ("Apple shares fall 3% after weak iPhone sales - Reuters", "Apple shares fall 3% after weak iPhone sales."),
        (
            "Stocks could get a boost, traders say. (via @TradingNation)… https://t.co/x",
            "Stocks could get a boost, traders say.",
        ),
        ("AAPL: Apple shares fall after a weak quarter", "Apple shares fall after a weak quarter."),
        ("UK: inflation rises to five percent this year", "UK: inflation rises to five percent this year."),
    ],
)
def test_restyle_rewrites_a_tweet_as_a_news_sentence(tweet, news):
    assert restyle(tweet) == news


@pytest.mark.parametrize(
    "tweet",
    [
        "RT @desk: Stocks rally as the Fed holds rates",
        "$AAPL $TSLA $MSFT 🚀🚀",
        "$SUMRX: Earnings Out Next Week https://t.co/x",
    ],
)
def test_restyle_drops_what_has_no_news_sentence(tweet):
    assert restyle(tweet) is None


def test_first_sentence_only_of_a_multi_sentence_text():
    assert first_sentence("Profit rose 20% in the quarter. The shares gained 3%.") == "Profit rose 20% in the quarter."
    assert first_sentence("Profit rose 20% in the quarter.") is None


def test_slice_rebuilds_byte_for_byte_from_the_training_dev_split(tmp_path):
    manifest = devslice.build(REPO_DATA / "tfn", tmp_path)
    shipped = json.loads((REPO_DATA / "devslice" / "manifest.json").read_text())
    assert manifest == shipped
    for name in manifest["outputs"]:
        assert (tmp_path / name).read_bytes() == (REPO_DATA / "devslice" / name).read_bytes()


def test_slice_rows_are_the_dev_split_never_training_rows_nor_a_test_split():
    examples = read_tfns(REPO_DATA / "tfn" / "tfns_sentiment_train.csv") + read_tfnt(
        REPO_DATA / "tfn" / "tfnt_topic_train.csv"
    )
    train, dev = stratified_split(examples, devslice.DEV_FRACTION, devslice.DEV_SEED)
    dev_texts = {e.text for e in dev}
    for head in ("sentiment", "topic"):
        with open(REPO_DATA / "devslice" / f"restyled_{head}.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert rows and all(r["origin"].split(":")[0] in (devslice.SENTIMENT_TRAIN, devslice.TOPIC_TRAIN) for r in rows)
        raw = {
            name: devslice._raw_rows(REPO_DATA / "tfn" / name)
            for name in (devslice.SENTIMENT_TRAIN, devslice.TOPIC_TRAIN)
        }
        for r in rows:
            name, line = r["origin"].split(":")
            source = normalize(raw[name][int(line) - 2]["text"])
            assert source in dev_texts


def test_authored_sentences_are_labelled_and_balanced_as_the_readme_says():
    with open(REPO_DATA / "devslice" / "authored.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 172
    assert {r["style"] for r in rows} == {"headline", "news", "press_release", "review"}
    assert {r["sentiment"] for r in rows if r["style"] == "review"} == {"negative", "positive"}
    assert len({r["text"] for r in rows}) == len(rows)


def test_auroc_agrees_with_counting_pairs():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, 60).astype(float)  # many ties
    positive = rng.random(60) < 0.4
    pairs = [
        (1.0 if p > n else 0.5 if p == n else 0.0) for p, n in itertools.product(scores[positive], scores[~positive])
    ]
    assert devslice.auroc(scores, positive) == pytest.approx(np.mean(pairs))
    assert devslice.auroc(np.array([0.1, 0.9]), np.array([False, True])) == 1.0
    assert np.isnan(devslice.auroc(np.array([0.1, 0.9]), np.array([True, True])))


def test_style_augmentation_adds_labelled_news_style_copies():
    examples = [
        Example("AAPL: Apple shares fall after a weak quarter for phones", sentiment=0),
        Example("Profit rose 20% in the quarter. The shares gained 3% on the news", topic=5),
        Example("Apple shares fall after a weak quarter.", sentiment=0),
    ]
    out = style_augmented(examples, 1.0, seed=13)
    copies = [e for e in out if e not in examples]
    assert all(e in out for e in examples)
    assert sorted(copies, key=repr) == sorted(
        [
            Example("Apple shares fall after a weak quarter for phones.", sentiment=0),
            Example("Profit rose 20% in the quarter. The shares gained 3% on the news.", topic=5),
            Example("Profit rose 20% in the quarter.", topic=5),
        ],
        key=repr,
    )
    assert sorted(style_augmented(examples, 0.0, seed=13), key=repr) == sorted(examples, key=repr)


def test_style_augmented_run_keeps_the_dev_split_of_a_plain_run(tmp_path):
    """The copies join the training share after the split: the dev split (and the golden
    batch drawn from it) is the one a run without augmentation holds out."""
    from finsentry.training.finetune import TrainArguments, train

    path = tmp_path / "tfns_small.csv"
    with open(REPO_DATA / "tfn" / "tfns_sentiment_train.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:80]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    runs = [
        train(
            TrainArguments(
                output_dir=tmp_path / f"run{share}",
                sentiment_files=[path],
                style_augment=share,
                max_steps=1,
                batch_size=16,
                max_length=32,
                progress=False,
                version="m-aug",
            )
        )
        for share in (0.0, 1.0)
    ]
    assert runs[1]["data"]["train_examples"] > runs[0]["data"]["train_examples"]
    assert runs[1]["data"]["dev_examples"] == runs[0]["data"]["dev_examples"]
    golden = [(Path(r["artifact"]) / "golden.jsonl").read_text() for r in runs]
    assert golden[0] == golden[1]


def test_cross_task_distillation_teaches_only_the_rows_it_is_told():
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    rows = torch.tensor([True, False, True, False])
    assert masked_distill_loss(student, teacher, 2.0, rows) == pytest.approx(
        float(distill_loss(student[rows], teacher[rows], 2.0))
    )
    assert float(masked_distill_loss(student, teacher, 2.0, torch.zeros(4, dtype=torch.bool))) == 0.0
    labels = torch.tensor([MISSING, 1, MISSING, 2])
    assert torch.equal(labels == MISSING, rows)


def test_checkpoint_average_is_the_mean_of_the_snapshots():
    layer = torch.nn.Linear(2, 2)
    snapshots, average = [], None
    for n in range(3):
        with torch.no_grad():
            layer.weight.fill_(float(n))
            layer.bias.fill_(float(2 * n))
        snapshots.append({k: v.clone() for k, v in layer.state_dict().items()})
        average = add_to_average(average, layer, n)
    for k in average:
        assert torch.allclose(average[k], torch.stack([s[k] for s in snapshots]).mean(0))


def test_online_teacher_gives_the_logits_of_scoring_every_text_up_front():
    from finsentry.training.finetune import OnlineTeacher, TrainArguments, teacher_logits

    shipped = Path(__file__).resolve().parents[2] / "models" / "weights" / "default"
    texts = [
        "Profit rose 20% in the quarter.",
        "The plant will be shut down.",
        "Results are due on 4 May.",
        "Central bank leaves rates unchanged, as expected, and signals patience on cuts.",
    ]
    up_front = teacher_logits(TrainArguments(output_dir=Path("unused"), teacher=shipped), texts)  # bf16 where native
    online = OnlineTeacher(shipped, texts).logits([3, 1])
    for full, part in zip(up_front, online):
        assert torch.allclose(part[[3, 1]], full[[3, 1]], atol=0.1, rtol=0.02)
        assert not part[[0, 2]].any()
