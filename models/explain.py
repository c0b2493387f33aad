"""Word-level explanations by occlusion: drop one word, see how far the score moves.

The weight of a word is how much the document's sentiment log-odds, log p(positive) −
log p(negative), fall when the word is removed: positive weights pushed the document
towards positive, negative ones towards negative. Log-odds rather than probabilities,
because a confidently negative headline sits where probabilities saturate and every word
would look equally unimportant. All occluded variants go through the engine in one call.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

from finsentry.models.textnorm import normalize

_TOKEN = re.compile(r"\S+")


def log_odds(pred) -> float:
    p = pred.probabilities
    return math.log(max(p["positive"], 1e-9)) - math.log(max(p["negative"], 1e-9))


def explain(engine, text: str, top_k: int = 8) -> list[tuple[str, float]]:
    """[(word, weight)] for the `top_k` words that moved the score most, strongest first."""
    text = normalize(text)
    words = _TOKEN.findall(text)[:96]  # bounded cost for long texts
    if not words:
        return []
    variants = [text] + [" ".join(words[:i] + words[i + 1:]) or "." for i in range(len(words))]
    preds = engine.predict(variants)
    base = log_odds(preds[0])
    weights: dict[str, float] = {}
    for word, pred in zip(words, preds[1:]):
        clean = word.strip(".,;:!?\"'()[]")
        if clean:
            delta = base - log_odds(pred)
            if abs(delta) > abs(weights.get(clean, 0.0)):
                weights[clean] = round(delta, 4)
    ranked = sorted(weights.items(), key=lambda kv: abs(kv[1]), reverse=True)
    return ranked[:top_k]


def explain_many(engine, texts: Sequence[str], top_k: int = 8) -> list[list[tuple[str, float]]]:
    return [explain(engine, t, top_k) for t in texts]
