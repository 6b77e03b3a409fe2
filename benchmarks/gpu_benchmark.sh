#!/usr/bin/env bash
# Training speed and memory on a GPU (see benchmarks/gpu_benchmark.py): the default and
# report recipes at 56 and 224 px for a fixed number of steps each, plus one torchrun
# run over every GPU when there are several; writes benchmarks/RESULTS-GPU.md. Under 8
# minutes on one GPU (a hard limit of LIMIT_S seconds, 480 by default).
# Usage: benchmarks/gpu_benchmark.sh [--n IMAGES] [--scale FACTOR] [--out FILE]
# DEVICE=cpu runs the same rows on the CPU (a dry run: add e.g. --scale 0.02 --n 400 --out /tmp/r.md).
# PYTHON picks the interpreter (default: .venv/bin/python if there, else python3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python=$root/.venv/bin/python; else python=python3; fi
fi
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
exec timeout "${LIMIT_S:-480}" "$python" "$root/benchmarks/gpu_benchmark.py" --device "${DEVICE:-cuda}" "$@"
