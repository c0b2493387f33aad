"""A versioned model store: candidates in, one promoted version out, rollback on demand.

Layout under the root (a directory: a local or shared file system, or a mounted bucket with
the caveats in docs/training.md; `RegistryStorage` is what an object-store prefix would
implement instead):

  versions/<version>/model/          the artifact (card.json, weights.safetensors, ...) with
                                     its lineage: heldout.jsonl, data/ (its training files)
  versions/<version>/report.json     the training run report
  versions/<version>/manifest.json   status, metrics, data hashes, parent, gate decision, events
  promoted.json                      the pointer: {"version", "stack", "updated_at", "reason"}

The pointer is the only truth about what is promoted; it is replaced atomically, so a
reader sees the old or the new version, never a half state. Manifests repeat the status
for people reading the directory; where they disagree with the pointer (a crash between
two writes), the pointer wins when read. When nothing is promoted the shipped model
(models/weights/default) serves, and `serving()` says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Protocol, Sequence

from finsentry.errors import FinsentryError
from finsentry.publish import ModelUpdatePublisher
from finsentry.records import ModelUpdate
from finsentry.settings import Settings

log = logging.getLogger("finsentry.registry")

Status = Literal["candidate", "promoted", "rejected", "retired", "shipped"]
# The model that ships inside the package: served until a version is promoted.
SHIPPED_MODEL = Path(__file__).resolve().parent / "weights" / "default"
MODEL_DIR = "model"
MANIFEST = "manifest.json"
REPORT = "report.json"
POINTER = "promoted.json"
_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

Publisher = Callable[[ModelUpdate], None]


class RegistryError(FinsentryError):
    """A registry operation that cannot be done as asked (unknown version, bad state)."""


def utcnow_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- storage ---------------------------------------------------------------------------------


class RegistryStorage(Protocol):
    """The bytes behind a registry. Keys are '/'-separated paths under the root.

    An object-store prefix implements the same operations: `write_text` as a put (atomic
    per object), `put_tree` as uploads whose manifest is written last (a version without a
    manifest does not exist), `local_dir` as a cached download, `lock` as a lease.
    """

    def read_text(self, key: str) -> str | None: ...

    def write_text(self, key: str, text: str) -> None: ...

    def put_tree(self, source: Path, key: str, extra: dict[str, str]) -> None: ...

    def list_dirs(self, key: str) -> list[str]: ...

    def local_dir(self, key: str) -> Path: ...

    def lock(self) -> contextlib.AbstractContextManager[None]: ...


class LocalStorage:
    """A directory on a local or shared file system."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def read_text(self, key: str) -> str | None:
        try:
            return self._path(key).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def write_text(self, key: str, text: str) -> None:
        """Write a temp file beside the target, fsync, then os.replace (atomic on POSIX)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put_tree(self, source: Path, key: str, extra: dict[str, str]) -> None:
        """Copy `source` to `key`/model plus the `extra` files; the directory appears whole
        (built under a temp name, then renamed)."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        try:
            shutil.copytree(source, staging / MODEL_DIR)
            for name, text in extra.items():
                (staging / name).write_text(text, encoding="utf-8")
            os.rename(staging, target)  # fails if the target appeared meanwhile: never overwrite
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def list_dirs(self, key: str) -> list[str]:
        path = self._path(key)
        if not path.is_dir():
            return []
        return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))

    def local_dir(self, key: str) -> Path:
        return self._path(key)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise writers (promote/rollback/register) across processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


# --- records ---------------------------------------------------------------------------------


@dataclass
class Manifest:
    version: str
    status: Status
    created_at: str | None  # when the model was trained (its card)
    registered_at: str
    parent: str | None
    method: str | None = None
    artifact_sha256: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)  # dev metrics and the golden evaluation
    data: dict[str, Any] = field(default_factory=dict)  # data files and their hashes
    decision: dict[str, Any] | None = None  # the gate: {"promote", "reasons", "checks", "at"}
    events: list[dict[str, Any]] = field(default_factory=list)  # status changes with reasons

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Manifest":
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    def add_event(self, action: str, status: Status, reason: str = "") -> None:
        self.status = status
        self.events.append({"at": utcnow_iso(), "action": action, "status": status, "reason": reason})


@dataclass
class Version:
    name: str
    path: Path  # the artifact directory, loadable by load_artifact / Engine
    manifest: Manifest

    @property
    def status(self) -> Status:
        return self.manifest.status

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        golden = (m.metrics.get("golden") or {}).get("sets", {})
        if not golden:  # e.g. the shipped model: only its card's dev metrics
            golden = {"dev": m.metrics.get("dev") or {}}
        headline = {
            f"{name}/{head}": round(vals[head]["accuracy"], 4)
            for name, vals in golden.items()
            for head in ("sentiment", "topic")
            if head in vals
        }
        return {
            "version": self.name,
            "status": self.status,
            "parent": m.parent,
            "created_at": m.created_at,
            "registered_at": m.registered_at,
            "accuracy": headline,
            "reasons": (m.decision or {}).get("reasons", []) if m.status == "rejected" else [],
        }


@dataclass
class Pointer:
    version: str | None = None
    stack: list[str] = field(default_factory=list)  # promotion history; rollback pops it
    updated_at: str | None = None
    reason: str = ""


def artifact_sha256(directory: Path) -> str:
    """One digest over every file of an artifact (names and contents), order-independent."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode() + b"\0")
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def read_card(directory: Path) -> dict[str, Any]:
    path = Path(directory) / "card.json"
    try:
        card: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return card
    except FileNotFoundError:
        raise RegistryError(f"{directory} is not a model artifact: no card.json") from None


# --- the registry ----------------------------------------------------------------------------


class Registry:
    """Versions, their manifests and the promoted pointer.

    `publisher` is called with a `ModelUpdate` after every promotion or rollback (workers
    follow the model-updates topic); without one the registry changes state only —
    `Registry.from_settings` wires the Kafka publisher.
    """

    def __init__(
        self,
        root: Path | str | RegistryStorage,
        publisher: Publisher | None = None,
        shipped: Path | None = SHIPPED_MODEL,
    ):
        self.storage: RegistryStorage = LocalStorage(Path(root)) if isinstance(root, (str, Path)) else root
        self.publisher = publisher
        self.shipped = Path(shipped) if shipped else None

    @classmethod
    def from_settings(cls, settings: Settings, publish: bool = True) -> Registry:
        publisher = None
        if publish:
            publisher = ModelUpdatePublisher(settings)
        return cls(settings.registry_dir, publisher=publisher)

    # --- reading ----------------------------------------------------------------------------

    def pointer(self) -> Pointer:
        raw = self.storage.read_text(POINTER)
        if raw is None:
            return Pointer()
        data = json.loads(raw)
        return Pointer(**{k: v for k, v in data.items() if k in Pointer.__dataclass_fields__})

    def _manifest(self, name: str) -> Manifest | None:
        raw = self.storage.read_text(f"versions/{name}/{MANIFEST}")
        return Manifest.from_dict(json.loads(raw)) if raw is not None else None

    def _version(self, name: str, manifest: Manifest, pointer: Pointer) -> Version:
        # The pointer wins over a manifest left stale by an interrupted update.
        if pointer.version == name:
            manifest.status = "promoted"
        elif manifest.status == "promoted":
            manifest.status = "retired"
        return Version(name, self.storage.local_dir(f"versions/{name}/{MODEL_DIR}"), manifest)

    def get(self, version: str) -> Version:
        """A registered version, or the shipped model when `version` names it."""
        manifest = self._manifest(version) if _VERSION_NAME.match(version) else None
        if manifest is not None:
            return self._version(version, manifest, self.pointer())
        shipped = self.shipped_version()
        if shipped is not None and shipped.name == version:
            return shipped
        raise RegistryError(f"no model version {version!r} in {self.describe_root()}")

    def list(self) -> list[Version]:
        """Every registered version, oldest registration first."""
        pointer = self.pointer()
        out = []
        for name in self.storage.list_dirs("versions"):
            manifest = self._manifest(name)
            if manifest is not None:  # a version exists once its manifest does
                out.append(self._version(name, manifest, pointer))
        return sorted(out, key=lambda v: (v.manifest.registered_at, v.name))

    def promoted(self) -> Version | None:
        name = self.pointer().version
        if name is None:
            return None
        manifest = self._manifest(name)
        if manifest is None:
            raise RegistryError(f"the promoted pointer names {name!r}, which has no manifest")
        return self._version(name, manifest, Pointer(version=name))

    def shipped_version(self) -> Version | None:
        if self.shipped is None or not (self.shipped / "card.json").exists():
            return None
        card = read_card(self.shipped)
        manifest = Manifest(
            version=card["version"],
            status="shipped",
            created_at=card.get("created_at"),
            registered_at=card.get("created_at") or "",
            parent=card.get("parent"),
            method=card.get("method"),
            metrics=card.get("metrics", {}),
            data=card.get("data", {}),
        )
        return Version(card["version"], self.shipped, manifest)

    def serving(self) -> Version | None:
        """What a worker should serve: the promoted version, else the shipped model."""
        return self.promoted() or self.shipped_version()

    def describe_root(self) -> str:
        root = getattr(self.storage, "root", None)
        return str(root) if root is not None else repr(self.storage)

    # --- writing ----------------------------------------------------------------------------

    def register(
        self, artifact_dir: Path, report: dict[str, Any] | None = None, evaluation: dict[str, Any] | None = None
    ) -> Version:
        """Add an artifact as a candidate. Registering the same artifact again returns the
        existing version; a different artifact under a taken version name is an error."""
        artifact_dir = Path(artifact_dir)
        card = read_card(artifact_dir)
        name = str(card.get("version", ""))
        if not _VERSION_NAME.match(name):
            raise RegistryError(f"version name {name!r} is not usable: letters, digits, '.', '_', '-' only")
        digest = artifact_sha256(artifact_dir)
        with self.storage.lock():
            existing = self._manifest(name)
            if existing is not None:
                if existing.artifact_sha256 == digest:
                    return self._version(name, existing, self.pointer())
                raise RegistryError(f"version {name} is already registered with a different artifact")
            report = report or {}
            metrics = {"dev": report.get("dev") or card.get("metrics", {}).get("dev", {})}
            if evaluation is not None:
                metrics["golden"] = evaluation
            manifest = Manifest(
                version=name,
                status="candidate",
                created_at=card.get("created_at"),
                registered_at=utcnow_iso(),
                parent=card.get("parent"),
                method=card.get("method"),
                artifact_sha256=digest,
                metrics=metrics,
                data=report.get("data") or card.get("data", {}),
            )
            manifest.add_event("register", "candidate", f"from {artifact_dir}")
            self.storage.put_tree(
                artifact_dir,
                f"versions/{name}",
                {REPORT: json.dumps(report, indent=2, default=str) + "\n", MANIFEST: manifest.to_json()},
            )
        log.info("model registered version=%s parent=%s", name, manifest.parent)
        return self.get(name)

    def _write_manifest(self, manifest: Manifest) -> None:
        self.storage.write_text(f"versions/{manifest.version}/{MANIFEST}", manifest.to_json())

    def _require(self, name: str) -> Manifest:
        manifest = self._manifest(name)
        if manifest is None:
            raise RegistryError(f"no model version {name!r} in {self.describe_root()}")
        return manifest

    def record_evaluation(self, version: str, evaluation: dict[str, Any], decision: dict[str, Any] | None) -> Version:
        """Attach a golden evaluation and a gate decision to a version (state unchanged)."""
        with self.storage.lock():
            manifest = self._require(version)
            manifest.metrics["golden"] = evaluation
            if decision is not None:
                manifest.decision = {**decision, "at": utcnow_iso()}
            self._write_manifest(manifest)
        return self.get(version)

    def parent_of(self, directory: Path) -> Version | None:
        """The registered version a model directory names as its parent, if it is registered."""
        parent = read_card(directory).get("parent")
        if not parent:
            return None
        try:
            return self.get(parent)
        except RegistryError:
            return None

    def reject(self, version: str, reasons: Sequence[str]) -> Version:
        if not reasons:
            raise RegistryError("a rejection needs at least one reason")
        with self.storage.lock():
            if self.pointer().version == version:
                raise RegistryError(f"{version} is promoted; roll back before rejecting it")
            manifest = self._require(version)
            decision = dict(manifest.decision or {})
            decision.update(promote=False, reasons=list(reasons), at=utcnow_iso())
            manifest.decision = decision
            manifest.add_event("reject", "rejected", "; ".join(reasons))
            self._write_manifest(manifest)
        log.warning("model rejected version=%s reasons=%s", version, json.dumps(reasons))
        return self.get(version)

    def promote(self, version: str, reason: str = "", force: bool = False) -> Version:
        """Make `version` the promoted one; the previous promoted version is retired.

        A rejected version is promoted only with force=True. Promoting the version that is
        already promoted changes nothing but publishes again (a retry after a failed publish).
        """
        with self.storage.lock():
            manifest = self._require(version)
            pointer = self.pointer()
            if pointer.version != version:
                if manifest.status == "rejected" and not force:
                    raise RegistryError(
                        f"{version} was rejected by the gate "
                        f"({'; '.join((manifest.decision or {}).get('reasons', []))}); use force to override"
                    )
                previous = pointer.version
                stack = pointer.stack + [version]
                self._write_pointer(Pointer(version, stack, utcnow_iso(), reason or "promoted"))
                if previous is not None:
                    self._set_status(previous, "retire", "retired", f"superseded by {version}")
                manifest.add_event(
                    "promote",
                    "promoted",
                    reason + (" (forced past the gate)" if force and manifest.status == "rejected" else ""),
                )
                self._write_manifest(manifest)
                log.info("model promoted version=%s previous=%s reason=%s", version, previous, reason)
        self._publish(ModelUpdate(action="promote", version=version))
        return self.get(version)

    def rollback(self, reason: str = "") -> Version:
        """Re-promote the version promoted before the current one (the shipped model when
        there was none); the current one is retired with the reason recorded."""
        with self.storage.lock():
            pointer = self.pointer()
            if pointer.version is None:
                raise RegistryError("nothing is promoted: there is nothing to roll back")
            current = pointer.version
            stack = pointer.stack[:-1] if pointer.stack and pointer.stack[-1] == current else list(pointer.stack)
            # Skip the current version and any earlier one rejected (or removed) since it served.
            while stack and (stack[-1] == current or self._raw_status(stack[-1]) in (None, "rejected")):
                stack.pop()
            target = stack[-1] if stack else None
            if target is None and self.shipped_version() is None:
                raise RegistryError(
                    f"{current} is the only promoted version and there is no shipped model to fall back to"
                )
            why = reason or "rollback"
            self._write_pointer(Pointer(target, stack, utcnow_iso(), f"rollback from {current}: {why}"))
            self._set_status(current, "rollback", "retired", f"rolled back: {why}")
            if target is not None:
                self._set_status(target, "rollback", "promoted", f"restored by rollback from {current}: {why}")
        restored = self.get(target) if target is not None else self.shipped_version()
        assert restored is not None
        log.warning("model rolled back from=%s to=%s reason=%s", current, restored.name, why)
        self._publish(ModelUpdate(action="rollback", version=restored.name))
        return restored

    def announce(self) -> Version:
        """Publish the serving version again (after a publish failed, or for new workers)."""
        serving = self.serving()
        if serving is None:
            raise RegistryError("nothing is promoted and there is no shipped model to announce")
        self._publish(ModelUpdate(action="promote", version=serving.name))
        return serving

    def _raw_status(self, name: str) -> str | None:
        manifest = self._manifest(name)
        return manifest.status if manifest is not None else None

    def _write_pointer(self, pointer: Pointer) -> None:
        self.storage.write_text(POINTER, json.dumps(asdict(pointer), indent=2) + "\n")

    def _set_status(self, name: str, action: str, status: Status, reason: str) -> None:
        manifest = self._manifest(name)
        if manifest is not None:
            manifest.add_event(action, status, reason)
            self._write_manifest(manifest)

    def _publish(self, update: ModelUpdate) -> None:
        if self.publisher is None:
            log.info("model update not published (no publisher) action=%s version=%s", update.action, update.version)
            return
        self.publisher(update)
