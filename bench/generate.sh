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
cairn=target/release/cairn
model=$("$cairn" models path "$model_id")
src=../shared/eval/markdown/rust-book/src/ch08-02-strings.md
prompt=$(mktemp)
trap 'rm -f "$prompt"' EXIT
{ echo "Read the following text, then summarize it in detail."; echo; head -c 6000 "$src"; } > "$prompt"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; threads: $threads; model: $model_id" >&2
for run in 1 2 3; do
  RAYON_NUM_THREADS=$threads "$cairn" models run "$model_id" --prompt-file "$prompt" \
      --max-tokens 128 --ignore-eos --json 2>/dev/null | tail -n 1 | sed "s/^/cairn run $run: /"
  "$llama_py" bench/llama_cpp_generate.py "$model" "$prompt" 128 "$threads" | sed "s/^/llama.cpp run $run: /"
done
