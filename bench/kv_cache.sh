#!/usr/bin/env bash
# The KV cache's width, measured: two cairn binaries (built before and after a change to the
# cache) on the same prompts, alternating, medians.
#
#   bench/kv_cache.sh OLD_BIN NEW_BIN [MODEL_ID] [THREADS]
#
# Prompts: the first BYTES of a Rust Book chapter from ../shared/eval (read in place), for
# each size in SIZES (default: about 1,500 and 3,800 tokens), 128 greedy tokens, --ctx 4096.
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1
new=$2
model_id=${3:-default}
threads=${4:-2}
runs=${RUNS:-3}
src=../shared/eval/markdown/rust-book/src/ch08-02-strings.md
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; threads: $threads; model: $model_id" >&2
for bytes in ${SIZES:-6000 14500}; do
  { echo "Read the following text, then summarize it in detail."; echo; head -c "$bytes" "$src"; } > "$dir/prompt"
  for run in $(seq "$runs"); do
    for engine in old new; do
      bin=$old
      [ "$engine" = new ] && bin=$new
      if ! RAYON_NUM_THREADS=$threads "$bin" models run "$model_id" --prompt-file "$dir/prompt" \
          --max-tokens 128 --ignore-eos --json > "$dir/out" 2> "$dir/err"; then
        echo "$engine ($bin) failed on the $bytes-byte prompt:" >&2
        cat "$dir/err" >&2
        exit 1
      fi
      tail -n 1 "$dir/out" | sed "s/^/$bytes $engine /" | tee -a "$dir/results"
    done
  done
done
python3 - "$dir/results" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    size, engine, data = line.split(" ", 2)
    rows.setdefault((int(size), engine), []).append(json.loads(data))
print("| prompt tokens | engine | prefill tok/s | decode tok/s | runs (decode) |")
print("|---|---|---|---|---|")
for (size, engine), rs in sorted(rows.items()):
    p = statistics.median(r["prefill_tok_s"] for r in rs)
    d = statistics.median(r["decode_tok_s"] for r in rs)
    runs = ", ".join(f"{r['decode_tok_s']:.1f}" for r in rs)
    print(f"| {rs[0]['prompt_tokens']} | {engine} | {p:.1f} | {d:.1f} | {runs} |")
PY
