"""How well a language model predicts a text: corpus-level bits per character and perplexity."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from asr.data.sampler import BucketBatchSampler
from asr.lm import CharLM
from asr.lm.corpus import TextCorpus
from asr.progress import Track, no_progress


@dataclass(frozen=True)
class LMScore:
    """The log-probability (nats) of a text summed over its `tokens` (characters + one <eos> per sentence)."""

    sentences: int
    tokens: int
    log_prob: float

    @property
    def loss(self) -> float:
        """Nats per token: corpus-level, not a mean of per-sentence figures."""
        return -self.log_prob / self.tokens

    @property
    def bits_per_character(self) -> float:
        """Bits per token (characters and <eos>)."""
        return self.loss / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

    def summary(self) -> str:
        return (
            f"{self.sentences:,} sentences, {self.tokens - self.sentences:,} characters + {self.sentences:,} <eos>: "
            f"{self.bits_per_character:.4f} bits per character, perplexity {self.perplexity:.4f}"
        )


@torch.no_grad()
def evaluate_lm(model: CharLM, corpus: TextCorpus, max_tokens: int = 20000, track: Track = no_progress) -> LMScore:
    """Score every sentence of `corpus` with `model` (on its device), in batches of at most
    `max_tokens` padded tokens (a longer sentence gets a batch of its own)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    lengths = corpus.lengths
    sampler = BucketBatchSampler(lengths, max(max_tokens, max(lengths)), shuffle=False)
    total = 0.0
    batches: Iterable[list[int]] = track(sampler, len(sampler), "scoring")
    for indices in batches:
        batch = corpus.batch(indices).to(device)
        total += float(model(batch.inputs, batch.targets, batch.lengths).double().sum())
    model.train(was_training)
    return LMScore(len(corpus), sum(lengths), total)
