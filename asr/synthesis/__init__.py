"""Synthesis: a small speech corpus in the LibriSpeech layout, made with open text-to-speech
engines (`asr synthesize`).

`sentences` (free English text from Debian packages, in its spoken form) and `voices` (the
engines' voices and talkers) -> `plan` (the seeded split of talkers and sentences, speakers,
chapters) -> `engines` (espeak-ng, flite, festival; pitch, rate, noise) -> `corpus` (the
writer, resumable, and the check of every file).

May import: `asr.frontend`, `asr.text` and the foundations. Nothing of inference or training
imports it; `asr.lm.corpus` reads its sentences.
"""
