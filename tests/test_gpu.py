"""The model, the searches and the front end on a CUDA GPU agree with the CPU.

Every test here is marked `gpu` and skips without CUDA: `pytest -m gpu` selects the
device tests, and benchmarks/gpu_check.sh runs them on a lent GPU machine.
"""

from __future__ import annotations

import copy

import pytest
import torch

from asr.decoding.beam import beam_search
from asr.decoding.config import SearchConfig
from asr.decoding.greedy import greedy_search
from asr.frontend.features import FeatureConfig
from asr.frontend.normalization import compute_stats
from asr.frontend.pipeline import Frontend
from asr.model import LAS
from tests.overfit import overfit
from tests.test_model import VOCAB, random_batch, tiny

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]

CUDA = torch.device("cuda")
WORDS = ["ONE", "TWO", "THREE"]


def on(device: torch.device, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(tensor.to(device) for tensor in tensors)


@pytest.fixture(scope="module")
def spelled() -> tuple[LAS, LAS, torch.Tensor, torch.Tensor]:
    """A tiny seeded model overfitted (on the GPU: fast, and no denormal slowdown) until greedy search
    spells WORDS from three random feature sequences, so confident that no near-tie can flip a token;
    the model on the CPU, a copy on the GPU, and the features (B, T, 80) and lengths (B,) on the CPU."""
    torch.manual_seed(0)
    features, lengths, _, _ = random_batch([40, 32, 24], [1, 1, 1])
    encoded = [torch.tensor(VOCAB.encode(word)) for word in WORDS]
    targets = torch.nn.utils.rnn.pad_sequence(encoded, batch_first=True, padding_value=VOCAB.pad_id)
    target_lengths = torch.tensor([len(e) for e in encoded])
    on_gpu = LAS(tiny("location")).to(CUDA)
    batch = on(CUDA, features, lengths, targets, target_lengths)
    reached = overfit(on_gpu, batch, WORDS, VOCAB, lr=3e-3, steps=300, check_every=10, max_length_ratio=1.0)
    assert reached is not None, "the tiny model did not learn to spell its three words in 300 steps"
    return copy.deepcopy(on_gpu).cpu(), on_gpu, features, lengths


def test_a_bf16_training_step_on_cuda_gives_finite_losses_and_gradients_close_to_fp32_on_the_cpu() -> None:
    torch.manual_seed(0)
    model = LAS(tiny("location"))
    batch = random_batch([90, 70, 40], [12, 9, 5])
    reference = model(*batch).total.item()
    model.to(CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        losses = model(*on(CUDA, *batch))
    losses.total.backward()
    assert torch.isfinite(losses.total) and torch.isfinite(losses.attention) and torch.isfinite(losses.ctc)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert losses.total.item() == pytest.approx(reference, rel=0.03)  # bf16 keeps ~3 significant digits


@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_search_on_cuda_gives_the_cpu_tokens(spelled, search) -> None:
    cpu_model, gpu_model, features, lengths = spelled
    config = SearchConfig(beam=4, max_length_ratio=1.0, keep_attention=True)
    on_cpu = search(cpu_model, features, lengths, VOCAB, config)
    on_gpu = search(gpu_model, *on(CUDA, features, lengths), VOCAB, config)
    assert [h.text for h in on_cpu] == WORDS
    assert [h.tokens for h in on_gpu] == [h.tokens for h in on_cpu]
    assert [h.score for h in on_gpu] == pytest.approx([h.score for h in on_cpu], abs=1e-3)
    torch.testing.assert_close(on_gpu[0].attention, on_cpu[0].attention, atol=1e-3, rtol=1e-3)


def test_the_frontend_on_cuda_matches_the_cpu_on_a_padded_batch(speech) -> None:
    config = FeatureConfig()
    frontend = Frontend(config, compute_stats([speech], config)).eval()
    waveforms = torch.nn.utils.rnn.pad_sequence([speech, speech[:9000]], batch_first=True)
    lengths = torch.tensor([speech.shape[0], 9000])
    expected, expected_lengths = frontend(waveforms, lengths)
    features, frame_lengths = frontend.to(CUDA)(*on(CUDA, waveforms, lengths))
    assert frame_lengths.tolist() == expected_lengths.tolist()
    torch.testing.assert_close(features.cpu(), expected, atol=1e-3, rtol=1e-4)  # test_features' LogMel tolerance
