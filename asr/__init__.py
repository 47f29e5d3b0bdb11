"""Listen, Attend and Spell speech recognition."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("las-asr")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

from asr.transcribe import Recognizer, Segment, Transcript, Word, load_model  # noqa: E402  (after the version)

__all__ = ["Recognizer", "Segment", "Transcript", "Word", "__version__", "load_model"]
