"""The tagger network: a BERT-family encoder, mean pooling, and one logit per tag.

The same module is trained, exported and tested, so what tract runs is what was evaluated.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

# Large negative bias for padded key positions. Finite (not -inf) so a fully padded row can
# never turn into NaN, and small enough in magnitude to stay exact after int8 quantization
# (the mask never passes through a quantized op).
MASK_BIAS = -10000.0


class Tagger(nn.Module):
    """Encoder -> masked mean pooling -> dropout -> linear head (logits, one per tag).

    Mean pooling is what all-MiniLM-L6-v2 was pre-trained with, and works for DistilBERT too.
    The attention mask is turned into an additive 4-D bias here, in the wrapper: transformers
    then uses it as-is, and the exported graph has no `Flatten` over the mask, which tract
    cannot shape when batch and sequence are both symbolic.
    """

    def __init__(self, encoder: nn.Module, num_tags: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_tags)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.to(torch.float32)
        bias = (1.0 - mask)[:, None, None, :] * MASK_BIAS
        hidden = self.encoder(input_ids=input_ids, attention_mask=bias).last_hidden_state
        summed = (hidden * mask[:, :, None]).sum(dim=1)
        pooled = summed / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        return self.head(self.dropout(pooled))


def load_encoder(base: Path | str) -> nn.Module:
    """A pre-trained BERT-family encoder from a local folder (no hub access is possible)."""
    return AutoModel.from_pretrained(str(base), attn_implementation="eager")


def keep_rows(encoder: nn.Module, keep_ids: list[int]) -> nn.Module:
    """The encoder with only the word-embedding rows `keep_ids`, in that order (a pruned
    vocabulary's new id n is the old id keep_ids[n])."""
    old = encoder.embeddings.word_embeddings.weight.data
    rows = nn.Embedding(len(keep_ids), old.shape[1], padding_idx=0)
    rows.weight.data.copy_(old[torch.tensor(keep_ids)])
    encoder.embeddings.word_embeddings = rows
    encoder.config.vocab_size = len(keep_ids)
    return encoder


def random_encoder(model_type: str, **sizes) -> nn.Module:
    """A small randomly initialised encoder of a given family, for export-path tests."""
    config = AutoConfig.for_model(model_type, **sizes)
    config._attn_implementation = "eager"
    return AutoModel.from_config(config, attn_implementation="eager")
