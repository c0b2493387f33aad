"""Label vocabularies shared by training, serving and the dashboards.

The order of each tuple is the order of the model's output units; never reorder it
without retraining.
"""

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

TOPIC_LABELS: tuple[str, ...] = (
    "Analyst Update",
    "Fed / Central Banks",
    "Company / Product News",
    "Treasuries / Corporate Debt",
    "Dividend",
    "Earnings",
    "Energy / Oil",
    "Financials",
    "Currencies",
    "General News / Opinion",
    "Gold / Metals / Materials",
    "IPO",
    "Legal / Regulation",
    "M&A / Investments",
    "Macro",
    "Markets",
    "Politics",
    "Personal Finance",
    "Stock Commentary",
    "Stock Movement",
)

# Twitter-financial-news-sentiment uses 0 bearish, 1 bullish, 2 neutral.
TFNS_TO_SENTIMENT: dict[int, int] = {0: 0, 1: 2, 2: 1}


def sentiment_index(label: str | int) -> int:
    """Accept a label name ('negative', 'bearish', ...) or an index in our order."""
    if isinstance(label, int):
        if 0 <= label < len(SENTIMENT_LABELS):
            return label
        raise ValueError(f"sentiment index {label} out of range 0..{len(SENTIMENT_LABELS) - 1}")
    name = label.strip().lower()
    aliases = {"bearish": "negative", "bullish": "positive", "neg": "negative", "pos": "positive"}
    name = aliases.get(name, name)
    if name not in SENTIMENT_LABELS:
        raise ValueError(f"unknown sentiment label {label!r}; expected one of {SENTIMENT_LABELS}")
    return SENTIMENT_LABELS.index(name)


def topic_index(label: str | int) -> int:
    if isinstance(label, int):
        if 0 <= label < len(TOPIC_LABELS):
            return label
        raise ValueError(f"topic index {label} out of range 0..{len(TOPIC_LABELS) - 1}")
    lowered = {t.lower(): i for i, t in enumerate(TOPIC_LABELS)}
    key = label.strip().lower()
    if key not in lowered:
        raise ValueError(f"unknown topic label {label!r}")
    return lowered[key]
