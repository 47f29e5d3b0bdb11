"""SpecAugment (`asr.frontend.specaugment`): masks within each utterance's real frames, time
warping of a padded batch."""

import torch
import torch.nn.functional as F

from asr.frontend.specaugment import SpecAugment, SpecAugmentConfig, mask_spans, time_warp, warp
from asr.model import lengths_to_mask


def augment(config: SpecAugmentConfig, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    module = SpecAugment(config)
    module.train()
    return module(features, lengths)


def test_specaugment_does_nothing_in_eval_mode() -> None:
    features = torch.randn(2, 50, 80)
    module = SpecAugment(SpecAugmentConfig())
    module.eval()
    assert module(features, torch.tensor([50, 30])) is features


def test_specaugment_masks_stay_within_bounds_and_real_frames() -> None:
    torch.manual_seed(0)
    config = SpecAugmentConfig(
        freq_masks=2, freq_mask_width=10, time_masks=2, time_mask_width=20, time_mask_max_ratio=0.2
    )
    lengths = torch.tensor([200, 120])
    features = torch.randn(2, 200, 80) + 5  # never 0 before masking
    features[1, 120:] = 0
    for _ in range(20):
        out = augment(config, features, lengths)
        assert (out[1, 120:] == 0).all()
        for b, length in enumerate(lengths.tolist()):
            zero = out[b, :length] == 0  # (L, D)
            masked_bins = zero.all(dim=0).sum()
            masked_frames = zero.all(dim=1).sum()
            assert masked_bins <= 2 * 10
            assert masked_frames <= 2 * min(20, int(0.2 * length))
            assert zero.any()


def test_time_warp_keeps_the_length_and_moves_frames() -> None:
    torch.manual_seed(0)
    features = torch.arange(100, dtype=torch.float32)[None, :, None].repeat(1, 1, 4)
    lengths = torch.tensor([100])
    warped = time_warp(features, lengths, 10)
    assert warped.shape == features.shape
    assert not torch.equal(warped, features)
    assert warped[0, 0, 0] == 0 and warped[0, -1, 0] == 99  # end points stay put
    assert torch.equal(time_warp(features, lengths, 0), features)


def test_mask_spans_stay_within_each_rows_limit_and_width() -> None:
    torch.manual_seed(0)
    limits, widths = torch.tensor([50, 20, 8, 0]), torch.tensor([10, 10, 3, 5])
    seen = torch.zeros(4, 50, dtype=torch.bool)
    for _ in range(200):
        masked = mask_spans(50, limits, widths, count=1)  # one span a row: contiguous
        for row, (limit, width) in enumerate(zip(limits.tolist(), widths.tolist(), strict=True)):
            where = masked[row].nonzero()[:, 0]
            assert len(where) <= width and (where < limit).all()
            if len(where):
                assert where[-1] - where[0] + 1 == len(where)
        seen |= masked
    assert seen[0, :40].any() and seen[0, 40:].any() and not seen[3].any()  # spans land all over a row


def test_warping_a_padded_batch_moves_each_utterances_centre_as_interpolating_it_alone_would() -> None:
    """`warp` stretches [0, c) onto [0, c + s) and [c, L) onto [c + s, L) within each utterance's
    length L, as F.interpolate with aligned corners does for the utterance alone; padding stays."""
    torch.manual_seed(0)
    lengths, centre, shift = torch.tensor([60, 45, 30, 20]), torch.tensor([30, 20, 12, 9]), torch.tensor([5, -4, 0, 1])
    features = torch.randn(4, 60, 3) * lengths_to_mask(lengths, 60)[..., None]
    warped = warp(features, lengths, centre, shift)
    for b, (length, c, s) in enumerate(zip(lengths.tolist(), centre.tolist(), shift.tolist(), strict=True)):
        utterance = features[b, :length].T[None]  # (1, D, L) for interpolate
        left = F.interpolate(utterance[..., :c], size=c + s, mode="linear", align_corners=True)
        right = F.interpolate(utterance[..., c:], size=length - c - s, mode="linear", align_corners=True)
        torch.testing.assert_close(warped[b, :length], torch.cat([left, right], dim=-1)[0].T, atol=1e-5, rtol=1e-5)
        assert (warped[b, length:] == 0).all()
    assert torch.equal(warped[2], features[2])  # no shift, no change
