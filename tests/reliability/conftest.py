"""Fixtures of the reliability suite (`pytest tests/reliability -m reliability`).

Everything runs on real components: the session's embedded tansu broker (tests/conftest.py),
`finsentry worker` processes with the shipped model, the SQLite store, and osmem-server
standing in for Elasticsearch where a test needs a server it can stop.
"""

from __future__ import annotations

import pytest
from reliability_harness import SECRETS, Pipeline


@pytest.fixture
def pipeline(broker, tmp_path):
    """pipeline(**settings) → a Pipeline of its own (topics, group, store); its workers are
    stopped afterwards, and their logs must not contain any of the secrets they were given."""
    made: list[Pipeline] = []

    def factory(**overrides) -> Pipeline:
        p = Pipeline(broker, tmp_path / f"pipeline-{len(made)}", overrides)
        p.workdir.mkdir(parents=True, exist_ok=True)
        made.append(p)
        return p

    yield factory
    for p in made:
        p.close()
    for p in made:
        logs = p.logs()
        leaked = [name for name, value in SECRETS.items() if value in logs]
        assert not leaked, f"secrets {leaked} appear in a worker log"


@pytest.fixture(scope="session")
def shared_pipeline(broker, tmp_path_factory):
    """One worker on default bind settings, shared by the hostile-input and security tests
    (a worker start costs a model load). Its log must stay free of its secrets too."""
    p = Pipeline(broker, tmp_path_factory.mktemp("shared-pipeline"))
    p.start_worker()
    yield p
    p.close()
    leaked = [name for name, value in SECRETS.items() if value in p.logs()]
    assert not leaked, f"secrets {leaked} appear in the shared worker's log"
