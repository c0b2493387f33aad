"""Plain fp32 torch scoring of a labelled set, for evaluation during and after training."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from finsentry.training.batching import sorted_batches


@torch.inference_mode()
def logits_for(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 128):
    """(sentiment_logits, topic_logits) as float32 arrays, in input order."""
    model.eval()
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    lengths = [len(ids) for ids in enc["input_ids"]]
    sent = np.zeros((len(texts), model.sentiment_head.out_features), dtype=np.float32)
    top = np.zeros((len(texts), model.topic_head.out_features), dtype=np.float32)
    for idx in sorted_batches(lengths, batch_size):
        batch = tokenizer.pad({"input_ids": [enc["input_ids"][i] for i in idx]}, return_tensors="pt")
        s, t = model(batch["input_ids"], batch["attention_mask"])
        sent[idx] = s.float().numpy()
        top[idx] = t.float().numpy()
    return sent, top
