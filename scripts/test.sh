#!/usr/bin/env bash
# Quick start 2: the whole test suite: formatting, lints, unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
