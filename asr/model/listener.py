"""The listener: an optional front end, then BiLSTM layers, some of them pyramidal.

A pyramid layer concatenates adjacent frame pairs before its BiLSTM (the LAS pBLSTM),
halving the frame rate; lengths are updated exactly and padding never reaches a real
frame's state. Optionally a projection between layers narrows what the next one reads
(ESPnet's blstmp, SpeechBrain's pyramid encoders).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def lengths_to_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_length) bool, True on real frames."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


@dataclass(frozen=True)
class ListenerConfig:
    """Front end and BiLSTM stack; `reduce` lists the (0-based) layers that halve the frame rate."""

    input_dim: int = 80
    frontend: Literal["none", "linear", "conv2d"] = "none"
    frontend_dim: int = 256
    """Output size of the linear front end; channels of the conv2d front end (which also subsamples 4x)."""
    layers: int = 3
    units: int = 256
    """Units per direction."""
    reduce: tuple[int, ...] = (1, 2)
    dropout: float = 0.1
    projection: int = 0
    """Size of a linear projection with tanh after every BiLSTM layer but the last, so that the
    next layer reads `projection` values a frame (twice that after a pyramid reduction) instead
    of 2 x units; 0: none, as in the LAS paper. The last layer's output is never projected."""

    def __post_init__(self) -> None:
        if self.layers < 1 or self.units < 1 or self.input_dim < 1:
            raise ValueError("listener layers, units and input_dim must be positive")
        if any(not 0 <= i < self.layers for i in self.reduce) or len(set(self.reduce)) != len(self.reduce):
            raise ValueError(f"listener.reduce must list distinct layers in 0..{self.layers - 1}, got {self.reduce}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"listener.dropout must lie in [0, 1), got {self.dropout}")
        if self.projection < 0:
            raise ValueError(f"listener.projection must be 0 (none) or positive, got {self.projection}")

    @property
    def subsampling(self) -> int:
        """Total frame-rate reduction from features to listener output."""
        return 2 ** len(self.reduce) * (4 if self.frontend == "conv2d" else 1)

    def output_frames(self, frames: int) -> int:
        """Listener output frames of an input of `frames` feature frames, exactly as `Listener` counts them."""
        if self.frontend == "conv2d":
            for _ in range(2):  # two valid 3-wide stride-2 convolutions
                frames = max(0, (frames - 3) // 2 + 1)
        for _ in self.reduce:
            frames = (frames + 1) // 2  # an odd last frame is paired with a zero frame
        return frames


class Conv2dSubsampling(nn.Module):
    """Two 3x3 stride-2 convolutions (a VGG-like block): (B, T, D), (B,) -> (B, T', C), (B,), T' ~ T/4."""

    def __init__(self, input_dim: int, channels: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2), nn.ReLU(), nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU()
        )
        freq = ((input_dim - 3) // 2 + 1 - 3) // 2 + 1  # feature bins after two valid stride-2 convolutions
        self.project = nn.Linear(channels * freq, channels)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.convs(x[:, None])  # (B, T, D) -> (B, 1, T, D) -> (B, C, T', D')
        y = y.transpose(1, 2).flatten(2)  # -> (B, T', C * D')
        return self.project(y), subsampled_lengths(lengths)


def subsampled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """(B,) frame counts -> (B,) after `Conv2dSubsampling`'s two valid 3-wide stride-2
    convolutions, on whichever device `lengths` is."""
    for _ in range(2):
        lengths = torch.div(lengths - 3, 2, rounding_mode="floor") + 1
    return lengths.clamp(min=0)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of (B, T, D) within its own length; padding stays at the end."""
    t = x.shape[1]
    steps = torch.arange(t, device=x.device)[None, :]  # (1, T)
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)  # (B, T)
    return x.gather(1, index[..., None].expand_as(x))


def packs(x: torch.Tensor) -> bool:
    """Whether the listener runs its BiLSTMs packed (cuDNN, on a GPU) rather than padded (a CPU)."""
    return x.is_cuda


OLD_DIRECTIONS = {"forward_lstm": "", "backward_lstm": "_reverse"}
"""The two unidirectional modules a BiLSTM held before it held one bidirectional `nn.LSTM`, and the
suffix of their weights' names in it (`forward_lstm.weight_ih_l0` -> `lstm.weight_ih_l0`,
`backward_lstm.weight_ih_l0` -> `lstm.weight_ih_l0_reverse`)."""


def renamed_old_directions(state: Mapping[str, Any]) -> dict[str, Any]:
    """`state` (a model's weights by name) with those of BiLSTMs saved before they held one
    bidirectional LSTM under their present names; the order stays that of `state_dict`."""
    renamed = {}
    for key, value in state.items():
        parts = key.split(".")  # e.g. listener.lstms.0.forward_lstm.weight_ih_l0
        if len(parts) > 1 and parts[-2] in OLD_DIRECTIONS:
            key = ".".join([*parts[:-2], "lstm", parts[-1] + OLD_DIRECTIONS[parts[-2]]])
        renamed[key] = value
    return renamed


class BiLSTM(nn.Module):
    """A bidirectional LSTM layer in which padding never reaches a real frame's state.

    (B, T, D) zero-padded, (B,) -> (B, T, 2 * units) with padded frames zero. One
    bidirectional `nn.LSTM` holds the weights of both directions. On a CPU (`padded`) its
    forward direction reads the padded batch as it is (padding comes after the real frames)
    and its backward direction reads each sequence reversed within its length, so it too
    starts on real frames: what packed sequences guarantee, with the fused padded kernels
    (packed LSTM backward on a CPU measured 23x slower). On a GPU (`packed`) the module runs
    both directions in one cuDNN call over the packed batch, on its weights as they lie
    (contiguous, nothing joined a call). Both give the same output from the same weights;
    int8 weights (`asr.recognize.quantized`) run the CPU path too.
    """

    def __init__(self, input_dim: int, units: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_dim, units, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, host_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The packed path when `host_lengths` (the lengths on the host, which packing needs) is
        given, the padded one otherwise."""
        return self.padded(x, lengths) if host_lengths is None else self.packed(x, lengths, host_lengths)

    def padded(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The directions one after the other over the padded batch (the CPU's path)."""
        forward = self.direction(x, 0)
        backward = self.direction(reverse_padded(x, lengths), 1)
        out = torch.cat([forward, reverse_padded(backward, lengths)], dim=-1)
        return out * lengths_to_mask(lengths, x.shape[1])[..., None].to(out.dtype)

    def direction(self, x: torch.Tensor, which: int) -> torch.Tensor:
        """(B, T, D) -> (B, T, units): one direction of the LSTM (0 forward, 1 backward) read
        left to right over `x`, from zero states, on its float or int8 weights."""
        lstm = self.lstm
        zeros = x.new_zeros(1, x.shape[0], lstm.hidden_size)
        if isinstance(lstm, nn.LSTM):
            return torch.lstm(x, (zeros, zeros), lstm.all_weights[which], True, 1, 0.0, self.training, False, True)[0]
        # int8 (a dynamically quantized LSTM): its packed weights of that direction
        weights = [lstm._all_weight_values[which].param]
        return torch.quantized_lstm(x, (zeros, zeros), weights, True, 1, 0.0, False, False, True,
                                    dtype=lstm.dtype, use_dynamic=True)[0]  # fmt: skip

    def packed(self, x: torch.Tensor, lengths: torch.Tensor, host_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Both directions in one bidirectional call over the packed batch (the GPU's path: cuDNN);
        `host_lengths`: `lengths` on the host, if the caller has them (else they are copied here)."""
        t = x.shape[1]
        host = lengths.cpu() if host_lengths is None else host_lengths
        # sorted longest first on the device and, the same stable order, on the host: packing then needs
        # no index of the device's, and unpacking copies none back (pad_packed_sequence would, a wait)
        order = torch.argsort(lengths, descending=True, stable=True)  # (B,)
        by_length = host[torch.argsort(host, descending=True, stable=True)].clamp(min=1)  # a row without a frame
        packed = pack_padded_sequence(x.index_select(0, order), by_length, batch_first=True)  # is packed as one
        out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=t)
        out = out.index_select(0, torch.argsort(order))  # (B, T, 2 * units) in the batch's own order
        return out * lengths_to_mask(lengths, t)[..., None].to(out.dtype)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # a model directory or checkpoint saved when the directions were two modules loads as it was
        mine = [key for key in state_dict if key.startswith(prefix)]
        renamed = renamed_old_directions({key: state_dict.pop(key) for key in mine})
        state_dict.update(renamed)
        super()._load_from_state_dict(state_dict, prefix, *args)


class Listener(nn.Module):
    """(B, T, input_dim), (B,) -> (B, T / subsampling, 2 * units), (B,); padded frames are zero."""

    def __init__(self, config: ListenerConfig) -> None:
        super().__init__()
        self.config = config
        if config.frontend == "linear":
            self.frontend: nn.Module | None = nn.Linear(config.input_dim, config.frontend_dim)
            size = config.frontend_dim
        elif config.frontend == "conv2d":
            self.frontend = Conv2dSubsampling(config.input_dim, config.frontend_dim)
            size = config.frontend_dim
        else:
            self.frontend = None
            size = config.input_dim
        self.lstms = nn.ModuleList()
        between = config.projection or 2 * config.units  # what layers after the first read a frame
        for i in range(config.layers):
            in_size = size if i == 0 else between
            if i in config.reduce:
                in_size *= 2  # pairs of frames are concatenated
            self.lstms.append(BiLSTM(in_size, config.units))
        self.projections = nn.ModuleList(
            nn.Linear(2 * config.units, config.projection) for _ in range(config.layers - 1 if config.projection else 0)
        )
        self.dropout = nn.Dropout(config.dropout)

    @property
    def output_dim(self) -> int:
        return 2 * self.config.units

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) input frame counts -> (B,) output frame counts, as `forward` counts them, on
        whichever device `lengths` is (`ListenerConfig.output_frames` for one)."""
        if self.config.frontend == "conv2d":
            lengths = subsampled_lengths(lengths)
        for _ in self.config.reduce:
            lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
        return lengths

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, host_lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`host_lengths`: `lengths` on the host, if the caller has them (a training step does: it
        counts frames from the batch's sample counts); else the packed path copies them once."""
        lengths = lengths.to(x.device)
        if isinstance(self.frontend, Conv2dSubsampling):
            x, lengths = self.frontend(x, lengths)
            host_lengths = None if host_lengths is None else subsampled_lengths(host_lengths)
        elif self.frontend is not None:
            x = torch.relu(self.frontend(x))
        x = x * lengths_to_mask(lengths, x.shape[1])[..., None].to(x.dtype)  # padding exactly zero
        # the packed path (a GPU's) needs lengths on the host: given, or copied once here (one wait
        # for the device), and halved on the host with the device's copy, layer by layer
        host = None
        if packs(x):
            host = lengths.cpu() if host_lengths is None else host_lengths
        for i, lstm in enumerate(self.lstms):
            if i in self.config.reduce:
                if x.shape[1] % 2:
                    x = F.pad(x, (0, 0, 0, 1))  # an odd last frame is paired with a zero frame
                x = x.reshape(x.shape[0], x.shape[1] // 2, 2 * x.shape[2])  # (B, T, D) -> (B, T/2, 2D)
                lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
                host = None if host is None else torch.div(host + 1, 2, rounding_mode="floor")
            if i > 0:
                x = self.dropout(x)
            x = lstm(x, lengths, host)
            if i < len(self.projections):
                mask = lengths_to_mask(lengths, x.shape[1])[..., None].to(x.dtype)
                x = torch.tanh(self.projections[i](x)) * mask  # padding stays zero for the next pairing
        return x, lengths
