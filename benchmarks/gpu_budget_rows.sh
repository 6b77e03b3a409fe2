#!/usr/bin/env bash
# Time-budget rows on one GPU over the benchmark data: the default recipe, FixMatch, the
# report recipe at 224 px and ResNet50, each `semilabel train DATA --time-budget M`.
# Usage: benchmarks/gpu_budget_rows.sh DATA_DIR OUT_DIR [SCALE ["NAME MINUTES SEED FLAGS..." ...]]
#   runs go to /tmp/gpu-runs; OUT_DIR gets rows.txt (one line a row) and rows.tgz (each
#   row's summary.json, metrics.csv and log). SCALE multiplies every budget. Without row
#   arguments it runs the four rows below (seed 0); with them, those rows:
#   benchmarks/gpu_budget_rows.sh DATA OUT 1 "report224 3.5 0 --config report --input-size 224"
#   DEVICE=cpu PYTHON=.venv/bin/python benchmarks/gpu_budget_rows.sh DATA /tmp/x 0.04  # a dry run
# Results and what they showed: benchmarks/RESULTS-GPU.md.
set -uo pipefail
data=$1; final=$2; scale=${3:-1}; shift $(( $# < 3 ? $# : 3 ))
out=/tmp/gpu-runs; rm -rf "$out"; mkdir -p "$out" "$final"
py=${PYTHON:-python3}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
dev=${DEVICE:-cuda}
row() {  # NAME MINUTES SEED FLAGS...
  local name=$1 minutes seed=$3; minutes=$($py -c "print(round($2 * $scale, 3))"); shift 3
  local t0; t0=$(date +%s)
  $py -m semilabel train "$data" --out "$out/run-$name" --time-budget "$minutes" --force --no-report \
      --quiet --seed "$seed" --device "$dev" "$@" > "$out/$name.log" 2>&1
  echo "$name rc=$? wall=$(( $(date +%s) - t0 ))s minutes=$minutes seed=$seed flags=$*" | tee -a "$out/rows.txt"
  tail -n 4 "$out/$name.log"
  cp "$out/run-$name/summary.json" "$out/$name.summary.json" 2>/dev/null
  cp "$out/run-$name/metrics.csv" "$out/$name.metrics.csv" 2>/dev/null
  (cd "$out" && tar czf "$final/rows.tgz" ./*.json ./*.csv ./*.log rows.txt 2>/dev/null)
  cp "$out/rows.txt" "$final/"
}
$py -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))" \
  | tee "$out/rows.txt"
if [ $# -eq 0 ]; then
  set -- "default 1.5 0 --config default" "fixmatch 2.5 0 --config fixmatch" \
         "report224 1.5 0 --config report --input-size 224" "resnet50 1.0 0 --config default --backbone resnet50"
fi
for spec in "$@"; do
  # shellcheck disable=SC2086  # a row spec is words: name, minutes, seed, flags
  row $spec
done
