#!/usr/bin/env bash
# The one prepared GPU check (issue 18): at most 8 minutes on one H100/H200, one table on stdout.
#   bash benchmarks/device_check.sh [--dry-run] [--reference DIR] [--data DIR] [--sections a,b]
# --dry-run runs the same code paths on the CPU at tiny sizes (tests/test_benchmarks.py). Everything it needs
# is in the working tree: the models train on noise images, and vs_reference's CIFAR-10 is generated unless
# --data holds cifar10-jpg.tar.gz. The reference checkout is the one thing to carry (an ignored folder).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
exec "$PY" benchmarks/device_check.py "$@"
