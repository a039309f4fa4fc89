#!/usr/bin/env bash
# End-to-end ingest and query latency on a folder of real documents (issue #3):
#   first `cairn add` (files/s, chunks/s, peak RSS, index size), a no-change re-run, then query
#   latency over one query per file (its first `#` heading), sampled evenly.
# Usage: bash bench/ingest.sh [FOLDER] [KB]   (default ../shared/eval/markdown, a fresh temp KB)
set -euo pipefail
cd "$(dirname "$0")/.."
folder=${1:-../shared/eval/markdown}
kb=${2:-$(mktemp -d)/kb}
cairn=target/debug/cairn
queries=$(mktemp)
trap 'rm -f "$queries"' EXIT
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; folder: $folder; kb: $kb" >&2
echo "files: $(find "$folder" -name '*.md' | wc -l) Markdown, $(find "$folder" -name '*.md' -print0 | du -cb --files0-from=- | tail -1 | cut -f1) bytes" >&2
for run in first no-change; do
  /usr/bin/time -f "$run: wall %e s, user %U s, peak RSS %M KiB" "$cairn" --kb "$kb" add "$folder" --json
done
du -sb "$kb" | sed 's/^/index bytes: /'
# One query per file: its first heading, without the #s; every 10th file.
find "$folder" -name '*.md' | sort | awk 'NR % 10 == 1' | while read -r f; do
  sed -n 's/^#\{1,6\} \+//p' "$f" | head -n 1
done | grep -v '^$' > "$queries"
echo "queries: $(wc -l < "$queries")" >&2
"$cairn" --kb "$kb" eval latency "$queries"
