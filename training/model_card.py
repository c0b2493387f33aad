"""MODEL_CARD.md for a model directory: what it is, what it was trained on, how it scores
on held-out data it never saw (TFNS valid, TFNT test), and its calibration."""

from __future__ import annotations

import json
from pathlib import Path

from finsentry.models.backends import cpu_has_native_bf16
from finsentry.models.classifier import ModelCard
from finsentry.training.devslice import RECIPES, evaluate_model, render_recipes, slices
from finsentry.training.evaluate import evaluate, golden_sets

FLOORS = {("sentiment", "accuracy"): 0.89, ("sentiment", "macro_f1"): 0.85, ("topic", "accuracy"): 0.90}
SERVED_BACKENDS = ("torch-bf16", "onnx")  # the faster backends `auto` may serve with


def heldout_metrics(model_dir: Path, data_dir: Path, backend: str | None = None) -> dict:
    report = evaluate(model_dir, golden_sets(data_dir), backend=backend)
    return report


def summary(evaluation: dict) -> dict:
    """set → head → n, accuracy, macro-F1, ECE of an `evaluate` report."""
    return {
        name: {
            head: {k: m[k] for k in ("n", "accuracy", "macro_f1", "ece")}
            for head, m in heads.items()
            if isinstance(m, dict) and "accuracy" in m
        }
        for name, heads in evaluation["sets"].items()
    }


def record_backends(card: ModelCard, evaluations: dict[str, dict]) -> None:
    """Put the floors and each served backend's held-out metrics in the card: `auto` will not
    serve with a backend recorded below a floor."""
    floors: dict[str, dict[str, float]] = {}
    for (head, metric), value in FLOORS.items():
        floors.setdefault(head, {})[metric] = value
    card.metrics["floors"] = floors
    card.metrics["heldout_by_backend"] = {name: summary(e) for name, e in evaluations.items()}


def write_model_card(
    model_dir: Path, data_dir: Path, run_report: dict | None = None, backends=SERVED_BACKENDS, devslice: bool = True
) -> Path:
    card = ModelCard.read(model_dir)
    card.metrics["heldout"] = summary(heldout_metrics(model_dir, data_dir))
    if devslice:
        card.metrics["devslice"] = devslice_metrics(model_dir)
    runnable = [b for b in backends if b != "torch-bf16" or cpu_has_native_bf16()]
    record_backends(card, {b: heldout_metrics(model_dir, data_dir, b) for b in runnable})
    card.write(model_dir)
    path = model_dir / "MODEL_CARD.md"
    path.write_text(render(card, run_report))
    return path


def devslice_metrics(model_dir: Path) -> dict:
    """The model on the out-of-style dev slice (data/devslice), shared sets left out: they
    are in `heldout` already."""
    parts = {k: v for k, v in slices().items() if k not in ("tfns-valid", "tfnt-test")}
    result = evaluate_model(model_dir, parts)
    return {k: v for k, v in result.items() if isinstance(v, dict) and "accuracy" in v}


def _devslice_section(card: ModelCard) -> list[str]:
    lines = []
    measured = card.metrics.get("devslice")
    if measured:
        lines += [
            "## Out-of-style dev slice",
            "",
            "data/devslice (README there): training dev-split tweets rewritten as news sentences, and",
            "headline, news, press-release and review sentences written for the project. Calibrated.",
            "",
            "| part | head | n | accuracy | macro-F1 | AUROC neg vs pos | ECE |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, m in measured.items():
            auc = f"{m['auroc_neg_pos']:.4f}" if "auroc_neg_pos" in m else ""
            head = "topic" if "auroc_neg_pos" not in m else "sentiment"
            lines.append(
                f"| {name} | {head} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {auc} | {m['ece']:.4f} |"
            )
        lines.append("")
    if RECIPES.exists():
        lines += ["## Recipes tried", "", *render_recipes(json.loads(RECIPES.read_text())), ""]
    return lines


def render(card: ModelCard, run_report: dict | None) -> str:
    held = card.metrics.get("heldout", {})
    rows = []
    for name, heads in held.items():
        for head, m in heads.items():
            floor = " / ".join(f"{metric} ≥ {v}" for (h, metric), v in FLOORS.items() if h == head)
            rows.append(
                f"| {name} | {head} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['ece']:.4f} | {floor} |"
            )
    backend_rows = [
        _backend_row(backend, name, head, m)
        for backend, sets in card.metrics.get("heldout_by_backend", {}).items()
        for name, heads in sets.items()
        for head, m in heads.items()
    ]
    dev = card.metrics.get("dev", {})
    dev_rows = [
        f"| {head} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['ece']:.4f} |" for head, m in dev.items()
    ]
    hp = card.hyperparameters
    return "\n".join(
        [
            f"# Model card: {card.version}",
            "",
            f"- created: {card.created_at} · method: {card.method} · parent: {card.parent or 'base encoder'}"
            + (
                f" · distilled from: {hp.get('teacher')}"
                + (f" ({hp['teacher_encoder']} teacher)" if hp.get("teacher_encoder") else "")
                if hp.get("teacher")
                else ""
            ),
            f"- base encoder: {card.base}; mean pooling; two linear heads (sentiment 3, topic 20)",
            (
                "- input: title + lead (first 1,200 characters of body), normalised (links, `$`/`@`/`#` and HTML "
                f"entities removed; uncased), max {card.max_length} tokens"
            ),
            (
                "- calibration: temperature scaling fitted on the dev split — sentiment "
                f"T={card.sentiment_temperature:.3f}, topic T={card.topic_temperature:.3f}"
            ),
            (
                "- artifact: the fine-tuned encoder layers in fp16 plus fp32 heads and layer norms; the frozen word "
                "embeddings come from the base wheel"
            ),
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
            *_served_section(backend_rows),
            "## Dev split (calibrated)",
            "",
            "| head | n | accuracy | macro-F1 | ECE |",
            "| --- | --- | --- | --- | --- |",
            *dev_rows,
            "",
            *_devslice_section(card),
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
        ]
    )


def _backend_row(backend: str, name: str, head: str, m: dict) -> str:
    below = [f"{metric} below {v}" for (h, metric), v in FLOORS.items() if h == head and m[metric] < v]
    verdict = "**below the floor: " + ", ".join(below) + "**" if below else "clears the floor"
    return (
        f"| {backend} | {name} | {head} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['ece']:.4f} | "
        f"{verdict} |"
    )


def _served_section(backend_rows: list[str]) -> list[str]:
    if not backend_rows:
        return []
    return [
        "## Held-out quality of the served backends",
        "",
        "The table above is torch fp32. Workers serve with the fastest backend `auto` measures (torch-bf16:",
        "bf16 autocast; onnx: ONNX Runtime, int8 weights); these are the same sets scored through each",
        "(`finsentry eval --backend NAME`). `auto` does not serve with a backend recorded here below a floor.",
        "",
        "| backend | set | head | n | accuracy | macro-F1 | ECE | floor |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *backend_rows,
        "",
    ]
