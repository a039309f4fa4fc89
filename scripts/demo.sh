#!/usr/bin/env bash
# The README's main command: build, fetch the pinned models, and answer a question with the
# default model. (Ingesting the bundled corpus and citing it arrive with `cairn add` / `ask`.)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
cairn=target/debug/cairn
"$cairn" models pull
"$cairn" models list
"$cairn" models run default --max-tokens 160 \
  --prompt "In three sentences: why does a retrieval-augmented assistant cite its sources?"
