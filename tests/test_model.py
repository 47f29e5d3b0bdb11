import math
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from asr.frontend.audio import load_audio
from asr.frontend.features import FeatureConfig, LogMel
from asr.model import (
    ATTENTIONS,
    LAS,
    AttentionConfig,
    BiLSTM,
    LASConfig,
    Listener,
    ListenerConfig,
    Memory,
    SpellerConfig,
    lengths_to_mask,
    masked_softmax,
)
from asr.model.listener import renamed_old_directions
from asr.text import Vocabulary
from tests.overfit import overfit

VOCAB = Vocabulary.default()


def tiny(
    kind: str = "location",
    frontend: str = "none",
    ctc_weight: float = 0.3,
    smoothing: float = 0.1,
    input_feeding: bool = True,
    projection: int = 0,
) -> LASConfig:
    listener = ListenerConfig(
        frontend=frontend, frontend_dim=32, layers=2, units=48, reduce=(1,), dropout=0.0, projection=projection
    )
    return LASConfig(
        listener=listener,
        attention=AttentionConfig(kind=kind, dim=48, heads=2),
        speller=SpellerConfig(embedding_dim=24, units=64, dropout=0.0, input_feeding=input_feeding),
        vocab_size=len(VOCAB),
        ctc_weight=ctc_weight,
        label_smoothing=smoothing,
    )


def random_batch(lengths: list[int], target_lengths: list[int]) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(len(lengths), max(lengths), 80, generator=generator)
    targets = torch.randint(4, len(VOCAB), (len(lengths), max(target_lengths)), generator=generator)
    for i, n in enumerate(target_lengths):
        targets[i, n:] = VOCAB.pad_id
    return features, torch.tensor(lengths), targets, torch.tensor(target_lengths)


@pytest.mark.parametrize(("frontend", "projection"), [("none", 0), ("linear", 0), ("conv2d", 0), ("none", 6)])
def test_listener_lengths_are_exact_and_padding_does_not_leak(frontend: str, projection: int) -> None:
    torch.manual_seed(0)
    config = ListenerConfig(
        frontend=frontend, frontend_dim=16, layers=3, units=8, reduce=(0, 2), dropout=0.0, projection=projection
    )
    listener = Listener(config).eval()
    features, lengths, _, _ = random_batch([83, 64, 31], [1, 1, 1])
    out, out_lengths = listener(features, lengths)
    for i, n in enumerate(lengths.tolist()):
        if frontend == "conv2d":
            n = ((n - 3) // 2 + 1 - 3) // 2 + 1
        expected = math.ceil(math.ceil(n / 2) / 2)  # two pyramid layers, each ceil(n / 2)
        assert out_lengths[i] == expected
        alone, _ = listener(features[i : i + 1, : lengths[i]], lengths[i : i + 1])
        torch.testing.assert_close(out[i, :expected], alone[0, :expected], atol=1e-5, rtol=1e-4)
        assert (out[i, expected:] == 0).all()
    assert config.subsampling == (16 if frontend == "conv2d" else 4)


@pytest.mark.parametrize("kind", sorted(ATTENTIONS))
def test_attention_weights_sum_to_one_over_real_frames_only(kind: str) -> None:
    torch.manual_seed(0)
    attention = ATTENTIONS[kind](12, 20, AttentionConfig(kind=kind, dim=8, heads=2))
    memory = torch.randn(3, 9, 20)
    mask = lengths_to_mask(torch.tensor([9, 5, 1]), 9)
    previous = mask.float() / mask.sum(-1, keepdim=True)
    context, weights = attention(torch.randn(3, 12), attention.prepare(memory), memory, mask, previous)
    assert context.shape == (3, 20) and weights.shape == (3, 9)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert (weights[~mask] == 0).all()


@pytest.mark.parametrize("kind", sorted(ATTENTIONS))
def test_hypotheses_sharing_an_utterance_attend_as_if_its_memory_were_copied(kind: str) -> None:
    """Beam search passes K queries per utterance against one copy of its memory."""
    torch.manual_seed(0)
    attention = ATTENTIONS[kind](12, 20, AttentionConfig(kind=kind, dim=8, heads=2))
    memory = torch.randn(2, 9, 20)
    mask = lengths_to_mask(torch.tensor([9, 4]), 9)
    copies = torch.arange(2).repeat_interleave(3)  # K = 3 hypotheses per utterance
    query = torch.randn(6, 12)
    previous = torch.softmax(torch.randn(6, 9).masked_fill(~mask[copies], float("-inf")), dim=-1)
    shared = attention(query, attention.prepare(memory), memory, mask, previous)
    copied = attention(query, attention.prepare(memory[copies]), memory[copies], mask[copies], previous)
    for a, b in zip(shared, copied, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kind", ["additive", "location"])
def test_a_windowed_attention_is_the_full_one_renormalised_over_its_window(kind: str) -> None:
    """Each row scores the frames from a quarter of the window before its previous peak (moved
    back to end within its utterance) exactly as the full attention does; zero elsewhere."""
    torch.manual_seed(0)
    attention = ATTENTIONS[kind](12, 20, AttentionConfig(kind=kind, dim=8, location_kernel=5))
    memory = torch.randn(2, 30, 20)
    mask = lengths_to_mask(torch.tensor([30, 17]), 30)
    copies = torch.arange(2).repeat_interleave(3)  # K = 3 hypotheses per utterance
    peaks = torch.tensor([0, 12, 29, 3, 9, 16])  # rows near either end of their utterance, and between
    previous = F.one_hot(peaks, 30).float() * 0.6 + mask[copies].float() * 0.4 / mask[copies].sum(-1, keepdim=True)
    query, keys = torch.randn(6, 12), attention.prepare(memory)
    full_context, full = attention(query, keys, memory, mask, previous)
    context, weights = attention(query, keys, memory, mask, previous, window=8)
    for row, peak in enumerate(peaks.tolist()):
        start = min(max(peak - 2, 0), [30, 17][row // 3] - 8)
        inside = torch.zeros(30, dtype=torch.bool)
        inside[start : start + 8] = True
        expected = full[row] * inside / (full[row] * inside).sum()
        torch.testing.assert_close(weights[row], expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(context, torch.bmm(weights.view(2, 3, 30), memory).flatten(0, 1))
    assert not torch.allclose(context, full_context)


@pytest.mark.parametrize("input_feeding", [True, False])
@pytest.mark.parametrize("kind", sorted(ATTENTIONS))
def test_loss_of_a_padded_batch_equals_the_utterances_alone(kind: str, input_feeding: bool) -> None:
    torch.manual_seed(0)
    model = LAS(tiny(kind, input_feeding=input_feeding)).eval()
    features, lengths, targets, target_lengths = random_batch([70, 51, 33], [9, 4, 6])
    with torch.no_grad():
        batch = model(features, lengths, targets, target_lengths)
        attention_sum = ctc_sum = 0.0
        for i in range(3):
            n, m = int(lengths[i]), int(target_lengths[i])
            alone = model(
                features[i : i + 1, :n], lengths[i : i + 1], targets[i : i + 1, :m], target_lengths[i : i + 1]
            )
            attention_sum += float(alone.attention) * (m + 1)
            ctc_sum += float(alone.ctc) * m
    assert int(batch.tokens) == int(target_lengths.sum()) + 3
    assert float(batch.attention) == pytest.approx(attention_sum / int(batch.tokens), rel=1e-5)
    assert float(batch.ctc) == pytest.approx(ctc_sum / int(target_lengths.sum()), rel=1e-5)


def test_losses_match_torch_functions_on_a_hand_made_case() -> None:
    """The attention loss is label-smoothed cross-entropy over targets + <eos>; the CTC loss is
    torch's ctc_loss on the listener output; the total mixes them with ctc_weight."""
    torch.manual_seed(0)
    features, lengths, targets, target_lengths = random_batch([40], [5])
    plain = LAS(tiny(ctc_weight=0.0, smoothing=0.0)).eval()
    smoothed = LAS(tiny(ctc_weight=0.0, smoothing=0.2)).eval()
    smoothed.load_state_dict(plain.state_dict())
    joint = LAS(tiny(ctc_weight=0.4, smoothing=0.0)).eval()
    joint.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        memory = plain.speller.memory(*plain.encode(features, lengths))
        logits, _ = plain.teacher_forced_logits(memory, targets, target_lengths)
        outputs = torch.cat([targets, torch.tensor([[VOCAB.eos_id]])], dim=1)
        expected = F.cross_entropy(logits[0], outputs[0])
        expected_smoothed = F.cross_entropy(logits[0], outputs[0], label_smoothing=0.2)
        assert float(plain(features, lengths, targets, target_lengths).total) == pytest.approx(
            float(expected), rel=1e-5
        )
        assert float(smoothed(features, lengths, targets, target_lengths).attention) == pytest.approx(
            float(expected_smoothed), rel=1e-5
        )
        assert abs(float(expected_smoothed) - float(expected)) > 1e-4  # smoothing changes the loss
        encoded, encoded_lengths = joint.encode(features, lengths)
        log_probs = joint.ctc_log_probs(encoded)
        ctc = F.ctc_loss(log_probs.transpose(0, 1), targets, encoded_lengths, target_lengths, blank=VOCAB.blank_id)
        losses = joint(features, lengths, targets, target_lengths)
        assert float(losses.ctc) == pytest.approx(float(ctc), rel=1e-5)  # torch's "mean" divides by target length
        assert float(losses.total) == pytest.approx(0.4 * float(ctc) + 0.6 * float(expected), rel=1e-5)


def test_scheduled_sampling_feeds_back_predictions() -> None:
    torch.manual_seed(0)
    model = LAS(tiny()).eval()
    features, lengths, targets, target_lengths = random_batch([50], [8])
    with torch.no_grad():
        forced = model(features, lengths, targets, target_lengths, sampling_prob=0.0)
        sampled = model(features, lengths, targets, target_lengths, sampling_prob=1.0)
    assert float(forced.attention) != pytest.approx(float(sampled.attention))


@torch.no_grad()
def forced_batch(model: LAS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int], list[Memory]]:
    """Teacher-forced logits and weights of a padded batch of 3 utterances, its targets and
    target lengths, and each utterance's memory computed alone; checks that the outputs
    past each utterance's <eos> are zero."""
    features, lengths, targets, target_lengths = random_batch([40, 61, 52], [3, 7, 5])
    memory = model.speller.memory(*model.encode(features, lengths))
    logits, weights = model.teacher_forced_logits(memory, targets, target_lengths)
    for i, m in enumerate(target_lengths.tolist()):
        assert (logits[i, m + 1 :] == 0).all() and (weights[i, m + 1 :] == 0).all()
    alone = [
        model.speller.memory(*model.encode(features[i : i + 1, :n], lengths[i : i + 1]))
        for i, n in enumerate(lengths.tolist())
    ]
    return logits, weights, targets, target_lengths.tolist(), alone


def test_teacher_forcing_runs_each_utterance_to_its_own_eos_only() -> None:
    """Outputs past an utterance's <eos> are zero (it left the batch); the rest equal it run alone."""
    torch.manual_seed(0)
    model = LAS(tiny("location")).eval()
    logits, _, targets, target_lengths, alone = forced_batch(model)
    with torch.no_grad():
        for i, m in enumerate(target_lengths):
            alone_logits, _ = model.teacher_forced_logits(alone[i], targets[i : i + 1, :m], torch.tensor([m]))
            torch.testing.assert_close(logits[i, : m + 1], alone_logits[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", sorted(ATTENTIONS))
def test_speller_without_input_feeding_forces_all_steps_at_once_as_stepping_would(kind: str) -> None:
    """`Speller.teacher_forced` (one LSTM call, one attention call unless it reads its previous
    weights) gives, for every utterance of a padded batch, the logits and weights of stepping alone."""
    torch.manual_seed(0)
    model = LAS(tiny(kind, input_feeding=False)).eval()
    logits, weights, targets, target_lengths, alone = forced_batch(model)
    with torch.no_grad():
        for i, m in enumerate(target_lengths):
            frames = alone[i].values.shape[1]
            state = model.speller.initial_state(alone[i])
            for j, token in enumerate([VOCAB.sos_id, *targets[i, :m].tolist()]):
                step_logits, state = model.speller.step(state, torch.tensor([token]), alone[i])
                torch.testing.assert_close(logits[i, j], step_logits[0], atol=1e-5, rtol=1e-4)
                torch.testing.assert_close(weights[i, j, :frames], state.weights[0], atol=1e-5, rtol=1e-4)
                assert (weights[i, j, frames:] == 0).all()


def test_teacher_forced_refuses_a_speller_with_input_feeding() -> None:
    model = LAS(tiny("dot"))
    memory = model.speller.memory(torch.randn(1, 5, 96), torch.tensor([5]))
    with pytest.raises(ValueError, match="without input feeding"):
        model.speller.teacher_forced(memory, torch.tensor([[VOCAB.sos_id]]), [1])


def test_masked_softmax_ignores_masked_scores() -> None:
    scores = torch.tensor([[1.0, 2.0, 100.0]])
    weights = masked_softmax(scores, torch.tensor([[True, True, False]]))
    torch.testing.assert_close(weights, torch.softmax(torch.tensor([[1.0, 2.0, -float("inf")]]), -1))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (lambda: ListenerConfig(layers=2, reduce=(2,)), "listener.reduce"),
        (lambda: ListenerConfig(projection=-1), "listener.projection"),
        (lambda: AttentionConfig(kind="multihead", dim=10, heads=3), "multiple of attention.heads"),
        (lambda: AttentionConfig(location_kernel=4), "odd"),
        (lambda: LASConfig(ctc_weight=1.5), "ctc_weight"),
        (lambda: LASConfig(vocab_size=3), "below vocab_size"),
    ],
)
def test_bad_model_settings_are_rejected(config, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config()


def digits(fsdd: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Five real recordings of different digits by one speaker, normalised per batch."""
    words = ["zero", "one", "two", "three", "four"]
    waveforms = [load_audio(fsdd / "recordings" / f"{d}_jackson_0.wav")[0] for d in range(5)]
    padded = torch.nn.utils.rnn.pad_sequence(waveforms, batch_first=True)
    features, lengths = LogMel(FeatureConfig())(padded, torch.tensor([w.shape[0] for w in waveforms]))
    mask = lengths_to_mask(lengths, features.shape[1])
    frames = features[mask]
    features = (
        (features - frames.mean(0)) / frames.std(0).clamp(min=1e-3) * mask[..., None]
    )  # bins above 4 kHz are empty
    encoded = [torch.tensor(VOCAB.encode(w)) for w in words]
    targets = torch.nn.utils.rnn.pad_sequence(encoded, batch_first=True, padding_value=VOCAB.pad_id)
    return features, lengths, targets, torch.tensor([len(e) for e in encoded]), [w.upper() for w in words]


@pytest.mark.parametrize(
    ("kind", "input_feeding", "projection"),
    [(kind, True, 0) for kind in sorted(ATTENTIONS)] + [("additive", False, 32), ("location", False, 32)],
)
def test_every_attention_overfits_real_digits_to_zero_errors(
    fsdd: Path, kind: str, input_feeding: bool, projection: int
) -> None:
    """Also the lean variant: no input feeding, a projection between listener layers."""
    torch.manual_seed(0)
    features, lengths, targets, target_lengths, words = digits(fsdd)
    model = LAS(tiny(kind, input_feeding=input_feeding, projection=projection))
    started = time.monotonic()
    reached = overfit(
        model,
        (features, lengths, targets, target_lengths),
        words,
        VOCAB,
        lr=3e-3,
        steps=200,
        check_every=10,
        max_length_ratio=1.0,
    )
    if reached is None:
        pytest.fail(f"{kind} attention did not reach zero errors in 200 steps ({time.monotonic() - started:.0f} s)")


def test_bilstm_equals_a_packed_bidirectional_lstm_with_the_same_weights() -> None:
    torch.manual_seed(0)
    layer = BiLSTM(6, 5)
    packed_lstm = torch.nn.LSTM(6, 5, batch_first=True, bidirectional=True)
    packed_lstm.load_state_dict(layer.lstm.state_dict())
    x = torch.randn(3, 11, 6)
    lengths = torch.tensor([11, 7, 2])
    x = x * lengths_to_mask(lengths, 11)[..., None]
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_lstm(packed)[0], batch_first=True, total_length=11)
    torch.testing.assert_close(layer(x, lengths), expected, atol=1e-6, rtol=1e-5)


def test_bilstm_holds_one_bidirectional_lstm_whose_weights_its_gpu_path_runs_as_they_lie(monkeypatch) -> None:
    """One `nn.LSTM` a layer, so cuDNN reads its flattened weights: the packed path calls the
    module itself and joins no weights a call (a copy, and a warning in fp32, when there were two)."""
    layer = BiLSTM(6, 5)
    assert [type(m) for m in layer.children()] == [torch.nn.LSTM] and layer.lstm.bidirectional
    assert list(layer.state_dict()) == ["lstm." + key for key in torch.nn.LSTM(6, 5, bidirectional=True).state_dict()]
    joins = []
    monkeypatch.setattr(torch, "lstm", lambda *args: joins.append(args) or pytest.fail("weights joined by hand"))
    calls = []
    layer.lstm.register_forward_hook(lambda module, inputs, output: calls.append(type(inputs[0]).__name__))
    layer.packed(torch.randn(2, 4, 6), torch.tensor([4, 2]))
    assert calls == ["PackedSequence"] and not joins


def test_weights_saved_when_a_bilstm_held_two_lstms_load_into_it_and_give_the_same_outputs() -> None:
    """Model directories and checkpoints written before (`forward_lstm.*`, `backward_lstm.*`)
    load as they were (`load_state_dict`), and are renamed the same way for an export that
    averages them with newer ones."""
    torch.manual_seed(0)
    listener = Listener(ListenerConfig(layers=2, units=6, reduce=(0,), dropout=0.0)).eval()
    old = {}
    for key, value in listener.state_dict().items():
        head, _, name = key.rpartition(".lstm.")
        if not name:
            old[key] = value
        elif name.endswith("_reverse"):
            old[f"{head}.backward_lstm.{name.removesuffix('_reverse')}"] = value
        else:
            old[f"{head}.forward_lstm.{name}"] = value
    assert sum(".backward_lstm." in key for key in old) == 8
    loaded = Listener(listener.config).eval()
    loaded.load_state_dict(old)
    features, lengths = torch.randn(2, 9, 80), torch.tensor([9, 5])
    assert torch.equal(loaded(features, lengths)[0], listener(features, lengths)[0])
    renamed = renamed_old_directions(old)  # what an export averaging old checkpoints reads
    assert list(renamed) == list(listener.state_dict())
    assert all(torch.equal(renamed[key], value) for key, value in listener.state_dict().items())


def test_bilstm_gives_the_same_outputs_and_gradients_on_its_gpu_path_as_on_its_cpu_path() -> None:
    """`packed` (one bidirectional call, what a GPU runs) equals `padded` (the directions one after
    the other, what a CPU runs) on a padded batch, a row without frames included."""
    torch.manual_seed(0)
    layer = BiLSTM(6, 5)
    lengths = torch.tensor([11, 7, 0, 3])
    x = torch.randn(4, 11, 6) * lengths_to_mask(lengths, 11)[..., None]
    outputs, gradients = [], []
    for path in (layer.padded, layer.packed):
        layer.zero_grad()
        inputs = x.clone().requires_grad_()
        out = path(inputs, lengths)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outputs.append(out.detach())
        gradients.append([inputs.grad] + [p.grad.clone() for p in layer.parameters()])
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-6, rtol=1e-5)
    assert (outputs[1][2] == 0).all() and (outputs[1][3, 3:] == 0).all()
    for packed, padded in zip(gradients[1], gradients[0], strict=True):
        torch.testing.assert_close(packed, padded, atol=1e-6, rtol=1e-5)


def test_the_listener_s_packed_path_waits_for_the_device_once_a_forward_not_once_a_layer(monkeypatch) -> None:
    """On a GPU packing needs lengths on the host: one copy for the whole listener (its layers halve
    them on the host), and the same output as the padded path; shown here on a CPU made to pack."""
    torch.manual_seed(0)
    listener = Listener(ListenerConfig(layers=3, units=8, reduce=(0, 1), dropout=0.0)).eval()
    features, lengths = torch.randn(3, 21, 80), torch.tensor([21, 13, 6])
    padded, padded_lengths = listener(features, lengths)
    copies = []
    cpu = torch.Tensor.cpu
    monkeypatch.setattr(
        torch.Tensor, "cpu", lambda tensor, *a, **k: copies.append(tensor.shape) or cpu(tensor, *a, **k)
    )
    monkeypatch.setattr("asr.model.listener.packs", lambda x: True)
    packed, packed_lengths = listener(features, lengths)
    assert copies == [torch.Size([3])]
    assert torch.equal(packed_lengths, padded_lengths)
    torch.testing.assert_close(packed, padded, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("frontend", ["none", "conv2d"])
def test_a_training_step_s_losses_with_host_lengths_copy_nothing_from_the_device(monkeypatch, frontend: str) -> None:
    """A training step hands the model its lengths on the host too: the packed listener and CTC
    then copy nothing back (on a GPU each copy waits for the device), with the same losses and
    listener lengths (`Listener.output_lengths`) as the model computes from the device's."""
    torch.manual_seed(0)
    model = LAS(tiny(frontend=frontend)).eval()
    features, lengths, targets, target_lengths = random_batch([61, 40, 52, 30], [7, 3, 5, 7])
    expected = model(features, lengths, targets, target_lengths)
    assert torch.equal(model.listener.output_lengths(lengths), model.encode(features, lengths)[1])
    copies = []
    cpu = torch.Tensor.cpu
    monkeypatch.setattr(
        torch.Tensor, "cpu", lambda tensor, *a, **k: copies.append(tensor.shape) or cpu(tensor, *a, **k)
    )
    monkeypatch.setattr("asr.model.listener.packs", lambda x: True)
    ctc_lengths = []
    ctc_loss = F.ctc_loss
    monkeypatch.setattr(
        "asr.model.las.F.ctc_loss", lambda *args, **kw: ctc_lengths.append(args[2:4]) or ctc_loss(*args, **kw)
    )
    losses = model(features, lengths, targets, target_lengths, 0.0, lengths.clone(), target_lengths.clone())
    assert copies == []
    assert [n.tolist() for n in ctc_lengths[0]] == [model.encode(features, lengths)[1].tolist(), [7, 3, 5, 7]]
    torch.testing.assert_close(losses.ctc, expected.ctc, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(losses.attention, expected.attention, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("input_feeding", "sampling_prob"), [(True, 0.0), (False, 0.0), (True, 1.0)])
@pytest.mark.parametrize("kind", ["location", "dot"])
def test_teacher_forcing_with_fixed_shapes_gives_the_cpu_paths_losses_and_gradients(
    monkeypatch, kind: str, input_feeding: bool, sampling_prob: float
) -> None:
    """The GPU's teacher forcing (every utterance every step, steps past <eos> zeroed after) equals
    the CPU's (utterances leave the batch as they end) on the same weights: losses, outputs and
    every gradient; scheduled sampling always taking the model's own prediction included."""
    torch.manual_seed(0)
    model = LAS(tiny(kind, input_feeding=input_feeding))
    batch = random_batch([40, 61, 52, 30], [3, 7, 5, 7])
    results = []
    for fixed in (False, True):
        monkeypatch.setattr("asr.model.las.fixed_shapes", lambda values, fixed=fixed: fixed)
        model.zero_grad()
        losses = model(*batch, sampling_prob=sampling_prob)
        losses.total.backward()
        memory = model.speller.memory(*model.encode(batch[0], batch[1]))
        with torch.no_grad():
            outputs = model.teacher_forced_logits(memory, batch[2], batch[3], sampling_prob)
        results.append((losses.total.detach(), outputs, [p.grad.clone() for p in model.parameters()]))
    (loss, outputs, gradients), (fixed_loss, fixed_outputs, fixed_gradients) = results
    torch.testing.assert_close(fixed_loss, loss, atol=1e-6, rtol=1e-5)
    for fixed_output, output in zip(fixed_outputs, outputs, strict=True):
        torch.testing.assert_close(fixed_output, output, atol=1e-6, rtol=1e-5)
    for fixed_gradient, gradient in zip(fixed_gradients, gradients, strict=True):
        torch.testing.assert_close(fixed_gradient, gradient, atol=1e-6, rtol=1e-5)
