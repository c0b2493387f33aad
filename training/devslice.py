"""The out-of-style dev slice: build it, and score models on it and on the shared sets.

The shared held-out sets are tweets; the model is used on formal news, headlines and
reviews. The slice (data/devslice/, README there) is the dev signal for that gap:

- restyled: the tweets of the training runs' own dev split (stratified 10% of the two
  training files, seed 13: what `train` holds out for epoch choice and calibration, never
  trained on) rewritten as news sentences by training.restyle; sentiment and topic;
- long: the restyled sentiment rows of at least LONG_WORDS words (the tweets that read most
  like a news sentence);
- authored: headline, news and press-release sentences written for this project and
  labelled by the rule in the README (not copied from any source);
- reviews: bank-app reviews written the same way, negative or positive only: AUROC negative
  vs positive is their measure (a 3-way argmax may call a review neutral).

Never built from a test split. `python -m finsentry.training.devslice build` rebuilds the
restyled files deterministically (and checks the split is the one training holds out);
`python -m finsentry.training.devslice eval MODEL_DIR...` prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from finsentry.labels import SENTIMENT_LABELS, TFNS_TO_SENTIMENT, TOPIC_LABELS
from finsentry.models.classifier import load_artifact, load_tokenizer
from finsentry.textnorm import normalize
from finsentry.training.calibration import fit_temperature, softmax
from finsentry.training.data import MISSING, Example, file_sha256, read_labelled, read_tfns, read_tfnt, stratified_split
from finsentry.training.metrics import classification_report
from finsentry.training.predict import logits_for
from finsentry.training.restyle import restyle

REPO = Path(__file__).resolve().parent.parent
DEVSLICE_DIR = REPO / "data" / "devslice"
DATA_DIR = REPO / "data" / "tfn"
SENTIMENT_TRAIN = "tfns_sentiment_train.csv"
TOPIC_TRAIN = "tfnt_topic_train.csv"
DEV_FRACTION, DEV_SEED = 0.1, 13  # TrainArguments' defaults: the split the shipped model held out
LONG_WORDS = 14
RECIPES = DEVSLICE_DIR / "recipes.json"  # every recipe measured on the slice: the model card's table
NEG, POS = SENTIMENT_LABELS.index("negative"), SENTIMENT_LABELS.index("positive")


def _raw_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def dev_split_rows(
    data_dir: Path = DATA_DIR, fraction: float = DEV_FRACTION, seed: int = DEV_SEED
) -> list[tuple[str, int, Example]]:
    """(file, row number, example with the *raw* text) for each row of the dev split a run on
    the two training files holds out. stratified_split depends only on order and labels, so
    splitting raw-text examples gives the same rows; checked against the normalised split."""
    sent_rows, topic_rows = _raw_rows(data_dir / SENTIMENT_TRAIN), _raw_rows(data_dir / TOPIC_TRAIN)
    tagged = [
        (SENTIMENT_TRAIN, i, Example(r["text"], sentiment=TFNS_TO_SENTIMENT[int(r["label"])]))
        for i, r in enumerate(sent_rows, 2)
    ]
    tagged += [(TOPIC_TRAIN, i, Example(r["text"], topic=int(r["label"]))) for i, r in enumerate(topic_rows, 2)]
    # Examples compare by value: index them so duplicates keep their own row
    keyed = [Example(f"{n}\x00{ex.text}", ex.sentiment, ex.topic) for n, (_, _, ex) in enumerate(tagged)]
    _, held = stratified_split(keyed, fraction, seed)
    picked = [tagged[int(ex.text.split("\x00", 1)[0])] for ex in held]
    normalised = read_tfns(data_dir / SENTIMENT_TRAIN) + read_tfnt(data_dir / TOPIC_TRAIN)
    _, expected = stratified_split(normalised, fraction, seed)

    if [normalize(ex.text) for _, _, ex in picked] != [ex.text for ex in expected]:
        raise RuntimeError("the raw-text split differs from the split training holds out")
    return picked


def build(data_dir: Path = DATA_DIR, out_dir: Path = DEVSLICE_DIR) -> dict:
    """Write restyled_sentiment.csv, restyled_topic.csv and manifest.json into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = {"sentiment": [], "topic": []}
    seen: set[tuple[str, str]] = set()
    dropped = 0
    for filename, row, ex in sorted(dev_split_rows(data_dir), key=lambda t: (t[0], t[1])):
        text = restyle(ex.text)
        head = "sentiment" if ex.sentiment != MISSING else "topic"
        if text is None or (head, text.lower()) in seen:
            dropped += 1
            continue
        seen.add((head, text.lower()))
        label = SENTIMENT_LABELS[ex.sentiment] if head == "sentiment" else TOPIC_LABELS[ex.topic]
        rows[head].append({"text": text, head: label, "origin": f"{filename}:{row}"})
    for head, items in rows.items():
        with open(out_dir / f"restyled_{head}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, ["text", head, "origin"], lineterminator="\n")
            writer.writeheader()
            writer.writerows(items)
    manifest = {
        "inputs": {name: file_sha256(data_dir / name) for name in (SENTIMENT_TRAIN, TOPIC_TRAIN)},
        "dev_split": f"stratified {DEV_FRACTION:.0%} of the two training files, seed {DEV_SEED}",
        "rows": {f"restyled_{h}.csv": len(v) for h, v in rows.items()},
        "dropped": dropped,
        "outputs": {f"restyled_{h}.csv": file_sha256(out_dir / f"restyled_{h}.csv") for h in rows},
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# --- evaluation -------------------------------------------------------------------------------


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half)."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def sentiment_metrics(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    probs = softmax(logits, temperature)
    report = classification_report(labels, probs, SENTIMENT_LABELS)
    polar = (labels == NEG) | (labels == POS)
    out = {k: report[k] for k in ("n", "accuracy", "macro_f1", "ece")}
    out["auroc_neg_pos"] = auroc(probs[polar, POS] - probs[polar, NEG], labels[polar] == POS)
    out["ece_uncalibrated"] = classification_report(labels, softmax(logits, 1.0), SENTIMENT_LABELS)["ece"]
    return out


def topic_metrics(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    report = classification_report(labels, softmax(logits, temperature), TOPIC_LABELS)
    out = {k: report[k] for k in ("n", "accuracy", "macro_f1", "ece")}
    out["ece_uncalibrated"] = classification_report(labels, softmax(logits, 1.0), TOPIC_LABELS)["ece"]
    return out


def slices(devslice_dir: Path = DEVSLICE_DIR, data_dir: Path = DATA_DIR) -> dict[str, tuple[str, list[Example]]]:
    """name → (head, examples): the dev slice's parts, then the shared held-out sets."""
    restyled = read_labelled(devslice_dir / "restyled_sentiment.csv")
    authored_rows = _raw_rows(devslice_dir / "authored.csv")
    authored = read_labelled(devslice_dir / "authored.csv")
    formal = [e for e, r in zip(authored, authored_rows) if r["style"] != "review"]
    out = {
        "restyled": ("sentiment", restyled),
        "long": ("sentiment", [e for e in restyled if len(e.text.split()) >= LONG_WORDS]),
        "authored": ("sentiment", formal),
        "reviews": ("sentiment", [e for e, r in zip(authored, authored_rows) if r["style"] == "review"]),
    }
    for style in sorted({r["style"] for r in authored_rows} - {"review"}):
        out[f"authored:{style}"] = ("sentiment", [e for e, r in zip(authored, authored_rows) if r["style"] == style])
    out["restyled-topic"] = ("topic", read_labelled(devslice_dir / "restyled_topic.csv"))
    out["tfns-valid"] = ("sentiment", read_tfns(data_dir / "tfns_sentiment_valid.csv"))
    out["tfnt-test"] = ("topic", read_tfnt(data_dir / "tfnt_topic_test.csv"))
    return out


def evaluate_model(
    model_dir: Path, parts: dict[str, tuple[str, list[Example]]], temperatures: tuple[float, float] | None = None
) -> dict:
    """Metrics of one model on every part, calibrated with its card's temperatures (or the
    given ones); ECE before calibration alongside."""
    model, card = load_artifact(Path(model_dir))
    model.eval()
    tokenizer = load_tokenizer(card.max_length, card.encoder)
    temps = temperatures or (card.sentiment_temperature, card.topic_temperature)
    texts = sorted({e.text for _, examples in parts.values() for e in examples})
    s_logits, t_logits = logits_for(model, tokenizer, texts, card.max_length)
    where = {t: i for i, t in enumerate(texts)}
    out = {"version": card.version, "temperatures": list(temps)}
    for name, (head, examples) in parts.items():
        idx = [where[e.text] for e in examples]
        if head == "sentiment":
            out[name] = sentiment_metrics(s_logits[idx], np.array([e.sentiment for e in examples]), temps[0])
        else:
            out[name] = topic_metrics(t_logits[idx], np.array([e.topic for e in examples]), temps[1])
    # would a sentiment temperature fitted on restyled text hold on the other parts?
    restyled = parts["restyled"][1]
    refit = fit_temperature(s_logits[[where[e.text] for e in restyled]], np.array([e.sentiment for e in restyled]))
    out["restyled_temperature"] = {
        "sentiment": refit,
        **{
            name: sentiment_metrics(s_logits[[where[e.text] for e in ex]], np.array([e.sentiment for e in ex]), refit)[
                "ece"
            ]
            for name, (head, ex) in parts.items()
            if head == "sentiment" and name != "restyled"
        },
    }
    return out


def render(results: Sequence[dict]) -> str:
    """One row per model: accuracy / macro-F1 / AUROC neg vs pos / ECE of each part
    (reviews: AUROC only)."""
    cols = ["restyled", "long", "authored", "reviews", "restyled-topic", "tfns-valid", "tfnt-test"]
    lines = ["| model | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for r in results:
        cells = []
        for c in cols:
            m = r.get(c)
            if m is None:
                cells.append("not run")
                continue
            if c == "reviews":
                cells.append(f"{m['auroc_neg_pos']:.3f}")
                continue
            auc = f" / {m['auroc_neg_pos']:.3f}" if "auroc_neg_pos" in m else ""
            cells.append(f"{m['accuracy']:.3f} / {m['macro_f1']:.3f}{auc} / {m['ece']:.3f}")
        lines.append(f"| {r['version']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_recipes(recipes: Sequence[dict]) -> list[str]:
    """The recipe table of the model card: each recipe's figures on the slice and the shared
    sets (accuracy / macro-F1 / AUROC neg vs pos / ECE) and its training time."""
    lines = [
        "accuracy / macro-F1 / AUROC negative vs positive / ECE; reviews: AUROC only. Training minutes",
        "are wall-clock on 2 CPU cores; most runs shared them with other jobs (load in the last column).",
        "",
        "| recipe | restyled | long | authored | reviews | restyled-topic | TFNS valid | TFNT test | minutes (load) |",
        "| --- |" + " --- |" * 8,
    ]
    for r in recipes:
        row = render([{**r["results"], "version": r["name"]}]).splitlines()[-1]
        lines.append(f"{row} {r['minutes']} ({r['load']}) |")
    lines += ["", *(f"- **{r['name']}**: {r['recipe']}" for r in recipes)]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m finsentry.training.devslice")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="rebuild the restyled files and the manifest")
    b.add_argument("--data-dir", type=Path, default=DATA_DIR)
    b.add_argument("--out", type=Path, default=DEVSLICE_DIR)
    e = sub.add_parser("eval", help="score models on the slice and the shared sets")
    e.add_argument("models", nargs="+", type=Path)
    e.add_argument("--data-dir", type=Path, default=DATA_DIR)
    e.add_argument("--devslice", type=Path, default=DEVSLICE_DIR)
    e.add_argument("--json", type=Path, help="also write the results here")
    e.add_argument("--sentiment-only", action="store_true", help="leave out the topic parts (quicker)")
    e.add_argument("--no-shared", action="store_true", help="leave out TFNS valid and TFNT test (quicker)")
    ns = parser.parse_args(argv)
    if ns.command == "build":
        print(json.dumps(build(ns.data_dir, ns.out), indent=2))
        return
    parts = slices(ns.devslice, ns.data_dir)
    if ns.sentiment_only:
        parts = {k: v for k, v in parts.items() if v[0] == "sentiment"}
    if ns.no_shared:
        parts = {k: v for k, v in parts.items() if k not in ("tfns-valid", "tfnt-test")}
    results = [evaluate_model(m, parts) for m in ns.models]
    if ns.json:
        ns.json.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))


if __name__ == "__main__":  # pragma: no cover
    main()
