"""MODEL_CARD.md for a model directory: what it is, what it was trained on, how it scores
on held-out data it never saw (TFNS valid, TFNT test), and its calibration."""

from __future__ import annotations

import json
from pathlib import Path

from finsentry.models.classifier import ModelCard

FLOORS = {("sentiment", "accuracy"): 0.89, ("sentiment", "macro_f1"): 0.85, ("topic", "accuracy"): 0.90}


def heldout_metrics(model_dir: Path, data_dir: Path) -> dict:
    from finsentry.training.evaluate import evaluate, golden_sets

    report = evaluate(model_dir, golden_sets(data_dir))
    return report


def write_model_card(model_dir: Path, data_dir: Path, run_report: dict | None = None) -> Path:
    card = ModelCard.read(model_dir)
    evaluation = heldout_metrics(model_dir, data_dir)
    card.metrics["heldout"] = {name: {head: {k: m[k] for k in ("n", "accuracy", "macro_f1", "ece")}
                                      for head, m in heads.items() if isinstance(m, dict) and "accuracy" in m}
                               for name, heads in evaluation["sets"].items()}
    card.write(model_dir)
    path = model_dir / "MODEL_CARD.md"
    path.write_text(render(card, run_report))
    return path


def render(card: ModelCard, run_report: dict | None) -> str:
    held = card.metrics.get("heldout", {})
    rows = []
    for name, heads in held.items():
        for head, m in heads.items():
            floor = " / ".join(f"{metric} ≥ {v}" for (h, metric), v in FLOORS.items() if h == head)
            rows.append(f"| {name} | {head} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['ece']:.4f} | {floor} |")
    dev = card.metrics.get("dev", {})
    dev_rows = [f"| {head} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['ece']:.4f} |" for head, m in dev.items()]
    hp = card.hyperparameters
    return "\n".join([
        f"# Model card: {card.version}",
        "",
        f"- created: {card.created_at} · method: {card.method} · parent: {card.parent or 'base encoder'}"
        + (f" · distilled from: {hp.get('teacher')}" + (f" ({hp['teacher_encoder']} teacher)" if hp.get("teacher_encoder") else "")
           if hp.get("teacher") else ""),
        f"- base encoder: {card.base}; mean pooling; two linear heads (sentiment 3, topic 20)",
        f"- input: title + lead (first 1,200 characters of body), normalised (links, `$`/`@`/`#` and HTML entities removed; uncased), max {card.max_length} tokens",
        f"- calibration: temperature scaling fitted on the dev split — sentiment T={card.sentiment_temperature:.3f}, topic T={card.topic_temperature:.3f}",
        "- artifact: the fine-tuned encoder layers in fp16 plus fp32 heads and layer norms; the frozen word embeddings come from the base wheel",
        "",
        "## Data",
        "",
        "Twitter financial news sentiment (9,543 train rows) and topic (16,990 train rows), MIT licensed",
        "(data/tfn/SOURCES.md). Each row is labelled for one task; the loss masks the other head.",
        f"Dev split for epoch selection and calibration: {card.data.get('dev_split', '')}.",
        "The held-out sets below (TFNS valid, TFNT test) were never used for training, selection or calibration.",
        "",
        "```",
        json.dumps(card.data.get("files", {}), indent=2),
        "```",
        "",
        "## Held-out quality",
        "",
        "| set | head | n | accuracy | macro-F1 | ECE | floor |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "## Dev split (calibrated)",
        "",
        "| head | n | accuracy | macro-F1 | ECE |",
        "| --- | --- | --- | --- | --- |",
        *dev_rows,
        "",
        "## Reproduce",
        "",
        "`finsentry train --default`: an all-mpnet-base-v2 teacher (2 epochs; the `teacher` extra), then the",
        "distilled MiniLM student (5 epochs); about 80 minutes on 2 CPU cores.",
        "",
        "## Hyper-parameters",
        "",
        "```",
        json.dumps(hp, indent=2),
        "```",
        "",
        "## Limits",
        "",
        "Trained on short English headlines and tweets from news accounts; long articles are judged on",
        "their title and lead. Per-entity sentiment is the document's sentiment.",
        "",
    ])
