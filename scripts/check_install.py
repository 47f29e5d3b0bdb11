"""Fail an install with one line when torch and torchaudio do not load together.

torchaudio's compiled extension loads only with the torch release it was built for,
and a wrong pair fails at import time, deep inside the first test or command. Run
after every install: `python scripts/check_install.py`; exit status 1 on a bad pair.
"""

import sys
from importlib.metadata import PackageNotFoundError, version


def installed(package: str) -> str:
    """The installed version of `package`, or "(not installed)"."""
    try:
        return version(package)
    except PackageNotFoundError:
        return "(not installed)"


def main() -> int:
    try:
        import torchaudio.functional  # noqa: F401  (loads libtorchaudio against torch)

        import asr.frontend.features  # noqa: F401
    except (ImportError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(
            f"error: torch {installed('torch')} and torchaudio {installed('torchaudio')} do not load together "
            f"({reason}); install the pair from requirements.lock (make install)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
