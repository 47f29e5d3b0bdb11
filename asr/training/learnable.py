"""What a model can learn from an utterance, checked before training starts.

CTC emits at most one token per listener frame and needs a blank between two equal
tokens, so an utterance whose listener output has fewer frames than its characters
plus its repeated pairs has no CTC alignment at all: `ctc_loss(zero_infinity=True)`
would silently give it zero loss, and at decoding the right transcript would have
probability zero. An utterance with no listener frame gives the attention nothing to
attend to. icefall drops such utterances before training (`remove_short_and_long_utt`);
so do we, and training refuses to start when too many would go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from asr.data.manifest import Utterance
from asr.frontend.audio import SAMPLE_RATE
from asr.frontend.features import FeatureConfig
from asr.model import LASConfig
from asr.text import Vocabulary


def ctc_alignment_frames(ids: Sequence[int]) -> int:
    """The fewest frames a CTC alignment of `ids` needs: one per token, plus a blank between equal neighbours."""
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:], strict=False) if a == b)


def listener_frames(seconds: float, features: FeatureConfig, model: LASConfig, speed: float = 1.0) -> int:
    """Listener output frames of `seconds` of audio played at `speed` (1.1 is 10 % faster, so shorter)."""
    samples = round(seconds / speed * SAMPLE_RATE)
    return model.listener.output_frames(features.num_frames(samples))


@dataclass(frozen=True)
class Unlearnable:
    """An utterance the model cannot learn: its listener frames and the frames it would need."""

    utterance: Utterance
    frames: int
    needed: int


def find_unlearnable(
    utterances: Sequence[Utterance],
    vocab: Vocabulary,
    features: FeatureConfig,
    model: LASConfig,
    speed: float = 1.0,
) -> list[Unlearnable]:
    """The utterances with no listener frame, or (when the model trains CTC) fewer frames than a CTC
    alignment of their transcript needs, at the fastest `speed` they are played at."""
    found = []
    for utterance in utterances:
        frames = listener_frames(utterance.duration, features, model, speed)
        needed = ctc_alignment_frames(vocab.encode(utterance.text)) if model.ctc_weight > 0 else 1
        if frames < max(needed, 1):
            found.append(Unlearnable(utterance, frames, max(needed, 1)))
    return found


def rule(model: LASConfig) -> str:
    """The rule `find_unlearnable` applies, in words."""
    subsampling = f"{model.listener.subsampling}x subsampling"
    if model.ctc_weight > 0:
        return f"listener frames after {subsampling} < characters + repeated pairs (what a CTC alignment needs)"
    return f"no listener frame after {subsampling}"
