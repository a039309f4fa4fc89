#!/usr/bin/env bash
# Embedding throughput: cairn's embedder against sentence-transformers on PyTorch
# (bench/embed_st.py) and ONNX Runtime running the same fp32 weights (bench/embed_reference.py);
# same sentences, batch and threads, alternating runs.
# Usage: RUNS=3 bash bench/embed.sh SENTENCES.txt   (after `cairn models pull`)
#   EMBREF_PYTHON: a Python with onnx, onnxruntime, numpy, tokenizers, safetensors
#   EMBST_PYTHON:  a Python with sentence-transformers (and so PyTorch)
set -euo pipefail
cd "$(dirname "$0")/.."
file=${1:?sentences file, one per line}
runs=${RUNS:-3}
py=${EMBREF_PYTHON:-/opt/embref/bin/python}
st=${EMBST_PYTHON:-/opt/embst/bin/python}
models=$(target/debug/cairn models path)/all-minilm-l6-v2
runtime=$(target/debug/cairn models path onnxruntime)
cargo build --quiet --example embed -p cairn-generator
for i in $(seq "$runs"); do
  # The built-in encoder packs each call's texts without padding; on ONNX Runtime, cairn sorts
  # each call's texts by length into padded batches of 32 — `cairn add` hands it 256 at a time.
  RAYON_NUM_THREADS=2 target/debug/examples/embed "$models" "$file" 32 2>/dev/null | sed -n 1p
  EMBED_RUNTIME=$runtime EMBED_THREADS=2 target/debug/examples/embed "$models" "$file" 256 2>/dev/null | sed -n 1p
  THREADS=2 "$st" bench/embed_st.py "$models" "$file" 2>/dev/null | grep "^{"
  THREADS=2 "$py" bench/embed_reference.py "$models" "$file"
  THREADS=2 SORTED=1 "$py" bench/embed_reference.py "$models" "$file"
done
