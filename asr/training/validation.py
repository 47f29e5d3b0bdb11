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
from typing import Literal

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


Precision = Literal["fp32", "bf16", "fp16"]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """What `precision` ("auto", "fp32", "bf16", "fp16") means on `device`. "auto": bf16 on a GPU
    that has it (compute capability 8.0 and later), fp16 with a gradient scaler on one that does
    not (V100, T4: bf16 RNNs there are slow or fail), fp32 on a CPU.

    Raises `UserError` for bf16 on a GPU without it or on a CPU that oneDNN has no bf16 kernels
    for (one without AVX-512 BF16 or AMX: its LSTM primitive cannot be created), and for fp16 on a CPU.
    """
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        if precision == "bf16" and not bf16:
            raise UserError(f"precision: bf16, but {device} has no bf16 (compute capability < 8.0); use fp16 or auto")
        if precision == "auto":
            return "bf16" if bf16 else "fp16"
        return precision  # type: ignore[return-value]
    if precision == "bf16" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise UserError("precision: bf16 needs a GPU or a CPU with bf16 instructions (AVX-512 BF16, AMX); use fp32")
    if precision == "fp16":
        raise UserError("precision: fp16 needs a GPU; use fp32 (or bf16 on a CPU with bf16 instructions)")
    return "bf16" if precision == "bf16" else "fp32"


def autocast(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to bf16 or fp16 (a resolved precision); nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


@torch.no_grad()
def dev_metrics(
    model: LAS,
    frontend: Frontend,
    dev: Sequence[Utterance],
    vocab: Vocabulary,
    search: SearchConfig,
    precision: Precision,
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
    corpus, _ = score(ids, refs, hyps, vocab.text)
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
