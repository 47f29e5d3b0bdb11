"""Validation during training: dev loss and greedy WER/CER of the model as it stands, and
attention plots of a few dev utterances.

Training calls `dev_metrics` on its main process after each epoch (and every
`validate_every` steps); the result reaches every process (`asr.training`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter

from asr.data.dataset import SpeechDataset, collate
from asr.data.manifest import Utterance
from asr.decoding.config import Hypothesis, SearchConfig
from asr.errors import UserError
from asr.frontend.pipeline import Frontend
from asr.model import LAS
from asr.outputs import safe_file_name
from asr.plotting import attention_figure, save_figure
from asr.recognize import recognize
from asr.scoring import score
from asr.text import Vocabulary

log = logging.getLogger(__name__)

Plot = tuple[str, Hypothesis, np.ndarray]
"""An utterance id, its hypothesis with attention, its features (T, D)."""


class ValidationError(UserError):
    """A dev set that cannot be scored."""


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether `precision` means bf16 autocast on `device`: "bf16", and "auto" on a GPU.

    Raises `UserError` for "bf16" on a CPU that oneDNN has no bf16 kernels for (one
    without AVX-512 BF16 or AMX: its LSTM primitive cannot be created).
    """
    if precision == "bf16" and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise UserError("precision: bf16 needs a GPU or a CPU with bf16 instructions (AVX-512 BF16, AMX); use fp32")
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast where `uses_bf16`; nothing otherwise."""
    if not uses_bf16(precision, device):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.no_grad()
def dev_metrics(
    model: LAS,
    frontend: Frontend,
    dev: Sequence[Utterance],
    vocab: Vocabulary,
    search: SearchConfig,
    precision: str,
    device: torch.device,
    workers: int,
    plots: int,
) -> tuple[dict[str, float], list[Plot]]:
    """Per-token dev losses (loss, attention_loss, ctc_loss over characters + <eos>), corpus
    WER and CER in percent of greedy search (with `search`'s other rules, without an LM), and
    the first `plots` utterances for attention plots.

    Utterances whose audio fails to decode are left out with a warning; raises
    `ValidationError` if none can be decoded.
    """
    model.eval()
    frontend.eval()
    greedy = dataclasses.replace(search, beam=1, lm_weight=0.0, keep_attention=plots > 0)
    loader = DataLoader(
        SpeechDataset(dev, vocab),
        batch_size=8,
        num_workers=workers,
        collate_fn=functools.partial(collate, pad_id=vocab.pad_id),
    )
    totals = {"loss": 0.0, "attention_loss": 0.0, "ctc_loss": 0.0}
    tokens = 0
    ids, refs, hyps, shown = [], [], [], []
    text = {u.id: u.text for u in dev}
    for batch in loader:
        for line in batch.failed:
            log.warning("validation skipped %s", line)
        if not batch.ids:
            continue
        batch = batch.to(device)
        with autocast(precision, device):
            features, lengths, hypotheses = recognize(
                model, frontend, batch.waveforms, batch.waveform_lengths, vocab, greedy
            )
            losses = model(features, lengths, batch.targets, batch.target_lengths)
        count = int(batch.target_lengths.sum()) + len(batch.ids)  # characters + <eos>
        for key, value in zip(totals, (losses.total, losses.attention, losses.ctc), strict=True):
            totals[key] += float(value) * count
        tokens += count
        for i, hypothesis in enumerate(hypotheses):
            ids.append(batch.ids[i])
            refs.append(text[batch.ids[i]])
            hyps.append(hypothesis.text)
            if len(shown) < plots:
                shown.append((batch.ids[i], hypothesis, features[i, : lengths[i]].float().cpu().numpy()))
    if not ids:
        raise ValidationError("no dev utterance could be decoded (see the warnings)")
    corpus, _ = score(ids, refs, hyps)
    metrics = {key: value / tokens for key, value in totals.items()}
    metrics.update(wer=corpus.wer, cer=corpus.cer)
    return metrics, shown


def write_plots(
    plots: Sequence[Plot], folder: Path, step: int, hop_seconds: float, writer: SummaryWriter | None
) -> None:
    """Write folder/NAME.png for each plot, NAME a safe file name made of the utterance id
    (`safe_file_name`), and each figure to TensorBoard at `step` when `writer` is given."""
    for utterance_id, hypothesis, features in plots:
        characters = list(hypothesis.text) + ["<eos>"]
        attention = hypothesis.attention.float().cpu().numpy()[: len(characters)]
        title = f"{utterance_id} step {step}: {hypothesis.text}"
        figure = attention_figure(attention, characters[: attention.shape[0]], features, hop_seconds, title)
        if writer is not None:
            writer.add_figure(f"attention/{utterance_id}", figure, step, close=False)
        save_figure(figure, folder / f"{safe_file_name(utterance_id)}.png")
