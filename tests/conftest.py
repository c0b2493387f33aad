"""Shared fixtures: the real embedded broker, settings pointing at temp paths, the model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from finsentry.settings import Settings  # noqa: E402
from finsentry.streams.broker import EmbeddedBroker, free_port  # noqa: E402


@pytest.fixture(scope="session")
def broker():
    """One tansu broker for the session (memory only). Tests use unique topic prefixes."""
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def make_settings(tmp_path: Path):
    """Settings for a test: temp paths, fast consumer-group timing, loopback everything."""

    def factory(**overrides) -> Settings:
        base = dict(
            data_dir=tmp_path / "data",
            store=f"sqlite:///{tmp_path / 'store.db'}",
            registry_dir=tmp_path / "registry",
            model_cache_dir=Path("var/test-model-cache").resolve(),
            outbox_path=tmp_path / "outbox.db",
            seen_path=tmp_path / "seen.db",
            broker_session_timeout_s=6.0,
            broker_heartbeat_s=0.5,
            backend="torch",
            web_port=free_port(),
            log_level="WARNING",
        )
        base.update(overrides)
        return Settings(_env_file=None, **base)

    return factory


@pytest.fixture(scope="session")
def engine():
    """The shipped model on torch fp32, loaded once per session."""
    from finsentry.models.engine import Engine

    return Engine.load(backend="torch")
