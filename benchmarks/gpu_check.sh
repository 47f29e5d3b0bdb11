#!/usr/bin/env bash
# The GPU check (benchmarks/README.md): the project's GPU-only paths, measured in one command.
#
#   bash benchmarks/gpu_check.sh --out "$OUT"                      # on a lent GPU machine
#   bash benchmarks/gpu_check.sh --device cpu --quick --out DIR     # the CPU dry run (tests/test_gpu_check.py)
#
# Options are benchmarks/gpu_check.py's (--budget SECONDS, --device). PYTHON picks the
# interpreter (default: python3, else python). The working tree goes on PYTHONPATH, so the
# check runs whether or not the project was installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$(command -v python3 || command -v python)}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
cd "$root"
exec "$python" benchmarks/gpu_check.py "$@"
