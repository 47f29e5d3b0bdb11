"""Listen, Attend and Spell speech recognition."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("las-asr")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
