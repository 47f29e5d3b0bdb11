"""Build a small speech corpus in the LibriSpeech layout with open text-to-speech engines.

`sentences` (text sources and the normaliser) -> `engines` (espeak-ng, flite, festival,
pitch, rate and noise) -> `corpus` (speakers, the seeded split, the layout, the check).
"""
