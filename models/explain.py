"""Word-level explanations by occlusion: drop one word, see how far the score moves.

For the predicted sentiment the weight of a word is how much the document's score
(p_positive − p_negative) falls when the word is removed; positive weights pushed the
document towards positive, negative weights towards negative. All occluded variants of a
document go through the engine in one batched call.
"""

from __future__ import annotations

import re
from typing import Sequence

from finsentry.models.textnorm import normalize

_TOKEN = re.compile(r"\S+")


def explain(engine, text: str, top_k: int = 8) -> list[tuple[str, float]]:
    """[(word, weight)] for the `top_k` words that moved the score most, strongest first."""
    text = normalize(text)
    words = _TOKEN.findall(text)[:96]  # bounded cost for long texts
    if not words:
        return []
    variants = [text] + [" ".join(words[:i] + words[i + 1:]) or "." for i in range(len(words))]
    preds = engine.predict(variants)
    base = preds[0].score
    weights: dict[str, float] = {}
    for word, pred in zip(words, preds[1:]):
        clean = word.strip(".,;:!?\"'()[]")
        if clean:
            delta = base - pred.score
            if abs(delta) > abs(weights.get(clean, 0.0)):
                weights[clean] = round(delta, 4)
    ranked = sorted(weights.items(), key=lambda kv: abs(kv[1]), reverse=True)
    return ranked[:top_k]


def explain_many(engine, texts: Sequence[str], top_k: int = 8) -> list[list[tuple[str, float]]]:
    return [explain(engine, t, top_k) for t in texts]
