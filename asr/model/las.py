"""The LAS module: listener + speller + CTC head, and its training losses."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from asr.model.attention import AttentionConfig
from asr.model.listener import Listener, ListenerConfig
from asr.model.speller import Memory, Speller, SpellerConfig


@dataclass(frozen=True)
class LASConfig:
    """The whole model. Special token ids follow `asr.text.Vocabulary`."""

    listener: ListenerConfig = field(default_factory=ListenerConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    speller: SpellerConfig = field(default_factory=SpellerConfig)
    vocab_size: int = 32
    ctc_weight: float = 0.3
    label_smoothing: float = 0.1
    blank_id: int = 0
    pad_id: int = 1
    sos_id: int = 2
    eos_id: int = 3

    def __post_init__(self) -> None:
        if not 0 <= self.ctc_weight <= 1:
            raise ValueError(f"ctc_weight must lie in [0, 1], got {self.ctc_weight}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if max(self.blank_id, self.pad_id, self.sos_id, self.eos_id) >= self.vocab_size:
            raise ValueError(f"special token ids must be below vocab_size={self.vocab_size}")


@dataclass(frozen=True)
class Losses:
    """Per-token losses of a batch: `total` = w * ctc + (1 - w) * attention; `tokens` () counts targets
    + eos, a tensor on the batch's device (no wait for a GPU until it is read)."""

    total: torch.Tensor
    attention: torch.Tensor
    ctc: torch.Tensor
    tokens: torch.Tensor


def fixed_shapes(values: torch.Tensor) -> bool:
    """Whether teacher forcing over `values` runs every utterance every step (on a GPU)."""
    return values.is_cuda


class LAS(nn.Module):
    """Listener + speller + CTC head. `forward` computes the training losses."""

    def __init__(self, config: LASConfig) -> None:
        super().__init__()
        self.config = config
        self.listener = Listener(config.listener)
        memory_dim = self.listener.output_dim
        self.speller = Speller(config.speller, config.attention, memory_dim, config.vocab_size)
        self.ctc_head = nn.Linear(memory_dim, config.vocab_size) if config.ctc_weight > 0 else None

    def encode(
        self, features: torch.Tensor, lengths: torch.Tensor, host_lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D), (B,) -> listener output (B, T', V), (B,); `host_lengths`: `lengths` on the host,
        if the caller has them (see `Listener.forward`)."""
        return self.listener(features, lengths, host_lengths)

    def ctc_log_probs(self, encoded: torch.Tensor) -> torch.Tensor:
        """(B, T', V) -> CTC log-probabilities (B, T', vocab) in float32."""
        if self.ctc_head is None:
            raise ValueError("this model has no CTC head (ctc_weight was 0 in training)")
        return torch.log_softmax(self.ctc_head(encoded).float(), dim=-1)

    def teacher_forced_logits(
        self, memory: Memory, targets: torch.Tensor, target_lengths: torch.Tensor, sampling_prob: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, L+1, vocab) and attention (B, L+1, T') for inputs <sos> + targets.

        Logits and weights past an utterance's <eos> are zero. With `sampling_prob` > 0, each
        input after the first is, with that probability, the model's own previous prediction
        instead of the reference (scheduled sampling). A speller without input feeding and
        without sampling takes `Speller.teacher_forced`'s path (the same outputs as stepping,
        computed over all steps at once); the others `Speller.forced_steps`.

        On a CPU, step i runs only for the utterances whose output i exists (i <= target
        length): the batch is ordered longest target first, so they are a prefix of it, and
        utterances leave as they end, which saves their compute. On a GPU every utterance runs
        every step and the steps past its <eos> are zeroed after: the shapes stay fixed, no
        step waits for the host, and the step loop's launches do not grow with each departure.
        """
        b, steps = targets.shape[0], targets.shape[1] + 1
        target_lengths = target_lengths.to(targets.device)
        sos = targets.new_full((b, 1), self.config.sos_id)
        inputs = torch.cat([sos, targets], dim=1)  # (B, S)
        forced = functools.partial(self.speller.forced_steps, sampling_prob=sampling_prob)
        if not self.speller.config.input_feeding and sampling_prob == 0:
            forced = self.speller.teacher_forced
        if fixed_shapes(memory.values):
            logits, weights = forced(memory, inputs, [b] * steps)
            past_eos = torch.arange(steps, device=targets.device)[None, :, None] > target_lengths[:, None, None]
            return logits.masked_fill(past_eos, 0), weights.masked_fill(past_eos, 0)
        order = torch.argsort(target_lengths, descending=True, stable=True)  # (B,) longest target first
        running = torch.searchsorted(  # (S,) utterances whose step i exists: target length >= i
            -target_lengths[order], -torch.arange(steps, device=targets.device), right=True
        ).tolist()
        logits, weights = forced(memory.select(order), inputs.index_select(0, order), running)
        restore = torch.argsort(order)  # (B,) back to the batch's own order
        return logits.index_select(0, restore), weights.index_select(0, restore)

    def forward(
        self,
        features: torch.Tensor,
        lengths: torch.Tensor,
        targets: torch.Tensor,
        target_lengths: torch.Tensor,
        sampling_prob: float = 0.0,
        host_lengths: torch.Tensor | None = None,
        host_target_lengths: torch.Tensor | None = None,
    ) -> Losses:
        """Losses of a batch. Targets (B, L) are padded with pad_id and hold no sos/eos.

        `host_lengths` and `host_target_lengths`: `lengths` and `target_lengths` on the host, if the
        caller has them (a training step on a GPU does): the listener packs with them and CTC counts
        with them, where copying the device's would wait for it."""
        config = self.config
        encoded, encoded_lengths = self.encode(features, lengths, host_lengths)
        memory = self.speller.memory(encoded, encoded_lengths)
        logits, _ = self.teacher_forced_logits(memory, targets, target_lengths, sampling_prob)
        # outputs: targets followed by <eos> at each utterance's own length, pad elsewhere
        outputs = F.pad(targets, (0, 1), value=config.pad_id)
        outputs[torch.arange(targets.shape[0], device=targets.device), target_lengths.to(targets.device)] = (
            config.eos_id
        )
        characters = target_lengths.to(targets.device).sum()
        tokens = characters + targets.shape[0]
        attention = F.cross_entropy(
            logits.float().flatten(0, 1),
            outputs.flatten(),
            ignore_index=config.pad_id,
            label_smoothing=config.label_smoothing,
            reduction="sum",
        ) / tokens.clamp(min=1)
        if self.ctc_head is None:
            ctc = attention.new_zeros(())
        else:
            log_probs = self.ctc_log_probs(encoded).transpose(0, 1)  # (B, T', V) -> (T', B, V) for ctc_loss
            ctc = F.ctc_loss(
                log_probs,
                targets,
                encoded_lengths if host_lengths is None else self.listener.output_lengths(host_lengths),
                target_lengths if host_target_lengths is None else host_target_lengths,
                blank=config.blank_id,
                reduction="sum",
                zero_infinity=True,
            ) / characters.clamp(min=1)
        total = config.ctc_weight * ctc + (1 - config.ctc_weight) * attention
        return Losses(total=total, attention=attention, ctc=ctc, tokens=tokens)
