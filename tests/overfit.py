"""Overfitting a tiny model on one batch until greedy search spells it: the tests' proof that a model learns."""

from __future__ import annotations

import torch

from asr.decoding.config import SearchConfig
from asr.decoding.greedy import greedy_search
from asr.model import LAS
from asr.text import Vocabulary


def overfit(
    model: LAS,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    words: list[str],
    vocabulary: Vocabulary,
    *,
    lr: float,
    steps: int,
    check_every: int,
    max_length_ratio: float,
) -> int | None:
    """Adam steps on `batch` (features (B, T, 80), their lengths (B,), targets (B, U), their lengths (B,))
    until greedy search gives `words`; the step it happened at, or None if it never did. The model is
    left in eval mode."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    features, feature_lengths, targets, target_lengths = batch
    search = SearchConfig(beam=1, max_length_ratio=max_length_ratio)
    for step in range(1, steps + 1):
        model.train()
        optimizer.zero_grad()
        model(features, feature_lengths, targets, target_lengths).total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if step % check_every == 0:
            model.eval()
            if [h.text for h in greedy_search(model, features, feature_lengths, vocabulary, search)] == words:
                return step
    model.eval()
    return None
