"""Detector configuration from Settings, with per-scope threshold overrides.

Overrides are one string so they fit an environment variable:
``topic:Earnings=z=5,min=30;entity:AAPL=z=3;entity=min=10;entity:SPY=off`` — entries
separated by ';', each ``scope[:key]=name=value,...``. A ``scope:key`` entry wins over a
bare ``scope`` entry, which wins over the global defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from finsentry.labels import TOPIC_LABELS
from finsentry.settings import Settings

SCOPES = ("global", "topic", "entity")


@dataclass(frozen=True)
class Thresholds:
    z: float = 4.0  # opens an episode (warning): the one knob of false alarms against sensitivity
    z_critical: float = 7.0
    z_rearm: float = 2.0  # below this at a bucket boundary, the episode ends
    z_support: float = 2.0  # share evidence a surprising count of negatives needs beside it
    min_count: int = 5  # distinct stories in the window
    min_negatives: int = 6  # distinct negative stories in the window
    min_share_increase: float = 0.15
    cusum_k: float = 0.05  # slack, share units (detects a shift of 2k)
    cusum_h: float = 12.0  # log-likelihood ratio; 0 disables CUSUM
    cooldown_s: float = 1800.0
    enabled: bool = True


# Override names as written in the settings string → Thresholds field and type.
_NAMES: dict[str, tuple[str, type]] = {
    "z": ("z", float),
    "critical": ("z_critical", float),
    "rearm": ("z_rearm", float),
    "min": ("min_count", int),
    "min_negative": ("min_negatives", int),
    "support": ("z_support", float),
    "increase": ("min_share_increase", float),
    "cusum_k": ("cusum_k", float),
    "cusum_h": ("cusum_h", float),
    "cooldown": ("cooldown_s", float),
}


@dataclass(frozen=True)
class DetectorConfig:
    bucket_s: int = 60
    lateness_s: int = 300
    window_buckets: int = 3
    longer_windows: tuple[int, ...] = (15, 60)  # further time scales judged at once, in buckets
    halflife_buckets: float = 60.0
    drift_halflife_buckets: float = 1440.0
    min_baseline_buckets: int = 5
    evidence_docs: int = 5
    watched_entities: tuple[str, ...] = ()
    defaults: Thresholds = Thresholds()
    overrides: dict[tuple[str, str | None], Thresholds] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.bucket_s <= 0:
            raise ValueError(f"alert_bucket_s must be positive, got {self.bucket_s}")
        if self.lateness_s < 0:
            raise ValueError(f"alert_lateness_s must not be negative, got {self.lateness_s}")
        if self.window_buckets < 1:
            raise ValueError(f"alert_window_buckets must be at least 1, got {self.window_buckets}")
        if any(size <= self.window_buckets for size in self.longer_windows):
            raise ValueError(
                f"alert_longer_windows_buckets must each be longer than alert_window_buckets "
                f"({self.window_buckets}), got {list(self.longer_windows)}"
            )
        if self.halflife_buckets <= 0 or self.drift_halflife_buckets <= 0:
            raise ValueError("alert_baseline_halflife_buckets and alert_drift_halflife_buckets must be positive")

    @classmethod
    def from_settings(cls, settings: Settings) -> "DetectorConfig":
        defaults = Thresholds(
            z=settings.alert_z_threshold,
            z_critical=settings.alert_z_critical,
            z_rearm=settings.alert_z_rearm,
            min_count=settings.alert_min_count,
            min_negatives=settings.alert_min_negatives,
            z_support=settings.alert_z_support,
            min_share_increase=settings.alert_min_share_increase,
            cusum_k=settings.alert_cusum_k,
            cusum_h=settings.alert_cusum_h,
            cooldown_s=float(settings.alert_cooldown_s),
        )
        return cls(
            bucket_s=settings.alert_bucket_s,
            lateness_s=settings.alert_lateness_s,
            window_buckets=settings.alert_window_buckets,
            longer_windows=parse_windows(settings.alert_longer_windows_buckets),
            halflife_buckets=settings.alert_baseline_halflife_buckets,
            drift_halflife_buckets=settings.alert_drift_halflife_buckets,
            min_baseline_buckets=settings.alert_min_baseline_buckets,
            evidence_docs=settings.alert_evidence_docs,
            watched_entities=tuple(settings.parsed_watched_entities()),
            defaults=defaults,
            overrides=parse_overrides(settings.alert_scope_overrides, defaults),
        )

    def thresholds(self, scope: str, key: str) -> Thresholds:
        return self.overrides.get((scope, key)) or self.overrides.get((scope, None)) or self.defaults

    @property
    def longest_window(self) -> int:
        return max((self.window_buckets, *self.longer_windows))


def parse_windows(text: str) -> tuple[int, ...]:
    """'15,60' → (15, 60); empty → no longer windows."""
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"alert_longer_windows_buckets must be comma-separated whole numbers, got {text!r}") from None
    return tuple(sizes)


def parse_overrides(text: str, defaults: Thresholds) -> dict[tuple[str, str | None], Thresholds]:
    """Parse the override string; a ValueError names the entry that is wrong and why."""
    parsed: dict[tuple[str, str | None], dict[str, object]] = {}
    for entry in (part.strip() for part in text.split(";")):
        if not entry:
            continue
        selector, sep, params = entry.partition("=")
        if not sep or not params.strip():
            raise ValueError(f"alert_scope_overrides entry {entry!r}: expected 'scope[:key]=name=value,...'")
        scope, _, key = selector.strip().partition(":")
        scope, key = scope.strip(), key.strip() or None
        if scope not in SCOPES:
            raise ValueError(f"alert_scope_overrides entry {entry!r}: scope must be one of {SCOPES}, got {scope!r}")
        if scope == "topic" and key is not None:
            key = _canonical_topic(key, entry)
        changes = parsed.setdefault((scope, key), {})
        for item in (p.strip() for p in params.split(",")):
            if item == "off":
                changes["enabled"] = False
                continue
            name, sep, value = item.partition("=")
            if not sep or name.strip() not in _NAMES:
                raise ValueError(
                    f"alert_scope_overrides entry {entry!r}: unknown setting {item!r}; "
                    f"use off or one of {', '.join(_NAMES)}"
                )
            attr, kind = _NAMES[name.strip()]
            try:
                changes[attr] = kind(value.strip())
            except ValueError:
                raise ValueError(
                    f"alert_scope_overrides entry {entry!r}: {name.strip()} must be a number, got {value.strip()!r}"
                ) from None
    # A keyed entry starts from its scope-wide entry, which starts from the defaults.
    out: dict[tuple[str, str | None], Thresholds] = {}
    for (scope, key), changes in sorted(parsed.items(), key=lambda item: item[0][1] is not None):
        base = out.get((scope, None), defaults) if key is not None else defaults
        out[(scope, key)] = replace(base, **changes)
    return out


def _canonical_topic(key: str, entry: str) -> str:
    for label in TOPIC_LABELS:
        if label.casefold() == key.casefold():
            return label
    raise ValueError(
        f"alert_scope_overrides entry {entry!r}: unknown topic {key!r}; topics are {', '.join(TOPIC_LABELS)}"
    )
