#!/usr/bin/env bash
# The README's main command: build, fetch the pinned models, ingest the bundled corpus (a part of
# The Cargo Book) into a knowledge base, and answer a question about it with citations.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
cairn=target/debug/cairn
export CAIRN_KB="${CAIRN_KB:-target/demo-kb}"
"$cairn" models pull
"$cairn" add corpora/cargo-book
"$cairn" status
"$cairn" search "how do I get debug info in a release build?" -k 3
"$cairn" ask "Where does cargo build --release put the resulting binary?" --quote
echo
echo "Open the terminal app on this knowledge base: CAIRN_KB=$CAIRN_KB $cairn"
