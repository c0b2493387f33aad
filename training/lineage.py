"""What a model was trained on and what it held out, rebuilt from its card.

The held-out split is where forgetting is measured when the model's child is trained; the
rest of its training data is the replay pool the child rehearses. Runs started here write
the split beside the artifact (heldout.jsonl) and keep a copy of every training file in
data/, so the files travel with the version into the registry: a run's replay file and the
extra files it read live in places later runs do not look (the run directory, a changing
extra directory), yet its children and grandchildren replay them. For a model trained
without them (the shipped default), the split is rebuilt exactly as training carved it:
the same files (checked by hash), fraction and seed, through the same functions.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path

from finsentry.errors import FinsentryError
from finsentry.labels import SENTIMENT_LABELS, TOPIC_LABELS
from finsentry.training.data import MISSING, Example, file_sha256, read_labelled, read_tfns, read_tfnt, stratified_split
from finsentry.training.recipe import load_examples

log = logging.getLogger("finsentry.training.lineage")

HELDOUT_FILE = "heldout.jsonl"
DATA_DIR = "data"  # beside the artifact: copies of the files it was trained on
REPLAY_FILE = "replay.jsonl"


class HeldoutUnavailable(FinsentryError):
    """The model's held-out split cannot be reproduced (missing or changed data)."""


def write_examples(examples: list[Example], path: Path) -> Path:
    """JSONL that `read_labelled` reads back: text + label names."""
    with open(path, "w", encoding="utf-8") as fh:
        for ex in examples:
            row: dict = {"text": ex.text}
            if ex.sentiment != MISSING:
                row["sentiment"] = SENTIMENT_LABELS[ex.sentiment]
            if ex.topic != MISSING:
                row["topic"] = TOPIC_LABELS[ex.topic]
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def training_split(args) -> tuple[list[Example], list[Example]]:
    """(train, dev) of a TrainArguments, as training.finetune.train carves them."""
    examples, _ = load_examples(args)
    return stratified_split(examples, args.dev_fraction, args.seed)


def write_heldout(args, artifact_dir: Path, report: dict | None = None) -> Path:
    """Save the dev split of a finished run beside its artifact."""
    _, dev = training_split(args)
    expected = (report or {}).get("data", {}).get("dev_examples")
    if expected is not None and expected != len(dev):
        raise RuntimeError(f"rebuilt dev split has {len(dev)} examples, training reported {expected}")
    return write_examples(dev, Path(artifact_dir) / HELDOUT_FILE)


def keep_training_files(args, artifact_dir: Path) -> Path:
    """Copy the run's training files to the artifact's data/, under the names its card
    records them by (training refuses two files of one name)."""
    target = Path(artifact_dir) / DATA_DIR
    target.mkdir(parents=True, exist_ok=True)
    for path in [*args.sentiment_files, *args.topic_files, *args.labelled_files]:
        shutil.copyfile(path, target / Path(path).name)
    return target


def save_lineage(args, artifact_dir: Path, report: dict | None = None) -> None:
    """What the model's children need of it: its held-out split and its training files."""
    write_heldout(args, artifact_dir, report)
    keep_training_files(args, artifact_dir)


def _resolve(recorded: str, digest: str, data_dir: Path | None, model_dir: Path | None = None) -> Path:
    candidates = [Path(model_dir) / DATA_DIR / Path(recorded).name] if model_dir is not None else []
    candidates.append(Path(recorded))
    if data_dir is not None:
        candidates.append(Path(data_dir) / Path(recorded).name)
    for path in candidates:
        if path.is_file() and file_sha256(path) == digest:
            return path
    raise HeldoutUnavailable(f"training file {recorded} (sha256 {digest[:12]}…) is not available with the same content")


def _read_any(path: Path) -> list[Example]:
    name = path.name.lower()
    if name.startswith("tfns") and name.endswith(".csv"):
        return read_tfns(path)
    if name.startswith("tfnt") and name.endswith(".csv"):
        return read_tfnt(path)
    return read_labelled(path)


def _card(model_dir: Path) -> dict:
    return json.loads((Path(model_dir) / "card.json").read_text(encoding="utf-8"))


def heldout_examples(model_dir: Path, data_dir: Path | None = None) -> list[Example]:
    """The model's dev split: saved beside it, or rebuilt from the files its card names."""
    model_dir = Path(model_dir)
    saved = model_dir / HELDOUT_FILE
    if saved.exists():
        return read_labelled(saved)
    card = _card(model_dir)
    files: dict[str, str] = dict(card.get("data", {}).get("files", {}))
    if not files:
        raise HeldoutUnavailable(f"{model_dir}: the card lists no training files")
    if "analyst_feedback" in files:
        raise HeldoutUnavailable(f"{model_dir}: trained on analyst feedback but no {HELDOUT_FILE} was saved")
    examples: list[Example] = []
    for recorded, digest in files.items():  # the card keeps load order: sentiment, topic, labelled
        examples += _read_any(_resolve(recorded, digest, data_dir, model_dir))
    hyper = card.get("hyperparameters", {})
    _, dev = stratified_split(examples, float(hyper.get("dev_fraction", 0.1)), int(hyper.get("seed", 13)))
    expected = card.get("data", {}).get("dev_examples")
    if expected is not None and expected != len(dev):
        raise HeldoutUnavailable(f"{model_dir}: rebuilt split has {len(dev)} examples, the card says {expected}")
    return dev


def replay_pool(model_dir: Path, data_dir: Path | None = None) -> list[Example]:
    """The model's training data that is still available, minus its held-out split.

    Analyst feedback is not in the pool: the store keeps every label, so each run gets all
    of them as new data anyway. Files that are gone or changed are skipped with a warning.
    """
    card = _card(model_dir)
    held = {(e.text, e.sentiment, e.topic) for e in heldout_examples(model_dir, data_dir)}
    pool: list[Example] = []
    for recorded, digest in card.get("data", {}).get("files", {}).items():
        if recorded == "analyst_feedback":
            continue
        try:
            path = _resolve(recorded, digest, data_dir, model_dir)
        except HeldoutUnavailable as exc:
            log.warning("replay file skipped: %s", exc)
            continue
        pool += [e for e in _read_any(path) if (e.text, e.sentiment, e.topic) not in held]
    return pool


def write_replay(model_dir: Path, data_dir: Path | None, fraction: float, seed: int, path: Path) -> Path:
    """A seeded sample of the model's replay pool, as a labelled file for its child's run.
    It enters the child as labelled data, so the child's dev split (epoch choice,
    temperatures) and held-out split hold old data as well as new."""
    pool = replay_pool(model_dir, data_dir)
    sample = random.Random(seed).sample(pool, int(len(pool) * fraction))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_examples(sample, Path(path))
