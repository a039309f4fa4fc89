#!/usr/bin/env bash
# Embedding throughput: cairn's embedder against ONNX Runtime running the same fp32 weights
# (bench/embed_reference.py), same sentences, batch and threads, alternating runs.
# Usage: RUNS=3 bash bench/embed.sh SENTENCES.txt   (needs /opt/embref: see embed_reference.py)
set -euo pipefail
cd "$(dirname "$0")/.."
file=${1:?sentences file, one per line}
runs=${RUNS:-3}
py=${EMBREF_PYTHON:-/opt/embref/bin/python}
models=$(target/debug/cairn models path)/all-minilm-l6-v2
cargo build --quiet --example embed -p cairn-generator
for i in $(seq "$runs"); do
  RAYON_NUM_THREADS=2 target/debug/examples/embed "$models" "$file" 32 2>/dev/null | head -1
  THREADS=2 "$py" bench/embed_reference.py "$models" "$file"
  THREADS=2 SORTED=1 "$py" bench/embed_reference.py "$models" "$file"
done
