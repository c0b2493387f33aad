"""The scraper source list: one YAML file (settings.sources_file, `--config`).

    sources:
      - type: rss            # rss | atom | reviews | replay
        name: wire-markets   # unique; the `source` of its documents and its metric label
        url: https://example.com/markets.rss   # replay: a file path, relative to this file
        interval: 5m         # seconds, or 30s / 5m / 1h
        options: {full_text: true}

Each type checks its own options (feeds.FeedOptions, reviews.ReviewOptions,
replay.ReplayOptions), so a typo fails at start-up with the source's name, not at 3 a.m.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from finsentry.errors import FinsentryError
from finsentry.ingest.feeds import FeedOptions, FeedSource
from finsentry.ingest.fetcher import PoliteFetcher
from finsentry.ingest.replay import ReplayOptions, ReplaySource
from finsentry.ingest.reviews import ReviewOptions, ReviewSource
from finsentry.ingest.source import Source
from finsentry.records import describe_validation_error
from finsentry.settings import Settings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class ConfigError(FinsentryError, ValueError):
    """The source list cannot be used; the message says where and why."""


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["rss", "atom", "reviews", "replay"]
    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    url: str = Field(..., min_length=1)
    interval: float = Field(300.0, gt=0, description="Seconds between polls.")
    options: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True

    @field_validator("interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _DURATION.match(value)
            if not match:
                raise ValueError(f"'{value}' is not a duration like 30, 30s, 5m or 1h")
            return float(match.group(1)) * _UNITS[match.group(2)]
        return value


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[SourceConfig]

    @model_validator(mode="after")
    def _unique_names(self) -> "SourcesFile":
        names = [s.name for s in self.sources]
        doubles = sorted({n for n in names if names.count(n) > 1})
        if doubles:
            raise ValueError(f"source names must be unique; repeated: {', '.join(doubles)}")
        return self


def load_sources(path: Path | str) -> list[SourceConfig]:
    """The enabled sources of a YAML file: a mapping with `sources:` or a bare list."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the source list {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if isinstance(data, list):
        data = {"sources": data}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a `sources:` list")
    try:
        parsed = SourcesFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from None
    configs = [s for s in parsed.sources if s.enabled]
    for config in configs:
        if config.type == "replay":
            config.url = str(_relative_to(path.parent, config.url))
        _options_of(config)  # validate every source's options now
    return configs


def _relative_to(base: Path, location: str) -> Path:
    location = location.removeprefix("file://")
    candidate = Path(location).expanduser()
    return candidate if candidate.is_absolute() else base / candidate


def _options_of(config: SourceConfig) -> BaseModel:
    model = {"rss": FeedOptions, "atom": FeedOptions, "reviews": ReviewOptions, "replay": ReplayOptions}[config.type]
    try:
        return model.model_validate(config.options)
    except ValidationError as exc:
        raise ConfigError(f"source '{config.name}' options: {describe_validation_error(exc)}") from None


def build_source(config: SourceConfig, fetcher: PoliteFetcher, settings: Settings) -> Source:
    options = _options_of(config)
    if config.type in ("rss", "atom"):  # feedparser reads both; the type documents intent
        return FeedSource(config.name, config.url, config.interval, fetcher, options)
    if config.type == "reviews":
        return ReviewSource(config.name, config.url, config.interval, fetcher, options)
    return ReplaySource(config.name, Path(config.url), config.interval, options, max_text_bytes=settings.max_text_bytes)
