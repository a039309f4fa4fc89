#!/usr/bin/env bash
# Issue #13: knowledge packs at the scale of ../shared/eval/markdown (about 23k chunks).
#   bash bench/packs.sh KB [FOLDER]
# KB is a knowledge base of FOLDER (make it with `cairn add FOLDER` first: that is the embedding
# a build from files does). Measures: `pack build --from-kb` time and file size; `pack install`
# time; then, three runs each, alternating: the time to open (mount) one pack, and one pack's
# query latency; the same for the knowledge base plus three installed packs (the same pack under
# three names). Queries: one per file (its first heading), every 10th file, as bench/ingest.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
kb=${1:?usage: bench/packs.sh KB [FOLDER]}
folder=${2:-../shared/eval/markdown}
cairn=${CAIRN:-target/debug/cairn}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CAIRN_PACKS_DIR="$work/packs"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; kb: $kb"
find "$folder" -name '*.md' | sort | awk 'NR % 10 == 1' | while read -r f; do
  sed -n 's/^#\{1,6\} \+//p' "$f" | head -n 1
done | grep -v '^$' > "$work/queries"
echo "queries: $(wc -l < "$work/queries")"
for name in md1 md2 md3; do
  /usr/bin/time -f "build $name --from-kb: wall %e s, peak RSS %M KiB" \
    "$cairn" pack build --from-kb "$kb" -o "$work/$name.cairnpack" --name "$name" --version 1.0.0 --reproducible -q
done
ls -l "$work/md1.cairnpack" | awk '{print "pack file bytes: " $5}'
for name in md1 md2 md3; do
  /usr/bin/time -f "install $name: wall %e s" "$cairn" pack install "$work/$name.cairnpack" --allow-unsigned 2>&1 | grep -v '^warning'
done
for run in 1 2 3; do
  "$cairn" --kb "$kb" eval latency "$work/queries" --no-kb --pack md1 | sed "s/^/run $run, one pack: /"
  "$cairn" --kb "$kb" eval latency "$work/queries" | sed "s/^/run $run, kb + three packs: /"
done
