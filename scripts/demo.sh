#!/usr/bin/env bash
# The README's main command: build, fetch the pinned models, ingest the bundled corpus (a part of
# The Cargo Book) into a knowledge base, search it with citations, and run the default model.
# (Answers written by the model from the retrieved passages arrive with `cairn ask`.)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
cairn=target/debug/cairn
export CAIRN_KB="${CAIRN_KB:-target/demo-kb}"
"$cairn" models pull
"$cairn" models list
"$cairn" add corpora/cargo-book
"$cairn" status
"$cairn" search "how do I get debug info in a release build?" -k 3
"$cairn" models run default --max-tokens 160 \
  --prompt "In three sentences: why does a retrieval-augmented assistant cite its sources?"
