#!/usr/bin/env bash
# Generation speed, cairn against llama.cpp, in one run on this machine.
#
#   bench/generate.sh [MODEL_ID] [THREADS]
#
# Same GGUF, same chat-formatted prompt (~1,500 tokens: a chapter of the Rust Book from
# ../shared/eval, read in place, not copied), 128 greedy tokens, the same thread count.
# Needs: a release build (`cargo build --release`), `cairn models pull`, and llama-cpp-python
# in the Python named by LLAMA_PY (default /opt/llamaref/bin/python; see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
model_id=${1:-default}
threads=${2:-2}
llama_py=${LLAMA_PY:-/opt/llamaref/bin/python}
cairn=${CAIRN_BIN:-target/release/cairn}
model=$("$cairn" models path "$model_id")
src=../shared/eval/markdown/rust-book/src/ch08-02-strings.md
prompt=$(mktemp)
{ echo "Read the following text, then summarize it in detail."; echo; head -c 6000 "$src"; } > "$prompt"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; threads: $threads; model: $model_id" >&2
runs=${RUNS:-5}
results=$(mktemp)
trap 'rm -f "$prompt" "$results"' EXIT
# Alternate the two engines, so that a noisy neighbour on the machine hits both alike.
for run in $(seq "$runs"); do
  RAYON_NUM_THREADS=$threads "$cairn" models run "$model_id" --prompt-file "$prompt" \
      --max-tokens 128 --ignore-eos --json 2>/dev/null | tail -n 1 | sed "s/^/cairn /" | tee -a "$results"
  "$llama_py" bench/llama_cpp_generate.py "$model" "$prompt" 128 "$threads" | sed "s/^/llama.cpp /" | tee -a "$results"
done
python3 - "$results" <<'PY'
import json, statistics, sys
rows = {"cairn": [], "llama.cpp": []}
for line in open(sys.argv[1]):
    engine, data = line.split(" ", 1)
    rows[engine].append(json.loads(data))
med = {e: {k: statistics.median(r[k] for r in rs) for k in ("prefill_tok_s", "decode_tok_s", "time_to_first_token_s")}
       for e, rs in rows.items()}
print(f"median of {len(rows['cairn'])} runs, prompt {rows['cairn'][0]['prompt_tokens']} tokens, 128 generated")
print("| engine | prefill tok/s | decode tok/s | time to first token |")
print("|---|---|---|---|")
for e in ("cairn", "llama.cpp"):
    m = med[e]
    print(f"| {e} | {m['prefill_tok_s']:.1f} | {m['decode_tok_s']:.1f} | {m['time_to_first_token_s']:.1f} s |")
c, l = med["cairn"], med["llama.cpp"]
print(f"| cairn / llama.cpp | {c['prefill_tok_s'] / l['prefill_tok_s']:.2f}x | {c['decode_tok_s'] / l['decode_tok_s']:.2f}x | |")
PY
