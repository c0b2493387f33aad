"""The statistics of the detector, as small pure pieces.

- `Baseline`: exponentially weighted sums over closed buckets of stories, negatives and
  buckets, giving the expected negative share and volume. Sums rather than means, so the
  baseline also knows how many stories it rests on (a sparse entity's baseline is
  uncertain, and the test says so). Folding is robust: once the baseline is established, a
  bucket's negative count is clipped to 3 standard deviations around the expectation, so a
  spike barely moves the baseline while a lasting shift is still learned.
- Overdispersion: real news is burstier than coin flips (stories come in related
  clusters). The detector learns the ratio of observed to binomial variance of window
  shares (`dispersion`, never below 1) and widens the test by it.
- `z_score`: two-proportion test of the window's share against the baseline's.
- `Cusum`: Page's CUSUM on the per-story log-likelihood ratio of share p0 + 2k against p0,
  for slow drifts the window test cannot see. A drift drags the EWMA baseline along with
  it, so the CUSUM's p0 is a second, slow baseline (`long_share`, half-life of about a day).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_PRIOR_NEG, _PRIOR_N = 0.5, 1.0  # Jeffreys-like prior: a scope with no history sits at 1/2
_DISPERSION_PRIOR_WEIGHT = 10.0  # pseudo-windows at the binomial value 1
_DISPERSION_CLIP = 9.0  # one window adds at most a 3-sigma square
_DISPERSION_HALFLIFE_FACTOR = 4.0  # dispersion is a slow property of a scope
_ROBUST_SIGMAS = 3.0


def ewma_alpha(halflife_buckets: float) -> float:
    return 1.0 - 0.5 ** (1.0 / halflife_buckets)


@dataclass
class Baseline:
    stories: float = 0.0  # decayed sum of distinct stories per closed bucket
    negatives: float = 0.0  # decayed sum of negative stories
    weight: float = 0.0  # decayed number of buckets
    disp_sum: float = 0.0
    disp_weight: float = 0.0
    long_stories: float = 0.0  # the same sums with the slow half-life, for the CUSUM
    long_negatives: float = 0.0
    buckets: int = 0  # closed buckets seen

    @property
    def share(self) -> float:
        return (self.negatives + _PRIOR_NEG) / (self.stories + _PRIOR_N)

    @property
    def long_share(self) -> float:
        return (self.long_negatives + _PRIOR_NEG) / (self.long_stories + _PRIOR_N)

    @property
    def volume(self) -> float:
        """Expected distinct stories per bucket."""
        return self.stories / self.weight if self.weight > 0 else 0.0

    @property
    def dispersion(self) -> float:
        return max(1.0, (self.disp_sum + _DISPERSION_PRIOR_WEIGHT) / (self.disp_weight + _DISPERSION_PRIOR_WEIGHT))

    def fold(self, n: int, neg: int, alpha: float, long_alpha: float, robust: bool) -> None:
        keep, long_keep = 1.0 - alpha, 1.0 - long_alpha
        self.stories = keep * self.stories + n
        self.negatives = keep * self.negatives + self._clipped(n, neg, self.share, robust)
        self.long_stories = long_keep * self.long_stories + n
        self.long_negatives = long_keep * self.long_negatives + self._clipped(n, neg, self.long_share, robust)
        self.weight = keep * self.weight + 1.0
        self.buckets += 1

    def _clipped(self, n: int, neg: int, p0: float, robust: bool) -> float:
        if not robust or n == 0:
            return float(neg)
        sd = math.sqrt(self.dispersion * n * p0 * (1.0 - p0))
        return min(max(float(neg), n * p0 - _ROBUST_SIGMAS * sd), n * p0 + _ROBUST_SIGMAS * sd)

    def fold_empty(self, count: int, alpha: float, long_alpha: float) -> None:
        """`count` buckets without stories at once (a quiet night), in closed form."""
        keep, long_keep = (1.0 - alpha) ** count, (1.0 - long_alpha) ** count
        self.stories *= keep
        self.negatives *= keep
        self.long_stories *= long_keep
        self.long_negatives *= long_keep
        self.weight = keep * self.weight + (1.0 - keep) / alpha
        self.buckets += count

    def observe_dispersion(self, z_squared: float, alpha: float) -> None:
        keep = 1.0 - alpha / _DISPERSION_HALFLIFE_FACTOR
        self.disp_sum = keep * self.disp_sum + min(z_squared, _DISPERSION_CLIP)
        self.disp_weight = keep * self.disp_weight + 1.0

    def dump(self) -> dict:
        return dict(self.__dict__)  # flat fields of plain numbers

    @classmethod
    def load(cls, raw: dict | None) -> "Baseline":
        return cls(**raw) if raw else cls()


def z_score(neg: int, n: int, base: Baseline, dispersion: float | None = None) -> float:
    """(window share - baseline share) / its standard error under "no change".

    The error has a term for the window (1/n) and one for the baseline (1/stories), so a
    baseline resting on few stories needs a stronger window to alert.
    """
    if n <= 0:
        return 0.0
    p0 = base.share
    phi = base.dispersion if dispersion is None else dispersion
    variance = phi * p0 * (1.0 - p0) * (1.0 / n + 1.0 / (base.stories + _PRIOR_N))
    return (neg / n - p0) / math.sqrt(variance)


@dataclass
class Cusum:
    value: float = 0.0
    start: int | None = None  # bucket where the current run began
    stories: int = 0
    negatives: int = 0
    duplicates: int = 0

    def reset(self) -> None:
        self.value, self.start, self.stories, self.negatives, self.duplicates = 0.0, None, 0, 0, 0

    def step(self, bucket: int, n: int, neg: int, dups: int, p0: float, k: float, h: float, dispersion: float) -> None:
        if n <= 0:
            return
        p1 = min(0.999, p0 + 2.0 * k)
        llr = (neg * math.log(p1 / p0) + (n - neg) * math.log((1.0 - p1) / (1.0 - p0))) / dispersion
        before = self.value
        # Capped at 2h so that, after a long drift, the episode can end in bounded time.
        self.value = min(2.0 * h, max(0.0, before + llr))
        if self.value <= 0.0:
            self.reset()
            return
        if before <= 0.0:
            self.start, self.stories, self.negatives, self.duplicates = bucket, 0, 0, 0
        self.stories += n
        self.negatives += neg
        self.duplicates += dups

    def dump(self) -> dict:
        return dict(self.__dict__)  # flat fields of plain numbers

    @classmethod
    def load(cls, raw: dict | None) -> "Cusum":
        return cls(**raw) if raw else cls()
