"""The front end: audio in, model input out.

`audio` (loading any format, resampling to 16 kHz, headers), `features` (log-mel and
vocal-tract-length perturbation), `normalization` (global statistics, per-utterance mean and
variance), `specaugment`, `pipeline` (`Frontend`: waveforms to normalised, augmented
features), `augment` (waveform augmentation for training: speed, pitch, room, noise, channel),
`segmentation` (cutting long recordings at pauses).

May import: `asr.errors`, `asr.atomic`, `asr.config`, `asr.text`; torch, torchaudio, librosa.
This file imports nothing.
"""
