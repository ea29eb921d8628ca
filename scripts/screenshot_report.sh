#!/usr/bin/env bash
# Render an HTML report in a real headless browser (Debian's chromium) and save a PNG screenshot.
#   scripts/screenshot_report.sh report.html out.png [WIDTH,HEIGHT]
# Offline by design: no network, no sync, no component updates, a throw-away profile.
# Install the browser with: apt-get update && apt-get install -y chromium
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 REPORT.html OUT.png [WIDTH,HEIGHT]" >&2
    exit 2
fi
report=$(realpath "$1")
out=$(realpath -m "$2")
size=${3:-1200,1600}
[ -f "$report" ] || { echo "error: $report does not exist" >&2; exit 2; }
browser=""
for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then browser=$(command -v "$name"); break; fi
done
[ -n "$browser" ] || { echo "error: no chromium found; apt-get install -y chromium" >&2; exit 3; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
timeout 90 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$profile" --screenshot="$out" --window-size="$size" "file://$report" >/dev/null 2>&1
[ -s "$out" ] || { echo "error: chromium wrote no screenshot to $out" >&2; exit 1; }
echo "$out"
