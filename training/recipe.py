"""What a training run is given: its arguments, and the labelled examples they name.

Kept apart from finetune.py (which needs torch) so that lineage and evaluation can read a
run's data without building a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from finsentry.models.encoders import DEFAULT_ENCODER
from finsentry.training.data import Example, examples_sha256, file_sha256, read_labelled, read_tfns, read_tfnt


@dataclass
class TrainArguments:
    output_dir: Path
    sentiment_files: list[Path] = field(default_factory=list)  # TFNS-format CSVs
    topic_files: list[Path] = field(default_factory=list)  # TFNT-format CSVs
    labelled_files: list[Path] = field(default_factory=list)  # CSV/JSONL: text + sentiment/topic
    feedback: list[Example] = field(default_factory=list)  # analyst labels, already resolved to text
    parent: Path | None = None  # start from this model directory instead of the base encoder
    encoder: str = DEFAULT_ENCODER  # models.encoders name; all-mpnet-base-v2 for a teacher only
    method: str = "full"  # full | lora
    lora_r: int = 16
    lora_alpha: int = 32
    epochs: float = 5.0
    max_steps: int = 0  # >0 caps the run (tests, smoke runs)
    batch_size: int = 32
    learning_rate: float = 8e-5
    head_learning_rate: float = 2e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int = 128
    dev_fraction: float = 0.1
    seed: int = 13
    bf16: str = "auto"  # auto | on | off: autocast where the hardware computes bf16 natively
    threads: int = 0
    version: str | None = None
    teacher: Path | None = None  # distil from this model: soft labels for both heads on every example
    distill_weight: float = 1.0
    distill_temperature: float = 2.0
    distill_heads: str = "both"  # both | missing: soft labels only for the head an example has no gold label for
    style_augment: float = 0.0  # share of training examples given a news-style copy (training.restyle)
    average_last: float = 0.0  # >0: ship the mean of the weights over this last share of the steps
    average_every: int = 50  # steps between the snapshots averaged
    teacher_online: bool = (
        False  # score each batch with the teacher as it comes (short runs) instead of every text up front
    )
    shuffle_labels: bool = False  # deliberately broken run; the gate must reject it
    resume: bool = True
    progress: bool = True


def load_examples(args: TrainArguments) -> tuple[list[Example], dict[str, str]]:
    names = [Path(p).name for p in [*args.sentiment_files, *args.topic_files, *args.labelled_files]]
    if len(set(names)) != len(names):  # the card records files by name
        raise ValueError(f"training files must have distinct names: {names}")
    examples: list[Example] = []
    hashes: dict[str, str] = {}
    for path in args.sentiment_files:
        examples += read_tfns(path)
        hashes[Path(path).name] = file_sha256(path)
    for path in args.topic_files:
        examples += read_tfnt(path)
        hashes[Path(path).name] = file_sha256(path)
    for path in args.labelled_files:
        examples += read_labelled(path)
        hashes[Path(path).name] = file_sha256(path)
    if args.feedback:
        examples += args.feedback
        hashes["analyst_feedback"] = examples_sha256(args.feedback)
    return examples, hashes
