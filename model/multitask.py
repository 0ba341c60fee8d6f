"""One shared transformer encoder, three heads: intent and command on the sentence
representation (the first token, [CLS] / <s>), BIO entity tags on every subword.

The model returns logits only; losses live in `losses/`. The invalid-label mask is applied
here, inside forward, so training, evaluation and argmax all see the same masked logits.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, BertConfig, BertModel, PreTrainedModel

from nlu_collapse.config import TINY_MAX_LENGTH, Config
from nlu_collapse.model.masking import MaskValue, apply_mask


def tiny_architecture(cfg: Config) -> dict:
    """BertConfig sizes of the tiny encoder from the `tiny_*` flags; the feed-forward layer is
    4 x hidden, as in BERT, so one flag scales the whole block."""
    return dict(hidden_size=cfg.tiny_hidden, num_hidden_layers=cfg.tiny_layers, num_attention_heads=cfg.tiny_heads,
                intermediate_size=4 * cfg.tiny_hidden, max_position_embeddings=TINY_MAX_LENGTH)


# The default tiny encoder (2 layers x 128 hidden x 2 heads): Config's defaults are its one source.
TINY = tiny_architecture(Config())


def build_encoder(name: str, vocab_size: int, tiny: dict | None = None) -> PreTrainedModel:
    """`tiny`: a randomly initialised BERT of the `tiny` sizes (BertConfig keys, default TINY);
    anything else: `AutoModel.from_pretrained`."""
    if name == "tiny":
        return tiny_encoder(BertConfig(vocab_size=vocab_size, **(tiny or TINY)))
    return AutoModel.from_pretrained(name, trust_remote_code=False)  # never code from a model folder or the hub


def tiny_encoder(config: BertConfig) -> BertModel:
    """The tiny encoder for a BertConfig, built from the flags or read back from a run's record. No
    pooler: the heads read the first token's hidden state, and the checkpoints hold no pooler weights."""
    return BertModel(config, add_pooling_layer=False)


class MultiTaskNLU(nn.Module):
    def __init__(self, encoder: PreTrainedModel, n_intents: int, n_commands: int | None, n_tags: int,
                 invalid_tag_mask: torch.Tensor, mask_value: MaskValue, dropout: float = 0.1):
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.intent_head = nn.Linear(hidden, n_intents)
        self.command_head = nn.Linear(hidden, n_commands) if n_commands else None
        self.entity_head = nn.Linear(hidden, n_tags)
        self.register_buffer("invalid_tag_mask", invalid_tag_mask.bool(), persistent=False)  # (C,) True = masked
        self.mask_value = mask_value

    def named_parts(self) -> dict[str, nn.Module]:
        """The encoder and each head, by name (for per-module gradient norms)."""
        modules = {"encoder": self.encoder, "intent": self.intent_head, "entity": self.entity_head}
        if self.command_head is not None:
            modules["command"] = self.command_head
        return modules

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        hidden = self.dropout(hidden)
        sentence = hidden[:, 0]  # (B, H)
        logits = {"intent": self.intent_head(sentence),                                          # (B, I)
                  "entity": apply_mask(self.entity_head(hidden), self.invalid_tag_mask, self.mask_value)}  # (B, T, C)
        if self.command_head is not None:
            logits["command"] = self.command_head(sentence)                                      # (B, K)
        return logits
