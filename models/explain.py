"""Word-level explanations by occlusion: drop one word, see how far the prediction moves.

For a document predicted negative or positive, a word's weight is how much the log-odds of
that class, log p − log(1 − p), fall when the word is removed, signed towards the class:
words that carried a negative call get negative weights, words that carried a positive
call positive ones. Log-odds rather than probabilities, because a confidently negative
headline sits where probabilities saturate and every word would look alike. For a neutral
document the weight is the change of the score p_positive − p_negative. All occluded
variants go through the engine in one batched call."""

from __future__ import annotations

import math
import re
from typing import Callable, Sequence

from finsentry.models.engine import Engine, Prediction
from finsentry.textnorm import normalize

_TOKEN = re.compile(r"\S+")


def evidence_for(label: str) -> Callable[[Prediction], float]:
    """How strongly a prediction supports `label`, in the unit its weights are measured in."""
    if label == "neutral":
        return lambda pred: pred.score
    sign = 1.0 if label == "positive" else -1.0

    def signed_log_odds(pred: Prediction) -> float:
        p = min(max(pred.probabilities[label], 1e-9), 1 - 1e-9)
        return sign * (math.log(p) - math.log(1 - p))

    return signed_log_odds


def explain(engine: Engine, text: str, top_k: int = 8) -> list[tuple[str, float]]:
    """[(word, weight)] for the `top_k` words that moved the score most, strongest first."""
    text = normalize(text)
    words = _TOKEN.findall(text)[:96]  # bounded cost for long texts
    if not words:
        return []
    variants = [text] + [" ".join(words[:i] + words[i + 1 :]) or "." for i in range(len(words))]
    preds = engine.predict(variants)
    measure = evidence_for(preds[0].sentiment)
    base = measure(preds[0])
    weights: dict[str, float] = {}
    for word, pred in zip(words, preds[1:]):
        clean = word.strip(".,;:!?\"'()[]")
        if clean:
            delta = base - measure(pred)
            if abs(delta) > abs(weights.get(clean, 0.0)):
                weights[clean] = round(delta, 4)
    ranked = sorted(weights.items(), key=lambda kv: abs(kv[1]), reverse=True)
    return ranked[:top_k]


def explain_many(engine: Engine, texts: Sequence[str], top_k: int = 8) -> list[list[tuple[str, float]]]:
    return [explain(engine, t, top_k) for t in texts]
