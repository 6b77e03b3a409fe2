#!/usr/bin/env bash
# Render a run's report.html with headless Chromium and save a PNG screenshot.
# Usage: benchmarks/screenshot_report.sh RUN_DIR OUT_DIR [WIDTH HEIGHT]
# Draws the report first if RUN_DIR/report/report.html is missing.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 RUN_DIR OUT_DIR [WIDTH HEIGHT]" >&2
  exit 2
fi
run_dir=$1
out_dir=$2
width=${3:-1200}
height=${4:-3000}
root=$(cd "$(dirname "$0")/.." && pwd)
page="$run_dir/report/report.html"
if [ ! -f "$page" ]; then
  "$root/.venv/bin/semilabel" report "$run_dir"
fi
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "no chromium found (apt-get install -y chromium)" >&2
  exit 1
fi
mkdir -p "$out_dir"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run --hide-scrollbars --user-data-dir="$profile" \
  --screenshot="$(cd "$out_dir" && pwd)/report.png" --window-size="$width,$height" \
  "file://$(cd "$(dirname "$page")" && pwd)/$(basename "$page")" 2>/dev/null
echo "screenshot: $out_dir/report.png"
