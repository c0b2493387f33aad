"""The window test at several time scales: is there an episode in the last W buckets?

A busy topic shows a surge within minutes; a company with three stories a day shows it
only over an hour. The detector therefore judges the latest `window_buckets` (minutes) and
each of the longer windows (`longer_windows`, e.g. 15 and 60 buckets) at once, and the
scale with the strongest evidence is the one an alert reports.

The shortest window is summed from the open buckets the detector keeps anyway. For the
longer ones it keeps, per scope, the counts of closed buckets (`history`, only buckets with
stories, only as far back as the longest window) and the few most negative stories they
held (`recent`), so that state stays small: a quiet company stores a handful of numbers.

Per window of n distinct stories, k of them negative, two tests (see docs/alerting.md):

- the share test: P(K >= k) when K is beta-binomial around the baseline share, with the
  baseline's own uncertainty and the learned spread of shares between windows (exact at
  small counts, no normal approximation);
- the rate test: P(K >= k) when K is negative-binomial around the negatives the scope
  usually has in W buckets (its volume times its share), the rate itself uncertain.

Both tails become z-like numbers (the normal quantile). A volume surge at the usual share
passes the rate test but not the share test; so the rate test never alerts alone. The
statistic is z = max(z_share, min(z_rate, z_share + z - support)): an episode opens when the
share alone is surprising at the threshold z, or when the count of negative stories is and
the share is at least at the lower `support` level. Quiet scopes, where the share can
never be very surprising with a few stories, are judged by both together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from finsentry.alerting.buckets import Bucket, Window, most_negative
from finsentry.alerting.config import Thresholds
from finsentry.alerting.stats import Baseline, beta_binomial_sf, negative_binomial_sf, z_of_tail

# Shape of the gamma spread of a scope's rate of negative stories between windows, beyond
# what its baseline expects: 4 lets the rate be half as high again without much surprise
# (the baseline lags the morning's rise; news days).
RATE_SHAPE = 4.0


@dataclass
class Verdict:
    scale: int  # window length in buckets
    window: Window
    z: float  # the combined statistic
    z_share: float
    z_rate: float
    increase: float  # window share minus the baseline share
    p0: float = 0.0  # the baseline share it was judged against
    volume: float = 0.0  # stories the baseline expects per bucket

    def hot(self, th: Thresholds) -> bool:
        """Opens an episode."""
        return self.z >= th.z and self.increase >= th.min_share_increase

    def elevated(self, th: Thresholds) -> bool:
        """Keeps an open episode going."""
        return self.window.n > 0 and self.z >= th.z_rearm and self.increase >= th.min_share_increase / 2


# --- state of the longer windows -----------------------------------------------------------
def record_closed(
    history: dict[int, list[int]],
    recent: list[dict],
    index: int,
    bucket: Bucket,
    longest: int,
    keep: int,
    in_episode: bool = False,
) -> list[dict]:
    """A bucket closed: keep its counts, whether a surge's episode covers it, and its
    evidence for the longer windows (the counts until `catch_up` has folded them into the
    reference). Returns the new `recent` list."""
    if bucket.n or bucket.dups:
        history[index] = [bucket.n, bucket.neg, bucket.dups, int(in_episode)]
    oldest = index - longest + 1
    fresh = [e for e in recent if e["bucket"] >= oldest]
    return most_negative([*fresh, *({**e, "bucket": index} for e in bucket.evidence)], keep)


def mark_episode(history: dict[int, list[int]], first: int) -> None:
    """An episode opened on a window from bucket `first`: the closed buckets it holds are
    part of the surge and teach the reference little (`Baseline.episode_weight`)."""
    for index, counts in history.items():
        if index >= first:
            counts[3] = 1


def evidence_of_window(w: Window, buckets: Mapping[int, Bucket], recent: list[dict], keep: int) -> list[dict]:
    """The most negative stories of a window: from its open buckets and, for the part that
    is closed, from the evidence kept of closed buckets."""
    pool = [{k: v for k, v in e.items() if k != "bucket"} for e in recent if w.first <= e["bucket"] <= w.last]
    for index, bucket in buckets.items():
        if w.first <= index <= w.last:
            pool += bucket.evidence
    return most_negative(pool, keep)


def windows_of(
    short: int,
    longer: tuple[int, ...],
    buckets: Mapping[int, Bucket],
    history: Mapping[int, list[int]],
    next_close: int,
    head: int,
    since: int | None = None,
) -> list[Window]:
    """The short window and each longer one, counts only (evidence on demand), in one pass
    over the kept buckets. `since`: the first bucket after an episode that has ended, so
    that the stories it already reported do not raise it again through a longer window."""
    floor = since if since is not None else None
    out = [
        Window(first=head - size + 1 if floor is None else max(head - size + 1, floor), last=head)
        for size in (short, *longer)
    ]
    for index, (n, neg, dups, _) in history.items():
        if index < next_close:
            for w in out[1:]:
                if index >= w.first:
                    w.n, w.neg, w.dups = w.n + n, w.neg + neg, w.dups + dups
    for index, bucket in buckets.items():
        if index > head:
            continue
        for w in out[:1] if index < next_close else out:
            if index >= w.first:
                w.n, w.neg, w.dups = w.n + bucket.n, w.neg + bucket.neg, w.dups + bucket.dups
    return out


def catch_up(
    reference: Baseline,
    cursor: int | None,
    history: dict[int, list[int]],
    upto: int,
    alpha: float,
    long_alpha: float,
    robust_after: int,
) -> int | None:
    """Fold the closed buckets before `upto` (those older than the longest window) into
    the reference baseline, in order, and forget their counts. The windows are judged
    against this reference, so a burst does not become its own baseline while it lasts.
    Returns the new cursor (the first bucket not yet folded)."""
    if cursor is not None and cursor >= upto:
        return cursor  # nothing new is old enough (the common case: spare the scan)
    if cursor is None:  # the reference starts with the scope's first stories, not before
        if not history or min(history) >= upto:
            return None
        cursor = min(history)
    for index in sorted(i for i in history if i < upto):
        if index >= cursor:
            if index > cursor:
                reference.fold_empty(index - cursor, alpha, long_alpha)
            n, neg, _, in_episode = history[index]
            reference.fold(
                n,
                neg,
                alpha,
                long_alpha,
                robust=reference.buckets >= robust_after,
                weight=reference.episode_weight(n) if in_episode else 1.0,
            )
            cursor = index + 1
        del history[index]
    if upto > cursor:
        reference.fold_empty(upto - cursor, alpha, long_alpha)
        cursor = upto
    return cursor


# --- the judgement -------------------------------------------------------------------------
def judge(w: Window, base: Baseline, th: Thresholds, short_buckets: int) -> Verdict:
    """Both tests on one window; the cheap floors first, the tails only when they pass."""
    p0 = base.share
    increase = w.share - p0 if w.n else 0.0
    if w.n < th.min_count or w.neg < th.min_negatives or increase < th.min_share_increase / 2:
        # Neither opens an episode nor keeps one going: spare the tails.
        return Verdict(w.buckets, w, 0.0, 0.0, 0.0, increase, p0, base.volume)
    phi = base.dispersion  # stories come in clusters: n of them count as n/φ
    z_share = z_of_tail(beta_binomial_sf(w.neg / phi, w.n / phi, p0, base.concentration(short_buckets)))
    expected = base.negatives_per_bucket() * w.buckets
    z_rate = z_of_tail(negative_binomial_sf(w.neg / phi, expected / phi, RATE_SHAPE))
    z = max(z_share, min(z_rate, z_share + th.z - th.z_support))
    return Verdict(w.buckets, w, z, z_share, z_rate, increase, p0, base.volume)


def strongest(verdicts: list[Verdict], th: Thresholds) -> Verdict:
    """The verdict to act on: the shortest window that is hot (the sharpest picture of when
    the episode began, and the one that ends soonest after it), else the largest statistic."""
    hot = [v for v in verdicts if v.hot(th)]
    return min(hot, key=lambda v: v.scale) if hot else max(verdicts, key=lambda v: (v.z, -v.scale))
