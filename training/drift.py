"""Drift: has production moved away from what the serving model was trained for?

Three signals over a window of recently scored documents, each against the serving
model's reference profile (its predictions on its own held-out split):
- the predicted class mix, per head, by the population stability index (PSI);
- the mean top-class confidence, per head: a drop means unfamiliar input;
- the accuracy of the served predictions on fresh analyst labels.
Only documents scored by the serving version count: right after a swap the window holds
the old version's records, which say nothing about the new one.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from finsentry.labels import SENTIMENT_LABELS, TOPIC_LABELS
from finsentry.models.classifier import load_artifact, load_tokenizer
from finsentry.models.registry import read_card
from finsentry.records import Label
from finsentry.store.base import MAX_SEARCH_LIMIT, SearchQuery
from finsentry.training import telemetry
from finsentry.training.calibration import softmax
from finsentry.training.lineage import heldout_examples
from finsentry.training.predict import logits_for

log = logging.getLogger("finsentry.training.drift")

PSI_EPSILON = 1e-4  # stands in for an empty class so the logarithm stays finite


@dataclass
class Profile:
    """Class mix and mean top-class confidence of one model's predictions, per head."""

    n: int
    sentiment_mix: dict[str, float]
    topic_mix: dict[str, float]
    sentiment_confidence: float
    topic_confidence: float

    @classmethod
    def from_predictions(
        cls,
        sentiment: Sequence[str],
        sentiment_conf: Sequence[float],
        topic: Sequence[str],
        topic_conf: Sequence[float],
    ) -> "Profile":
        return cls(
            n=len(sentiment),
            sentiment_mix=mix(sentiment, SENTIMENT_LABELS),
            topic_mix=mix(topic, TOPIC_LABELS),
            sentiment_confidence=float(np.mean(sentiment_conf)) if len(sentiment_conf) else 0.0,
            topic_confidence=float(np.mean(topic_conf)) if len(topic_conf) else 0.0,
        )

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]]) -> "Profile":
        s_lab, s_conf, t_lab, t_conf = [], [], [], []
        for r in records:
            s, t = r["sentiment"], r["topic"]
            s_lab.append(s["label"])
            s_conf.append(max(s["probabilities"].values()))
            t_lab.append(t["label"])
            t_conf.append(t["probability"])
        return cls.from_predictions(s_lab, s_conf, t_lab, t_conf)


def mix(labels: Sequence[str], vocabulary: Sequence[str]) -> dict[str, float]:
    counts = Counter(labels)
    total = max(1, len(labels))
    return {name: counts.get(name, 0) / total for name in vocabulary}


def psi(expected: dict[str, float], actual: dict[str, float]) -> float:
    """Population stability index: sum over classes of (a - e) * ln(a / e)."""
    total = 0.0
    for name in expected:
        e = max(expected[name], PSI_EPSILON)
        a = max(actual.get(name, 0.0), PSI_EPSILON)
        total += (a - e) * np.log(a / e)
    return float(total)


def reference_profile(model_dir: Path, data_dir: Path | None, cache_dir: Path | None = None) -> Profile:
    """The model's predictions on its held-out split (cached per version: it never changes)."""
    version = read_card(model_dir)["version"]
    cache = Path(cache_dir) / f"drift-reference-{version}.json" if cache_dir else None
    if cache is not None and cache.exists():
        return Profile(**json.loads(cache.read_text()))

    texts = [e.text for e in heldout_examples(model_dir, data_dir)]
    model, card = load_artifact(model_dir)
    s_logits, t_logits = logits_for(model, load_tokenizer(card.max_length, card.encoder), texts, card.max_length)
    sp, tp = softmax(s_logits, card.sentiment_temperature), softmax(t_logits, card.topic_temperature)
    profile = Profile.from_predictions(
        [SENTIMENT_LABELS[i] for i in sp.argmax(1)],
        sp.max(1).tolist(),
        [TOPIC_LABELS[i] for i in tp.argmax(1)],
        tp.max(1).tolist(),
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(asdict(profile)))
    return profile


@dataclass
class Trigger:
    reason: str  # psi_sentiment | psi_topic | confidence_sentiment | ... | label_accuracy_topic
    value: float
    threshold: float
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class DriftReport:
    version: str | None
    window: int  # scored records of the serving version examined
    labels: int  # fresh analyst labels compared
    measurements: dict[str, float] = field(default_factory=dict)
    triggers: list[Trigger] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.triggers)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def label_accuracy(pairs: Iterable[tuple[Label, dict[str, Any]]]) -> dict[str, tuple[int, int]]:
    """Per head: (correct, compared) of served predictions against analyst labels."""
    out = {"sentiment": [0, 0], "topic": [0, 0]}
    for label, record in pairs:
        if label.sentiment:
            out["sentiment"][1] += 1
            out["sentiment"][0] += record["sentiment"]["label"] == label.sentiment
        if label.topic:
            out["topic"][1] += 1
            out["topic"][0] += record["topic"]["label"] == label.topic
    return {k: (v[0], v[1]) for k, v in out.items()}


def check_drift(
    reference: Profile,
    records: Sequence[dict[str, Any]],
    settings,
    labelled: Sequence[tuple[Label, dict[str, Any]]] = (),
    version: str | None = None,
) -> DriftReport:
    """Compare a window of scored records (and fresh labels) with the reference profile."""
    if version is not None:
        records = [r for r in records if r.get("model_version") == version]
        labelled = [(lab, r) for lab, r in labelled if r.get("model_version") == version]
    report = DriftReport(version=version, window=len(records), labels=len(labelled))
    if len(records) >= settings.drift_min_records:
        window = Profile.from_records(records)
        for head in ("sentiment", "topic"):
            value = psi(getattr(reference, f"{head}_mix"), getattr(window, f"{head}_mix"))
            report.measurements[f"psi_{head}"] = value
            telemetry.DRIFT_PSI.labels(head=head).set(value)
            if value >= settings.drift_psi_threshold:
                report.triggers.append(
                    Trigger(
                        f"psi_{head}",
                        value,
                        settings.drift_psi_threshold,
                        {
                            "reference_mix": _top(getattr(reference, f"{head}_mix")),
                            "window_mix": _top(getattr(window, f"{head}_mix")),
                            "window": window.n,
                        },
                    )
                )
            ref_conf, win_conf = getattr(reference, f"{head}_confidence"), getattr(window, f"{head}_confidence")
            drop = ref_conf - win_conf
            report.measurements[f"confidence_drop_{head}"] = drop
            if drop >= settings.drift_confidence_drop:
                report.triggers.append(
                    Trigger(
                        f"confidence_{head}",
                        drop,
                        settings.drift_confidence_drop,
                        {
                            "reference_confidence": round(ref_conf, 4),
                            "window_confidence": round(win_conf, 4),
                            "window": window.n,
                        },
                    )
                )
    else:
        report.notes.append(
            f"{len(records)} scored records of the serving version, fewer than "
            f"{settings.drift_min_records}: class mix and confidence not checked"
        )
    for head, (correct, compared) in label_accuracy(labelled).items():
        if compared < settings.drift_min_labels:
            if compared:
                report.notes.append(
                    f"{compared} fresh {head} labels, fewer than {settings.drift_min_labels}: not checked"
                )
            continue
        accuracy = correct / compared
        report.measurements[f"label_accuracy_{head}"] = accuracy
        if accuracy < settings.drift_label_accuracy_floor:
            report.triggers.append(
                Trigger(
                    f"label_accuracy_{head}",
                    accuracy,
                    settings.drift_label_accuracy_floor,
                    {"correct": correct, "labels": compared},
                )
            )
    for trigger in report.triggers:
        telemetry.DRIFT_TRIGGERS.labels(reason=trigger.reason).inc()
        log.warning(
            "drift detected version=%s reason=%s value=%.4f threshold=%.4f evidence=%s",
            version,
            trigger.reason,
            trigger.value,
            trigger.threshold,
            json.dumps(trigger.evidence),
        )
    return report


def _top(distribution: dict[str, float], k: int = 5) -> dict[str, float]:
    """The k largest shares (the evidence stays readable for 20 topics)."""
    return {name: round(p, 4) for name, p in sorted(distribution.items(), key=lambda kv: -kv[1])[:k]}


async def window_from_store(store, settings, labels_since: datetime | None):
    """(recent scored records, fresh (label, served record) pairs) from the store."""
    records = await store.search(SearchQuery(limit=min(settings.drift_window, MAX_SEARCH_LIMIT), sort="published_at"))
    pairs = []
    for label in await store.labels():
        if labels_since is not None and label.at < labels_since:
            continue
        record = await store.get(label.doc_id)
        if record is not None:
            pairs.append((label, record))
    return records, pairs
