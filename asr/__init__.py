"""Listen, Attend and Spell speech recognition.

`asr.load_model(directory).transcribe(path)` is the transcription API (`asr.transcribe`);
it is imported on first use, so `import asr.model` needs torch alone.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("las-asr")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["Recognizer", "Segment", "Transcript", "Word", "__version__", "load_model"]


def __getattr__(name: str) -> Any:
    """The transcription API, imported when first asked for (PEP 562)."""
    if name in __all__ and name != "__version__":
        from asr import transcribe

        return getattr(transcribe, name)
    raise AttributeError(f"module 'asr' has no attribute {name!r}")
