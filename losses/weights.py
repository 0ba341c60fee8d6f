"""Per-class weights for the entity loss.

    w_O = o_weight                                            (0.1: most tokens are O)
    w_c = min(max_class_weight, n_entity / (K * n_c))         for every entity tag c seen in train
    w_c = max_class_weight                                    for entity tags never seen (masked I- tags)

n_c is the train count of tag c, n_entity the number of non-O train tokens and K the number of
entity tags seen in train: the "balanced" inverse frequency of scikit-learn, over entity tags only,
so an average entity tag weighs 1 and rare ones up to the cap.
"""
from __future__ import annotations

from collections import Counter

import torch


def entity_class_weights(tag_names: list[str], tag_counts: Counter, o_weight: float = 0.1,
                         max_class_weight: float = 5.0) -> torch.Tensor:
    seen = {tag: tag_counts[tag] for tag in tag_names if tag != "O" and tag_counts[tag] > 0}
    n_entity = sum(seen.values())
    weights = []
    for tag in tag_names:
        if tag == "O":
            weights.append(o_weight)
        elif tag in seen:
            weights.append(min(max_class_weight, n_entity / (len(seen) * seen[tag])))
        else:
            weights.append(max_class_weight)
    return torch.tensor(weights, dtype=torch.float32)


def format_weights(tag_names: list[str], weights: torch.Tensor) -> str:
    return ", ".join(f"{tag}={w:.3g}" for tag, w in zip(tag_names, weights.tolist()))
