"""The `Frontend` (`asr.frontend.pipeline`): normalisation always, augmentation and VTLP only in
training."""

import torch

from asr.frontend.features import FeatureConfig, LogMel, VtlpConfig
from asr.frontend.normalization import StatsAccumulator, compute_stats
from asr.frontend.pipeline import Frontend
from asr.frontend.specaugment import SpecAugmentConfig

CONFIG = FeatureConfig()


def logmel(waveform: torch.Tensor) -> torch.Tensor:
    features, lengths = LogMel(CONFIG)(waveform[None], torch.tensor([waveform.shape[0]]))
    return features[0, : int(lengths[0])]


def test_frontend_normalises_and_augments_only_in_training(speech) -> None:
    features = logmel(speech)
    accumulator = StatsAccumulator()
    accumulator.update(features)
    frontend = Frontend(CONFIG, accumulator.result(), SpecAugmentConfig(time_masks=2, freq_masks=2))
    lengths = torch.tensor([speech.shape[0]])
    frontend.eval()
    normalized, frames = frontend(speech[None], lengths)
    torch.testing.assert_close(normalized[0].mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    frontend.train()
    torch.manual_seed(0)
    augmented, _ = frontend(speech[None], lengths)
    assert frames[0] == features.shape[0] and not torch.equal(augmented, normalized)


def test_frontend_perturbs_the_vocal_tract_only_in_training(speech) -> None:
    stats = compute_stats([speech], CONFIG)
    lengths = torch.tensor([speech.shape[0]])
    plain, perturbed = Frontend(CONFIG, stats), Frontend(CONFIG, stats, vtlp=VtlpConfig(max_warp=0.1))
    perturbed.eval()
    torch.testing.assert_close(perturbed(speech[None], lengths)[0], plain(speech[None], lengths)[0])
    perturbed.train()
    torch.manual_seed(0)
    assert not torch.allclose(perturbed(speech[None], lengths)[0], plain(speech[None], lengths)[0], atol=1e-2)
