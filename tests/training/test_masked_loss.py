"""The two-task loss: a row labelled for one task trains the encoder and that task's head only."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from finsentry.models.classifier import MultiTaskClassifier
from finsentry.training.data import MISSING
from finsentry.training.finetune import masked_loss

IDS = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 0]])
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])


class TinyEncoder(nn.Module):
    """Stand-in for MiniLM (the loss does not care what encodes): an embedding table."""

    def __init__(self, vocab: int = 16, hidden: int = 8):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(last_hidden_state=self.embed(input_ids))


def gradients(model, rows: list[int], sentiment: list[int], topic: list[int]) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    s_logits, t_logits = model(IDS[rows], MASK[rows])
    masked_loss(s_logits, t_logits, torch.tensor(sentiment), torch.tensor(topic)).backward()
    return {name: torch.zeros_like(p) if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}


def head(grads: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return torch.cat([grads[f"{name}.weight"].flatten(), grads[f"{name}.bias"]])


def model() -> MultiTaskClassifier:
    torch.manual_seed(0)
    return MultiTaskClassifier(TinyEncoder(), hidden_size=8).eval()  # eval: no dropout noise


def test_a_row_labelled_for_one_task_gives_the_other_head_no_gradient():
    m = model()
    sentiment_only = gradients(m, [0, 1], [0, 2], [MISSING, MISSING])
    assert head(sentiment_only, "sentiment_head").abs().sum() > 0
    assert head(sentiment_only, "topic_head").abs().sum() == 0
    assert sentiment_only["encoder.embed.weight"].abs().sum() > 0
    topic_only = gradients(m, [0, 1], [MISSING, MISSING], [4, 19])
    assert head(topic_only, "topic_head").abs().sum() > 0
    assert head(topic_only, "sentiment_head").abs().sum() == 0


def test_in_a_mixed_batch_each_head_learns_from_its_own_rows_only():
    m = model()
    mixed = gradients(m, [0, 1], [2, MISSING], [MISSING, 7])
    alone_sentiment = gradients(m, [0], [2], [MISSING])
    alone_topic = gradients(m, [1], [MISSING], [7])
    assert torch.allclose(head(mixed, "sentiment_head"), head(alone_sentiment, "sentiment_head"), atol=1e-7)
    assert torch.allclose(head(mixed, "topic_head"), head(alone_topic, "topic_head"), atol=1e-7)
