"""The registry: versions, statuses, the atomic promoted pointer, rollback, the shipped fallback.

The registry treats an artifact as opaque files plus card.json (it never loads weights), so
these tests use small artifact directories; training-produced artifacts go through it in
tests/training/test_pipeline.py.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from finsentry.models.registry import Registry, RegistryError, artifact_sha256
from finsentry.records import ModelUpdate


def make_artifact(root: Path, version: str, parent: str | None = None, payload: bytes | None = None) -> Path:
    directory = root / f"art-{version}"
    directory.mkdir(parents=True)
    (directory / "card.json").write_text(
        json.dumps(
            {
                "version": version,
                "parent": parent,
                "method": "full",
                "created_at": "2025-01-01T00:00:00+00:00",
                "data": {"files": {"a.csv": "00"}},
            }
        )
    )
    (directory / "weights.safetensors").write_bytes(payload or os.urandom(64))
    return directory


@pytest.fixture
def published() -> list[ModelUpdate]:
    return []


@pytest.fixture
def registry(tmp_path: Path, published) -> Registry:
    return Registry(tmp_path / "registry", publisher=published.append, shipped=None)


def test_register_lists_a_candidate_with_its_manifest(registry: Registry, tmp_path: Path):
    art = make_artifact(tmp_path, "v1")
    version = registry.register(
        art,
        {"data": {"files": {"x.csv": "ab"}}, "dev": {"sentiment": {"accuracy": 0.9}}},
        evaluation={"version": "v1", "sets": {}},
    )
    assert version.name == "v1" and version.status == "candidate"
    assert (version.path / "card.json").exists() and (version.path / "weights.safetensors").exists()
    manifest = version.manifest
    assert manifest.artifact_sha256 == artifact_sha256(art)
    assert manifest.data == {"files": {"x.csv": "ab"}} and manifest.metrics["dev"]["sentiment"]["accuracy"] == 0.9
    assert manifest.metrics["golden"]["version"] == "v1"
    assert [v.name for v in registry.list()] == ["v1"]
    assert registry.promoted() is None


def test_registering_again_is_idempotent_but_a_clash_is_refused(registry: Registry, tmp_path: Path):
    art = make_artifact(tmp_path, "v1", payload=b"same")
    first = registry.register(art, {})
    again = registry.register(art, {})
    assert again.name == first.name and len(registry.list()) == 1
    clash = make_artifact(tmp_path / "other", "v1", payload=b"different")
    with pytest.raises(RegistryError, match="different artifact"):
        registry.register(clash, {})


def test_bad_version_names_and_non_artifacts_are_refused(registry: Registry, tmp_path: Path):
    with pytest.raises(RegistryError, match="no card.json"):
        registry.register(tmp_path, {})
    with pytest.raises(RegistryError, match="not usable"):
        registry.register(make_artifact(tmp_path, "../escape"), {})
    with pytest.raises(RegistryError, match="no model version"):
        registry.get("nope")


def test_promote_retires_the_previous_and_publishes(registry: Registry, tmp_path: Path, published):
    for name in ("v1", "v2"):
        registry.register(make_artifact(tmp_path, name), {})
    registry.promote("v1", reason="first")
    registry.promote("v2", reason="better")
    statuses = {v.name: v.status for v in registry.list()}
    assert statuses == {"v1": "retired", "v2": "promoted"}
    assert registry.promoted().name == "v2"
    assert [(u.action, u.version) for u in published] == [("promote", "v1"), ("promote", "v2")]
    events = registry.get("v1").manifest.events
    assert [e["status"] for e in events] == ["candidate", "promoted", "retired"]
    assert events[-1]["reason"] == "superseded by v2"


def test_rollback_restores_the_previous_version_and_records_why(registry: Registry, tmp_path: Path, published):
    for name in ("v1", "v2", "v3"):
        registry.register(make_artifact(tmp_path, name), {})
        registry.promote(name)
    restored = registry.rollback("v3 raised false alerts")
    assert restored.name == "v2" and registry.promoted().name == "v2"
    v3 = registry.get("v3")
    assert v3.status == "retired" and "v3 raised false alerts" in v3.manifest.events[-1]["reason"]
    assert published[-1] == ModelUpdate(action="rollback", version="v2", at=published[-1].at)
    assert registry.rollback("again").name == "v1"
    assert {v.name: v.status for v in registry.list()} == {"v1": "promoted", "v2": "retired", "v3": "retired"}
    with pytest.raises(RegistryError, match="no shipped model"):
        registry.rollback("nothing left")
    assert registry.promoted().name == "v1"  # a refused rollback changes nothing


def test_rollback_skips_a_version_rejected_since_it_served(registry: Registry, tmp_path: Path):
    for name in ("v1", "v2", "v3"):
        registry.register(make_artifact(tmp_path, name), {})
        registry.promote(name)
    registry.reject("v2", ["found to mislabel earnings news"])
    assert registry.rollback("bad").name == "v1"


def test_rejected_needs_force_and_promoted_cannot_be_rejected(registry: Registry, tmp_path: Path):
    registry.register(make_artifact(tmp_path, "v1"), {})
    registry.register(make_artifact(tmp_path, "v2"), {})
    rejected = registry.reject("v2", ["sentiment macro_f1 below the floor"])
    assert rejected.status == "rejected"
    assert rejected.manifest.decision["reasons"] == ["sentiment macro_f1 below the floor"]
    with pytest.raises(RegistryError, match="rejected by the gate"):
        registry.promote("v2")
    registry.promote("v1")
    with pytest.raises(RegistryError, match="roll back before rejecting"):
        registry.reject("v1", ["no"])
    forced = registry.promote("v2", reason="operator override", force=True)
    assert forced.status == "promoted" and "forced" in forced.manifest.events[-1]["reason"]


def test_promoting_the_promoted_version_only_republishes(registry: Registry, tmp_path: Path, published):
    registry.register(make_artifact(tmp_path, "v1"), {})
    registry.promote("v1")
    events = len(registry.get("v1").manifest.events)
    registry.promote("v1")
    assert len(registry.get("v1").manifest.events) == events
    assert [u.version for u in published] == ["v1", "v1"]


def test_shipped_model_is_the_fallback(tmp_path: Path, published):
    shipped = make_artifact(tmp_path, "default-2025")
    registry = Registry(tmp_path / "registry", publisher=published.append, shipped=shipped)
    assert registry.promoted() is None
    assert registry.serving().name == "default-2025" and registry.serving().status == "shipped"
    assert registry.get("default-2025").path == shipped  # workers resolve rollback targets by name
    registry.register(make_artifact(tmp_path, "v1"), {})
    registry.promote("v1")
    assert registry.serving().name == "v1"
    back = registry.rollback("v1 is worse on formal news")
    assert back.name == "default-2025" and registry.promoted() is None
    assert registry.get("v1").status == "retired"
    assert published[-1].action == "rollback" and published[-1].version == "default-2025"


def test_pointer_wins_over_a_stale_manifest(registry: Registry, tmp_path: Path):
    """A crash between the pointer write and the manifest writes must not show two
    promoted versions: the pointer is the truth."""
    for name in ("v1", "v2"):
        registry.register(make_artifact(tmp_path, name), {})
    registry.promote("v1")
    registry.promote("v2")
    manifest_path = registry.storage.local_dir("versions/v1/manifest.json")
    stale = json.loads(manifest_path.read_text())
    stale["status"] = "promoted"  # as if the retire write never happened
    manifest_path.write_text(json.dumps(stale))
    assert {v.name: v.status for v in registry.list()} == {"v1": "retired", "v2": "promoted"}


def test_readers_never_see_a_half_written_pointer(registry: Registry, tmp_path: Path):
    """Promotions flip the pointer while readers read it: every read parses and names one
    of the two versions (os.replace is atomic)."""
    for name in ("v1", "v2"):
        registry.register(make_artifact(tmp_path, name), {})
    registry.promote("v1")
    stop = threading.Event()
    seen: set[str] = set()
    errors: list[BaseException] = []

    def read() -> None:
        while not stop.is_set():
            try:
                seen.add(registry.promoted().name)
            except BaseException as exc:  # noqa: BLE001 - any failure to read is the finding
                errors.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(60):
            registry.promote("v2" if i % 2 == 0 else "v1")
    finally:
        stop.set()
        reader.join()
    assert not errors
    assert seen <= {"v1", "v2"} and seen
    assert not [p for p in (tmp_path / "registry").iterdir() if p.name.endswith(".tmp")]


def test_promotion_is_recorded_before_a_failing_publish_raises(tmp_path: Path):
    def broken(_update):
        raise RuntimeError("broker down")

    registry = Registry(tmp_path / "registry", publisher=broken, shipped=None)
    registry.register(make_artifact(tmp_path, "v1"), {})
    with pytest.raises(RuntimeError, match="broker down"):
        registry.promote("v1")
    # The state is durable; announcing publishes the serving version again.
    assert registry.promoted().name == "v1"
    sent = []
    registry.publisher = sent.append
    assert registry.announce().name == "v1" and [(u.action, u.version) for u in sent] == [("promote", "v1")]
