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
- `z_score`: two-proportion test of the window's share against the baseline's (what the
  dispersion is learned from).
- Small-count tails for the window tests of `scales`: the beta-binomial tail of the
  negative count given the window's stories (the share test), the negative-binomial tail
  of the negative count given the scope's usual rate (the rate test), and the normal
  quantile that turns a tail probability into a z-like statistic.
- `Cusum`: Page's CUSUM on the per-story log-likelihood ratio of share p0 + 2k against p0,
  for slow drifts the window test cannot see. A drift drags the EWMA baseline along with
  it, so the CUSUM's p0 is a second, slow baseline (`long_share`, half-life of about a day).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

# A scope with no history sits at 30 % negative, worth ten stories: about the share of
# negative finance headlines, and weak enough that a scope's own stories soon outweigh it.
_PRIOR_NEG, _PRIOR_N = 3.0, 10.0
# The share forgets by time (half-life in buckets) or by stories, whichever is slower: a
# company with three stories a day keeps its share over days instead of forgetting it
# every hour, a busy topic follows its share within the hour.
SHARE_MEMORY_STORIES = 200.0
_MAX_INTRA_CORRELATION = 0.05  # beta-binomial: a window's share is never worth less than ~20 stories
# News comes in clusters (follow-ups of one story share its tone), so n stories carry the
# information of fewer: the tests count n/φ stories, φ at least this design effect (the
# learned value when larger). Learning alone misses it at small counts, where it matters.
DESIGN_EFFECT_FLOOR = 1.5
_DISPERSION_PRIOR_WEIGHT = 10.0  # pseudo-windows at the binomial value 1
_DISPERSION_CLIP = 9.0  # one window adds at most a 3-sigma square
_DISPERSION_HALFLIFE_FACTOR = 4.0  # dispersion is a slow property of a scope
_ROBUST_SIGMAS = 3.0
# A bucket inside a surge the window test reported teaches the baseline at most this
# fraction of what an ordinary bucket does (`Baseline.episode_weight`): the episode does not
# become the norm (a second, identical surge the next day still alerts), while a shift
# that lasts is still learned, only more slowly.
EPISODE_WEIGHT = 0.1


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
    share_stories: float = 0.0  # stories and negatives behind the share (time or story memory)
    share_negatives: float = 0.0

    @property
    def share(self) -> float:
        return (self.share_negatives + _PRIOR_NEG) / (self.share_stories + _PRIOR_N)

    @property
    def share_weight(self) -> float:
        """How many stories the share rests on, the prior's included."""
        return self.share_stories + _PRIOR_N

    @property
    def long_share(self) -> float:
        return (self.long_negatives + _PRIOR_NEG) / (self.long_stories + _PRIOR_N)

    @property
    def volume(self) -> float:
        """Expected distinct stories per bucket."""
        return self.stories / self.weight if self.weight > 0 else 0.0

    @property
    def learned_dispersion(self) -> float:
        return max(1.0, (self.disp_sum + _DISPERSION_PRIOR_WEIGHT) / (self.disp_weight + _DISPERSION_PRIOR_WEIGHT))

    @property
    def dispersion(self) -> float:
        return max(DESIGN_EFFECT_FLOOR, self.learned_dispersion)

    def fold(self, n: int, neg: int, alpha: float, long_alpha: float, robust: bool, weight: float = 1.0) -> None:
        """One closed bucket. `weight` < 1: it counts as that fraction of a bucket (memory
        decays by that much time, its stories count that much), as for a bucket inside an
        episode (EPISODE_WEIGHT)."""
        keep, long_keep = (1.0 - alpha) ** weight, (1.0 - long_alpha) ** weight
        clipped = self._clipped(n, neg, self.share, robust)
        share_keep = max(keep, 0.5 ** (weight * n / SHARE_MEMORY_STORIES))
        self.share_stories = share_keep * self.share_stories + weight * n
        self.share_negatives = share_keep * self.share_negatives + weight * clipped
        self.stories = keep * self.stories + weight * n
        self.negatives = keep * self.negatives + weight * clipped
        self.long_stories = long_keep * self.long_stories + weight * n
        self.long_negatives = long_keep * self.long_negatives + weight * self._clipped(n, neg, self.long_share, robust)
        self.weight = keep * self.weight + weight
        self.buckets += 1

    def episode_weight(self, n: int) -> float:
        """The weight of a bucket of `n` stories inside a surge: EPISODE_WEIGHT of a bucket,
        and no more stories than EPISODE_WEIGHT of an ordinary bucket (a share that rests on
        stories would otherwise be made of the surge's hundreds of stories)."""
        if n <= 0 or self.volume <= 0.0:
            return EPISODE_WEIGHT
        return EPISODE_WEIGHT * min(1.0, self.volume / n)

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
        self.buckets += count  # the share keeps its stories: no story, nothing forgotten

    def observe_dispersion(self, z_squared: float, alpha: float) -> None:
        keep = 1.0 - alpha / _DISPERSION_HALFLIFE_FACTOR
        self.disp_sum = keep * self.disp_sum + min(z_squared, _DISPERSION_CLIP)
        self.disp_weight = keep * self.disp_weight + 1.0

    def negatives_per_bucket(self) -> float:
        """Expected distinct negative stories per bucket (volume times share)."""
        return self.volume * self.share

    def concentration(self, window_buckets: int) -> float:
        """Beta concentration of the window share under "no change": the baseline's own
        uncertainty (it rests on `share_weight` stories) plus the spread of shares between
        windows, turned from the learned variance ratio φ of `window_buckets`-bucket windows
        into an intra-window correlation ρ (φ = 1 + (n - 1)ρ)."""
        reference = max(1.0, self.volume * window_buckets - 1.0)
        rho = min(_MAX_INTRA_CORRELATION, (self.learned_dispersion - 1.0) / reference)
        return max(1e-6, 1.0 / (1.0 / self.share_weight + rho) - 1.0)

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
    variance = phi * p0 * (1.0 - p0) * (1.0 / n + 1.0 / base.share_weight)
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


# --- small-count tails ---------------------------------------------------------------------
_TAIL_TERMS = 5000
_NORMAL = NormalDist()


def beta_binomial_sf(k: float, n: float, mean: float, concentration: float) -> float:
    """P(K >= k) for K ~ BetaBinomial(n, a = mean*c, b = (1-mean)*c): the negative count of
    a window of n stories whose share is uncertain around `mean`. Exact sum of the tail
    (counts may be fractional: effective counts, divided by a design effect)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if k <= n * mean:
        return 0.5  # not in the upper tail: no surprise (and the sum would be long)
    a, b = mean * concentration, (1.0 - mean) * concentration
    log_term = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + math.lgamma(k + a)
        + math.lgamma(n - k + b)
        - math.lgamma(n + a + b)
        - math.lgamma(a)
        - math.lgamma(b)
        + math.lgamma(a + b)
    )
    return _tail_sum(log_term, k, n, lambda j: (n - j) / (j + 1) * (j + a) / (n - j - 1 + b))


def negative_binomial_sf(k: float, mean: float, shape: float) -> float:
    """P(K >= k) for K ~ NegativeBinomial(mean, shape): a count whose rate is itself
    uncertain (gamma with the given shape), the more so the smaller the shape."""
    if k <= 0:
        return 1.0
    if mean <= 0.0:
        return 0.0
    if k <= mean:
        return 0.5  # not in the upper tail: no surprise (and the sum would be long)
    q = mean / (mean + shape)
    log_term = (
        math.lgamma(shape + k) - math.lgamma(shape) - math.lgamma(k + 1) + k * math.log(q) + shape * math.log1p(-q)
    )
    return _tail_sum(log_term, k, None, lambda j: (shape + j) / (j + 1) * q)


def _tail_sum(log_first: float, k: int, n: int | None, ratio) -> float:
    """Sum of pmf(k) + pmf(k+1) + ... from log pmf(k) and the ratio pmf(j+1)/pmf(j)."""
    if log_first < -745.0:
        return 0.0
    term = math.exp(log_first)
    total, j = term, k
    last = n if n is not None else k + _TAIL_TERMS
    while j + 1 <= min(last, k + _TAIL_TERMS):
        term *= ratio(j)
        j += 1
        total += term
        if term < total * 1e-12:
            break
    return min(1.0, total)


def z_of_tail(p: float) -> float:
    """The standard normal quantile with upper tail p: the z a two-proportion test would
    need to be as surprised (p = 3e-5 gives 4)."""
    if p >= 0.5:
        return 0.0
    return -_NORMAL.inv_cdf(max(p, 1e-300))
